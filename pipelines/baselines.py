"""Baselines a Spark user would build instead of cartwheel, all computed in Spark on the same
train window, and the rules every method's lists share.

Every method produces (user_id, item_id, rank) for the evaluated users: at most K candidate
items, none the user's exclusion rule hides. Methods that can come up short (co-occurrence for
a user whose recent items co-occur with few others, ALS for a user it never saw) are filled up
to K with the global popularity list, so every method is judged on K items per user.

  popularity          item events per item in the train window
  recent_popularity   the same over the window's last ``recent_days`` days
  cooccurrence        item-to-item: how many users had both items among their last N items;
                      a user's list sums the co-occurrence counts of their own last N items
  item_knn            item-based kNN: cosine similarity between items' user vectors, where a
                      user-item strength sums event-type weights decayed by age (half-life);
                      a user's list sums strength(own item) x similarity over their last N
                      items, each item keeping its ``knn_neighbours`` most similar items
  buy_again           the user's own items by the same decayed strength (re-orders first:
                      purchases weigh most); what the exclusion rule hides is not shown
  als                 Spark MLlib ALS with implicit feedback on label-weighted event counts

Every setting here has a default and is tuned per method on the val split by ``evaluate``
(``pipelines/evaluation.py: GRIDS``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines import label as L
from pipelines import metrics as Mx
from pipelines import schemas as S
from pipelines.frames import key_index

POPULARITY, RECENT_POPULARITY, COOCCURRENCE, ALS_METHOD = (
    "popularity",
    "recent_popularity",
    "cooccurrence",
    "als",
)
ITEM_KNN, BUY_AGAIN = "item_knn", "buy_again"


@dataclass(frozen=True, kw_only=True)
class BaselineSettings:
    recent_days: int = 2
    cooccurrence_items: int = 20
    cooccurrence_neighbours: int = 50
    knn_items: int = 50  # a user's most recent items that seed (and train) item-kNN
    knn_neighbours: int = 100
    knn_half_life_days: float = 30.0
    buy_again_half_life_days: float = 30.0
    als_rank: int = 32
    als_iterations: int = 10
    als_reg: float = 0.1
    als_alpha: float = 10.0
    # Spark's default is 10 user and 10 item blocks; the job passes its cluster's parallelism
    # (fewer blocks on a small session cut each iteration's idle tasks). ALS seeds each block's
    # starting factors, so the block count also picks the random start.
    als_blocks: int = 10
    seed: int = 0


def allowed(lists: DataFrame, candidates: DataFrame, exclusions: DataFrame) -> DataFrame:
    """Keep (user_id, item_id, ...) rows whose item is a candidate and not excluded for the user."""
    return lists.join(
        F.broadcast(candidates.select("item_id")), on="item_id", how="left_semi"
    ).join(exclusions.select("user_id", "item_id"), on=["user_id", "item_id"], how="left_anti")


def ranked(
    scored: DataFrame, candidates: DataFrame, exclusions: DataFrame, method: str, k: int
) -> DataFrame:
    """(user_id, item_id, score) -> ``method``'s lists: each user's top k allowed items."""
    return Mx.rank_by_score(
        allowed(scored, candidates, exclusions).withColumn("method", F.lit(method)), k
    )


def global_list(
    counts: DataFrame,
    users: DataFrame,
    candidates: DataFrame,
    exclusions: DataFrame,
    k: int,
    method: str,
) -> DataFrame:
    """One global ranking (item_id, score) -> every user's top k of it after their exclusions.

    Only the global top (k + the largest per-user exclusion count) can ever be needed, so the
    users x items product never exceeds that many rows per user."""
    extra = most_excluded(exclusions)
    top = (
        counts.join(F.broadcast(candidates.select("item_id")), on="item_id", how="left_semi")
        .orderBy(F.col("score").desc(), F.col("item_id"))
        .limit(k + extra)
    )
    per_user = users.select("user_id").crossJoin(F.broadcast(top))
    kept = per_user.join(
        exclusions.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti"
    )
    return Mx.rank_by_score(kept.withColumn("method", F.lit(method)), k)


def most_excluded(exclusions: DataFrame) -> int:
    """The largest number of items any one user has excluded (one small aggregate)."""
    most = exclusions.groupBy("user_id").count().agg(F.max("count")).first()
    return int(most[0]) if most is not None and most[0] is not None else 0


def item_counts(events: DataFrame, since: dt.date | None = None) -> DataFrame:
    """(item_id, score): item events per item (optionally only from ``since``)."""
    rows = events.where(F.col("item_id").isNotNull())
    if since is not None:
        rows = rows.where(F.col("event_time") >= L.day_start(since))
    return rows.groupBy("item_id").agg(F.count(F.lit(1)).cast("double").alias("score"))


def fill_up(primary: DataFrame, fallback: DataFrame, k: int, method: str) -> DataFrame:
    """(method, user_id, item_id, rank) lists topped up to k from ``fallback``'s lists (items
    not already listed), keeping ``primary``'s order first."""
    both = primary.select("user_id", "item_id", "rank", F.lit(0).alias("tier")).unionByName(
        fallback.join(
            primary.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti"
        ).select("user_id", "item_id", "rank", F.lit(1).alias("tier"))
    )
    order = Window.partitionBy("user_id").orderBy("tier", "rank", "item_id")
    return S.RANKED_LISTS.select(
        both.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
        .withColumn("method", F.lit(method))
    )


