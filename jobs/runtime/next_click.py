"""Evaluate's next-click section (``evaluate --next-click``): the model's ``item_similar``
against item -> item baselines, on the next item each session touched in the test days.

The logic is ``pipelines/sessions.py``; what lives here needs the registered model or a small
table on the driver: the model's nearest items (its item vectors, as ``score`` builds
``recs/item_similar``) and ALS's (the fitted item factors, one row per item the window saw,
broadcast to a ``mapInPandas`` scorer). Baselines are tuned on the val days' queries (lists
built before the val start) with the same grids as the user lists, then measured on test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import registry, scoring
from jobs.runtime.lists import Held, search_grid
from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import metrics as Mx
from pipelines import recs as R
from pipelines import schemas as S
from pipelines import sessions as N
from pipelines.errors import InputError

if TYPE_CHECKING:
    from jobs.evaluate import EvaluateConfig

log = logging.getLogger("cartwheel")


def model_similar(
    spark: SparkSession,
    model: registry.ResolvedModel,
    mask: np.ndarray,
    f: E.EvalFrames,
    held: Held,
    precision: str,
) -> DataFrame:
    """The model's nearest candidate items per vocabulary item (``SIMILAR_SCORED``), as score
    writes ``recs/item_similar`` (in ``precision``)."""
    item_index = model.item_index(spark)
    popularity = scoring.popularity_order(
        R.item_popularity(f.before, item_index, f.test_start), mask, f.k
    )
    similar, bc = scoring.similar_items(
        spark, scoring.payload(model, mask, popularity, precision), f.k
    )
    held.broadcasts.append(bc)
    return similar


def als_similar(spark: SparkSession, f: E.EvalFrames, held: Held) -> DataFrame:
    """ALS (fitted on ``f.before``) -> each seed's nearest candidate items by cosine of the
    item factors (``SIMILAR_SCORED``)."""
    from udfs import score as U

    fitted = B.fit_als(f.before, L.DEFAULT_LABEL_WEIGHTS, f.settings)
    flagged = (
        fitted.item_vectors()
        .join(f.candidates.select("item_id", F.lit(True).alias("hit")), "item_id", "left")
        .select("item_id", "vector", F.coalesce("hit", F.lit(False)).alias("is_candidate"))
    )
    # the factor table: one row per item of the window, not per event
    table: pd.DataFrame = cast(pd.DataFrame, flagged.toPandas())
    if table.empty:
        return spark.createDataFrame([], S.SIMILAR_SCORED.schema)
    vectors = np.stack(table["vector"].to_numpy()).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    ids = table["item_id"].to_numpy(dtype=object)
    bc = spark.sparkContext.broadcast(
        U.VectorTable(vectors, table["is_candidate"].to_numpy(dtype=bool), ids)
    )
    held.broadcasts.append(bc)
    index = spark.createDataFrame(
        pd.DataFrame({"item_id": ids.astype(str), "item_idx": np.arange(len(ids), dtype=np.int64)})
    )
    seeds = f.users.select(F.col("user_id").alias("item_id")).join(index, "item_id")
    return seeds.select("item_idx").mapInPandas(
        U.nearest_items(bc, f.k),  # type: ignore[arg-type]
        S.SIMILAR_SCORED.schema,
    )


def seed_lists(
    spark: SparkSession, name: str, f: E.EvalFrames, popular: DataFrame, held: Held
) -> DataFrame:
    """One baseline's lists per seed of ``f`` (not yet computed)."""
    if name == B.ALS_METHOD:
        return N.similar_lists(als_similar(spark, f, held), f, popular, name)
    return N.BASELINES[name](f, popular)


def tune(
    spark: SparkSession,
    names: list[str],
    events: DataFrame,
    bounds: dict[str, dt.date],
    candidates: DataFrame,
    defaults: B.BaselineSettings,
    metric: str,
    k: int,
    held: Held,
) -> tuple[dict[str, B.BaselineSettings], dict[str, Any]]:
    """Each of ``names`` that has a grid, tuned on the val days' queries (lists from the events
    before the val start) on ``metric`` at ``k``."""
    grids = {n: E.GRIDS[n] for n in names if n in E.GRIDS}
    if not grids:
        return {}, {}
    start, end = bounds["val_start"], bounds["test_start"]
    queries = held.keep(N.next_click_queries(events, start, end))
    before = held.keep(events.where(F.col("event_time") < L.day_start(start)))
    f = N.seed_frames(before, queries, candidates, k, start, defaults)
    popular = held.lists("popularity (next click, val)", E.popularity_lists(f))
    relevant = N.relevant(queries)
    chosen: dict[str, B.BaselineSettings] = {}
    report: dict[str, Any] = {}

    def lists_at(name: str, point: dict[str, Any]) -> DataFrame:
        g = dataclasses.replace(f, settings=E.tuned(defaults, point))
        return seed_lists(spark, name, g, popular, held)

    def per_query(lists: DataFrame) -> DataFrame:
        return Mx.per_user_metrics(N.query_lists(lists, queries), relevant, [k])

    for name, grid in grids.items():
        best, tried = search_grid(
            "[evaluate] next click: tuning", name, grid, lists_at, per_query, metric,
            f"{metric}@{k}",
        )  # fmt: skip
        chosen[name] = E.tuned(defaults, best)
        report[name] = {"chosen": best, "tried": [{**p, f"{metric}@{k}": s} for p, s in tried]}
    return chosen, {"split": "val", "val_start": start.isoformat(), "methods": report}


