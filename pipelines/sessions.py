"""Next-click evaluation: item -> item lists judged on the next item a session touched.

For click-stream logs where a user is a session, what a shop serves is ``recs/item_similar``:
the items to show beside the one being viewed. Each step of a session in the evaluated window
is a *query*: the item the session touched (the ``seed``) and the next different item it
touched (the ``target``). Every method lists K items per seed from the events before the
window, from the same candidate items, never the seed itself; a query is a hit at K when its
target is in its seed's top K. With one relevant item per query, the ranking metrics of
``pipelines/metrics.py`` read as the session-based literature's: HitRate@K = Recall@K and
MRR@K = MAP@K (1 / the target's rank, 0 when it is not listed).

Lists are built per seed, as ``RANKED_LISTS`` rows whose ``user_id`` holds the seed item, then
given to each query of that seed (``query_lists``), so the per-query metrics (``user_id`` =
query id) and the bootstrap run unchanged. A query id is the user, the session and the target
event's id joined by tabs, so the bootstrap can resample whole sessions (``session_of``).

  popularity, recent_popularity   the global lists (without the seed)
  cooccurrence                    the seed's items most often among the same users' last N
  item_knn                        the seed's most cosine-similar items (``B.item_neighbours``)
  als                             the seed's nearest items by cosine of ALS item factors
                                  (neighbours found in ``jobs``: they need the factor table)
Seeds a method has no list for, and short lists, are filled from the popularity list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import schemas as S
from pipelines.evaluation import EvalFrames

QUERY_SEPARATOR = "\t"
ITEM_EVENT_TYPES = (S.VIEW, S.CLICK, S.CART, S.PURCHASE)


def next_click_queries(events: DataFrame, start: dt.date, end: dt.date | None = None) -> DataFrame:
    """Clean events -> (query_id, seed, target): for the item events from ``start``'s first
    instant (to ``end``'s, when given), per user and session in (event_time, event_id) order,
    each event whose item differs from the one the session touched just before it."""
    rows = events.where(
        F.col("item_id").isNotNull()
        & F.col("event_type").isin(*ITEM_EVENT_TYPES)
        & (F.col("event_time") >= L.day_start(start))
    )
    if end is not None:
        rows = rows.where(F.col("event_time") < L.day_start(end))
    order = Window.partitionBy("user_id", "session_id").orderBy("event_time", "event_id")
    steps = rows.select(
        "user_id", "session_id", "event_id", "item_id",
        F.lag("item_id").over(order).alias("seed"),
    )  # fmt: skip
    return steps.where(F.col("seed").isNotNull() & (F.col("seed") != F.col("item_id"))).select(
        F.concat_ws(QUERY_SEPARATOR, "user_id", "session_id", "event_id").alias("query_id"),
        "seed",
        F.col("item_id").alias("target"),
    )


def session_of(query_id: Column) -> Column:
    """A query id's user and session: the unit the bootstrap resamples."""
    return F.substring_index(query_id, QUERY_SEPARATOR, 2)


def seed_frames(
    before: DataFrame,
    queries: DataFrame,
    candidates: DataFrame,
    k: int,
    start: dt.date,
    settings: B.BaselineSettings,
) -> EvalFrames:
    """``EvalFrames`` whose "users" are the queries' seed items, each excluding itself
    (``test_start`` is the window's ``start``)."""
    seeds = queries.select(F.col("seed").alias("user_id")).distinct()
    itself = seeds.select("user_id", F.col("user_id").alias("item_id"))
    return EvalFrames(before, seeds, candidates, itself, k, start, settings)


def neighbour_lists(f: EvalFrames, neighbours: DataFrame, score: str, method: str) -> DataFrame:
    """(seed, item_id, ``score``) rows -> ``method``'s top K per seed of ``f`` (as
    ``RANKED_LISTS``, ``user_id`` = the seed), before fill-up."""
    scored = neighbours.select(
        F.col("seed").alias("user_id"), "item_id", F.col(score).alias("score")
    ).join(f.users, "user_id", "left_semi")
    return B.ranked(scored, f.candidates, f.exclusions, method, f.k)


def cooccurrence_lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
    recent = B.recent_items(f.before, f.settings.cooccurrence_items)
    own = neighbour_lists(
        f, B.cooccurrence_neighbours(recent, f.settings), "together", B.COOCCURRENCE
    )
    return B.fill_up(own, popular, f.k, B.COOCCURRENCE)


def item_knn_lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
    _, neighbours = B.knn_neighbours(f.before, L.DEFAULT_LABEL_WEIGHTS, f.test_start, f.settings)
    own = neighbour_lists(f, neighbours, "similarity", B.ITEM_KNN)
    return B.fill_up(own, popular, f.k, B.ITEM_KNN)


def similar_lists(similar: DataFrame, f: EvalFrames, popular: DataFrame, method: str) -> DataFrame:
    """``SIMILAR_SCORED`` rows (a model's or ALS's nearest items) -> ``method``'s lists for the
    seeds of ``f``, filled from ``popular``."""
    neighbours = similar.select(
        F.col("item_id").alias("seed"), F.col("similar_item_id").alias("item_id"), "score"
    )
    return B.fill_up(neighbour_lists(f, neighbours, "score", method), popular, f.k, method)


# name -> (seed frames, the popularity lists) -> that baseline's seed lists; ALS is built in
# ``jobs`` (its neighbours need the factor table) through ``similar_lists``
BASELINES: dict[str, Callable[[EvalFrames, DataFrame], DataFrame]] = {
    B.POPULARITY: lambda f, popular: popular,
    B.RECENT_POPULARITY: E.recent_popularity_lists,
    B.COOCCURRENCE: cooccurrence_lists,
    B.ITEM_KNN: item_knn_lists,
}
METHODS = (*BASELINES, B.ALS_METHOD)


def query_lists(seed_lists: DataFrame, queries: DataFrame) -> DataFrame:
    """Seed lists (``RANKED_LISTS``, ``user_id`` = seed) -> each query's list
    (``RANKED_LISTS``, ``user_id`` = query id)."""
    by_seed = seed_lists.withColumnRenamed("user_id", "seed")
    return S.RANKED_LISTS.select(
        by_seed.join(queries.select("query_id", "seed"), "seed").withColumnRenamed(
            "query_id", "user_id"
        )
    )


def relevant(queries: DataFrame) -> DataFrame:
    """(user_id = query id, item_id = its target): what ``Mx.per_user_metrics`` judges."""
    return queries.select(F.col("query_id").alias("user_id"), F.col("target").alias("item_id"))