def recent_items(events: DataFrame, n: int) -> DataFrame:
    """(user_id, item_id, recency): each user's last n distinct items (recency 1 = latest)."""
    last_seen = (
        events.where(F.col("item_id").isNotNull())
        .groupBy("user_id", "item_id")
        .agg(F.max("event_time").alias("t"))
    )
    order = Window.partitionBy("user_id").orderBy(F.col("t").desc(), F.col("item_id"))
    return (
        last_seen.withColumn("recency", F.row_number().over(order))
        .where(F.col("recency") <= n)
        .select("user_id", "item_id", "recency")
    )


def pair_sums(rows: DataFrame, weight: Column) -> DataFrame:
    """(user_id, item_id, ...) rows, at most one per user and item -> (seed, item_id, total):
    for each ordered pair of distinct items that share users, the sum over those users of the
    product of the two rows' ``weight``. The sum is symmetric: each unordered pair is summed
    once (half the pair rows through the shuffle), then listed both ways."""
    w = rows.select("user_id", "item_id", weight.cast("double").alias("w"))
    a, b = w.alias("a"), w.alias("b")
    half = (
        a.join(
            b,
            (F.col("a.user_id") == F.col("b.user_id")) & (F.col("a.item_id") < F.col("b.item_id")),
        )
        .groupBy(F.col("a.item_id").alias("x"), F.col("b.item_id").alias("y"))
        .agg(F.sum(F.col("a.w") * F.col("b.w")).alias("total"))
    )
    both_ways = F.array(
        F.struct(F.col("x").alias("seed"), F.col("y").alias("item_id"), "total"),
        F.struct(F.col("y").alias("seed"), F.col("x").alias("item_id"), "total"),
    )
    return half.select(F.explode(both_ways).alias("p")).select("p.seed", "p.item_id", "p.total")


def cooccurrence_lists(
    events: DataFrame,
    users: DataFrame,
    candidates: DataFrame,
    exclusions: DataFrame,
    k: int,
    settings: BaselineSettings,
) -> DataFrame:
    """Item-to-item co-occurrence over users' last N items -> (method, user_id, item_id, rank)
    before fill-up (users without recent items get no rows)."""
    recent = recent_items(events, settings.cooccurrence_items)
    neighbours = cooccurrence_neighbours(recent, settings)
    seeds = recent.join(users.select("user_id"), on="user_id", how="left_semi").select(
        "user_id", F.col("item_id").alias("seed")
    )
    scored = (
        seeds.join(neighbours, on="seed", how="inner")
        .groupBy("user_id", "item_id")
        .agg(F.sum("together").alias("score"))
    )
    return ranked(scored, candidates, exclusions, COOCCURRENCE, k)