def measure(
    spark: SparkSession,
    config: EvaluateConfig,
    models: dict[str, tuple[registry.ResolvedModel, np.ndarray]],
    events: DataFrame,
    before: DataFrame,
    bounds: dict[str, dt.date],
    candidates: DataFrame,
    n_candidates: int,
    held: Held,
) -> tuple[E.Table, dict[str, Any]]:
    """(the next-click metrics table: method -> K -> recall (= HR), map (= MRR), ndcg, hit_rate,
    users (= queries), and its section of the report: queries, cold queries, tuning, intervals
    over sessions). ``models``: method -> (model, its candidate mask) for the model and the
    champion; ``events`` the window's, ``before`` those before the test start; ``candidates``
    the candidate items, ``n_candidates`` how many (for coverage)."""
    names = [n for n in config.baselines if n in N.METHODS]
    defaults = config.settings(spark)
    settings, tuning = (
        tune(spark, names, events, bounds, candidates, defaults, config.promotion_metric,
             config.promotion_k, held)
        if config.tune_baselines else ({}, {})
    )  # fmt: skip
    start = bounds["test_start"]
    queries = held.keep(N.next_click_queries(events, start))
    n_queries = queries.count()
    if n_queries == 0:
        raise InputError(
            f"nothing to judge on next clicks: no session in the test days (from {start}) "
            "touched two different items one after the other"
        )
    f = N.seed_frames(before, queries, candidates, config.max_k, start, defaults)
    popular = held.lists("popularity (next click)", E.popularity_lists(f))
    parts = []
    for method, (model, mask) in models.items():
        similar = model_similar(spark, model, mask, f, held, config.precision)
        parts.append(
            held.lists(f"{method} (next click)", N.similar_lists(similar, f, popular, method))
        )
    for name in [n for n in names if n != B.POPULARITY]:  # popularity's lists are ``popular``
        g = dataclasses.replace(f, settings=settings.get(name, defaults))
        parts.append(held.lists(f"{name} (next click)", seed_lists(spark, name, g, popular, held)))
    if B.POPULARITY in names:
        parts.append(popular)
    lists = N.query_lists(functools.reduce(DataFrame.unionByName, parts), queries)
    relevant = N.relevant(queries)
    per_query = held.keep(Mx.per_user_metrics(lists, relevant, config.ks))
    rows = [r.asDict() for r in Mx.ranking_metrics(lists, relevant, config.ks, n_candidates, per_query).collect()]  # fmt: skip
    intervals: dict[str, Any] = {}
    if config.bootstrap_replicates:
        wanted = list(
            dict.fromkeys(
                [(config.promotion_metric, config.promotion_k), ("recall", 20), ("map", 20)]
            )
        )
        wanted = [(m, k) for m, k in wanted if k in config.ks]
        found = Mx.bootstrap(
            per_query,
            wanted,
            E.MODEL,
            config.bootstrap_replicates,
            config.seed,
            unit=N.session_of(F.col("user_id")),
        )
        intervals = E.intervals_table([r.asDict() for r in found.collect()])
    seen = (
        before.where(F.col("item_id").isNotNull()).select(F.col("item_id").alias("seed")).distinct()
    )
    cold = queries.join(seen, "seed", "left_anti").count()
    table = E.metrics_table(rows)
    section = {
        "queries": n_queries,
        "cold_queries": cold,
        "sessions": queries.select(N.session_of(F.col("query_id")).alias("s")).distinct().count(),
        "metrics": {
            m: {k: {"hr": v["recall"], "mrr": v["map"], "ndcg": v["ndcg"], "queries": v["users"]}
                for k, v in by_k.items()}
            for m, by_k in ((m, table[m]) for m in E.method_order(table))
        },
        "intervals": {
            m: {key.replace("recall@", "hr@").replace("map@", "mrr@"): v for key, v in by.items()}
            for m, by in intervals.items()
        },
        "tuning": tuning,
        "note": "one query per session step whose item differs from the step before; hr@K = "
        "recall@K and mrr@K = map@K with one relevant item; intervals resample sessions",
    }  # fmt: skip
    return table, section