def cooccurrence_neighbours(recent: DataFrame, settings: BaselineSettings) -> DataFrame:
    """``recent_items`` rows -> (seed, item_id, together): each item's ``cooccurrence_neighbours``
    items most often among the same users' last N items."""
    pairs = pair_sums(recent, F.lit(1.0)).withColumnRenamed("total", "together")
    nearest = Window.partitionBy("seed").orderBy(F.col("together").desc(), F.col("item_id"))
    return (
        pairs.withColumn("n", F.row_number().over(nearest))
        .where(F.col("n") <= settings.cooccurrence_neighbours)
        .drop("n")
    )


@dataclass(frozen=True)
class FittedAls:
    """An implicit ALS model and the dense indices it was fitted on (``u``, ``i``)."""

    model: ALSModel
    user_ids: DataFrame  # (user_id, u)
    item_ids: DataFrame  # (item_id, i)

    def item_vectors(self) -> DataFrame:
        """(item_id, vector): the fitted item factors, one array of floats per item."""
        factors = self.model.itemFactors.select(
            F.col("id").alias("i"), F.col("features").alias("vector")
        )
        return factors.join(self.item_ids, "i").select("item_id", "vector")


def fit_als(events: DataFrame, weights: dict[str, float], settings: BaselineSettings) -> FittedAls:
    """Implicit ALS on label-weighted (user, item) event counts of ``events``."""
    weight = F.create_map(
        *[F.lit(x) for kv in sorted(weights.items()) for x in (kv[0], float(kv[1]))]
    )
    rows = events.where(F.col("item_id").isNotNull())
    user_ids = key_index(rows, "user_id", "u")
    item_ids = key_index(rows, "item_id", "i")
    ratings = (
        rows.groupBy("user_id", "item_id")
        .agg(F.sum(F.coalesce(weight[F.col("event_type")], F.lit(0.1))).cast("float").alias("r"))
        .join(user_ids, "user_id")
        .join(item_ids, "item_id")
        .select("u", "i", "r")
    )
    model = ALS(
        rank=settings.als_rank, maxIter=settings.als_iterations, regParam=settings.als_reg,
        alpha=settings.als_alpha, implicitPrefs=True, userCol="u", itemCol="i", ratingCol="r",
        coldStartStrategy="drop", seed=settings.seed, nonnegative=False,
        numUserBlocks=settings.als_blocks, numItemBlocks=settings.als_blocks,
    ).fit(ratings)  # fmt: skip
    return FittedAls(model, user_ids, item_ids)


def als_lists(
    events: DataFrame,
    users: DataFrame,
    candidates: DataFrame,
    exclusions: DataFrame,
    weights: dict[str, float],
    k: int,
    settings: BaselineSettings,
) -> DataFrame:
    """Implicit ALS on label-weighted event counts -> (method, user_id, item_id, rank) before
    fill-up (users absent from the train window get no rows)."""
    fitted = fit_als(events, weights, settings)
    user_ids, item_ids = fitted.user_ids, fitted.item_ids
    extra = most_excluded(exclusions)
    wanted = users.select("user_id").join(user_ids, "user_id").select("u")
    recs = (
        fitted.model.recommendForUserSubset(wanted, k + extra)
        .select("u", F.explode("recommendations").alias("r"))
        .select("u", F.col("r.i").alias("i"), F.col("r.rating").cast("double").alias("score"))
        .join(user_ids, "u")
        .join(item_ids, "i")
        .select("user_id", "item_id", "score")
    )
    return ranked(recs, candidates, exclusions, ALS_METHOD, k)


@dataclass(frozen=True)
class Decayed:
    """What a baseline built on recency-decayed strengths is fitted on and ranks for: events
    before ``as_of``, the users to list, candidate items, hidden (user, item) pairs, event-type
    weights, K and the settings."""

    events: DataFrame
    users: DataFrame
    candidates: DataFrame
    exclusions: DataFrame
    weights: dict[str, float]
    as_of: dt.date
    k: int
    settings: BaselineSettings


def strengths(
    events: DataFrame, weights: dict[str, float], as_of: dt.date, half_life_days: float
) -> DataFrame:
    """(user_id, item_id, strength, last_t): per user and item, the sum over their events of the
    event type's weight x 2^(-age / half-life), age in days before ``as_of``'s start (types
    without a weight count 0.1), and the time of the latest such event."""
    return (
        events.where(F.col("item_id").isNotNull())
        .groupBy("user_id", "item_id")
        .agg(
            F.sum(decayed_weight(weights, as_of, half_life_days)).alias("strength"),
            F.max("event_time").alias("last_t"),
        )
    )


def decayed_weight(weights: dict[str, float], as_of: dt.date, half_life_days: float) -> Column:
    """One event's part of a strength: its type's weight (0.1 without one) x 2^(-age /
    half-life), age in days before ``as_of``'s start."""
    weight = F.create_map(
        *[F.lit(x) for kv in sorted(weights.items()) for x in (kv[0], float(kv[1]))]
    )
    age_days = (L.day_start(as_of).cast("double") - F.col("event_time").cast("double")) / 86_400.0
    decay = F.pow(F.lit(2.0), -F.greatest(age_days, F.lit(0.0)) / F.lit(float(half_life_days)))
    return F.coalesce(weight[F.col("event_type")], F.lit(0.1)) * decay


def most_recent(strength: DataFrame, n: int) -> DataFrame:
    """``strengths`` rows narrowed to each user's ``n`` most recently touched items."""
    order = Window.partitionBy("user_id").orderBy(F.col("last_t").desc(), F.col("item_id"))
    return strength.withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= n).drop("_r")


def item_neighbours(strength: DataFrame, n: int) -> DataFrame:
    """(seed, item_id, similarity): each item's ``n`` most cosine-similar items, where an item is
    its vector of user strengths (only users who touched both items add to the dot product)."""
    norms = strength.groupBy("item_id").agg(F.sqrt(F.sum(F.col("strength") ** 2)).alias("norm"))
    dots = pair_sums(strength, F.col("strength")).withColumnRenamed("total", "dot")
    similar = (
        dots.join(
            norms.select(F.col("item_id").alias("seed"), F.col("norm").alias("n_seed")), "seed"
        )
        .join(norms, "item_id")
        .select(
            "seed",
            "item_id",
            (F.col("dot") / (F.col("n_seed") * F.col("norm"))).alias("similarity"),
        )
    )
    nearest = Window.partitionBy("seed").orderBy(F.col("similarity").desc(), F.col("item_id"))
    return similar.withColumn("_n", F.row_number().over(nearest)).where(F.col("_n") <= n).drop("_n")


def knn_neighbours(
    events: DataFrame, weights: dict[str, float], as_of: dt.date, settings: BaselineSettings
) -> tuple[DataFrame, DataFrame]:
    """Item-kNN's fit: (the users' strengths of their last ``knn_items`` items, each item's
    ``knn_neighbours`` most similar items as ``item_neighbours`` rows)."""
    strength = most_recent(
        strengths(events, weights, as_of, settings.knn_half_life_days), settings.knn_items
    )
    return strength, item_neighbours(strength, settings.knn_neighbours)


def item_knn_lists(fit: Decayed) -> DataFrame:
    """Item-kNN -> (method, user_id, item_id, rank) before fill-up: a user's score for an item is
    the sum over their last ``knn_items`` items of strength x similarity (users without item
    events get no rows)."""
    strength, neighbours = knn_neighbours(fit.events, fit.weights, fit.as_of, fit.settings)
    seeds = strength.join(fit.users.select("user_id"), "user_id", "left_semi").select(
        "user_id", F.col("item_id").alias("seed"), "strength"
    )
    scored = (
        seeds.join(neighbours, "seed")
        .groupBy("user_id", "item_id")
        .agg(F.sum(F.col("strength") * F.col("similarity")).alias("score"))
    )
    return ranked(scored, fit.candidates, fit.exclusions, ITEM_KNN, fit.k)


def buy_again_lists(fit: Decayed) -> DataFrame:
    """The user's own items by decayed strength -> (method, user_id, item_id, rank) before
    fill-up (at most the items the user touched, less what the exclusion rule hides)."""
    own = strengths(fit.events, fit.weights, fit.as_of, fit.settings.buy_again_half_life_days)
    own = own.join(fit.users.select("user_id"), "user_id", "left_semi")
    scored = own.select("user_id", "item_id", F.col("strength").alias("score"))
    return ranked(scored, fit.candidates, fit.exclusions, BUY_AGAIN, fit.k)
