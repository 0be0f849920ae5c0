"""Scoring with a resolved model, shared by ``score`` and ``evaluate``: the candidate items
(in the model's vocabulary and sellable), the popularity fallback order, the payload every
scoring task receives, and the pandas-UDF scoring of users and of item neighbours."""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated, Any, TypeVar, cast

import numpy as np
import pandas as pd
from pydantic import AfterValidator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout
from jobs.runtime.registry import ResolvedModel
from jobs.runtime.storage import Storage
from pipelines import label as L
from pipelines import recs as R
from pipelines import schemas as S
from pipelines.errors import InputError
from pipelines.model import PRECISIONS
from udfs.score import ScoringPayload

log = logging.getLogger("cartwheel")


C = TypeVar("C")
AUTO_EXCLUDE = "auto"
DEFAULT_EXCLUDE = "purchased"


def one_of(*values: str) -> AfterValidator:
    """A pydantic validator: the value must be one of ``values``."""

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"one of {', '.join(values[:-1])} or {values[-1]}")
        return value

    return AfterValidator(check)


# The ``--exclude`` rule of score and evaluate: which of a user's items are never recommended.
ExcludeRule = Annotated[str, one_of(*R.EXCLUDE_RULES, AUTO_EXCLUDE)]
EXCLUDE_HELP = (
    "items hidden from a user: purchased, interacted (any item event) or none; auto: the rule "
    "the ingested source suits (raw/_source.json: none for Online Retail, whose customers "
    "re-order, interacted for MovieLens ratings), else purchased"
)


# The ``--precision`` of score and evaluate.
Precision = Annotated[str, one_of(*PRECISIONS)]
PRECISION_HELP = (
    "what the user tower and the item table compute in: float32, or bfloat16 (faster where the "
    "hardware has bfloat16 arithmetic: GPUs, CPUs with AVX-512 BF16 or AMX; near-equal scores "
    "may swap places; bench/results/score-precision.json has its speed and quality here)"
)


def resolve_exclude(storage: Storage, root: str, rule: str) -> str:
    """The exclusion rule to apply: ``rule``, or for ``auto`` the one ``raw/_source.json``
    names (written by ingest), else ``purchased``."""
    if rule != AUTO_EXCLUDE:
        return rule
    path = layout.raw_source(root)
    if not storage.exists(path):
        return DEFAULT_EXCLUDE
    named = storage.read_json(path).get("exclude")
    if named not in R.EXCLUDE_RULES:
        raise InputError(
            f"{path}: exclude={named!r} is not a rule ({', '.join(R.EXCLUDE_RULES)}); fix the "
            "file or pass --exclude"
        )
    return str(named)


def with_resolved_exclude(storage: Storage, config: C) -> C:
    """``config`` (a score or evaluate config) with ``exclude`` resolved (see
    ``resolve_exclude``), so its manifest records the rule that was applied."""
    rule = resolve_exclude(storage, config.data_root, config.exclude)  # type: ignore[attr-defined]
    if rule == config.exclude:  # type: ignore[attr-defined]
        return config
    log.info("[exclude] auto -> %s (%s)", rule, layout.raw_source(config.data_root))  # type: ignore[attr-defined]
    return dataclasses.replace(config, exclude=rule)  # type: ignore[type-var]


def sellable_candidates(
    spark: SparkSession, model: ResolvedModel, catalog: DataFrame
) -> tuple[np.ndarray, dict[str, int]]:
    """(candidate mask over the model's item indices, counts): an item may be recommended only
    if it is in the model's vocabulary and sellable in the catalog (missing -> not sellable)."""
    flags: pd.DataFrame = cast(
        pd.DataFrame,
        model.item_index(spark)
        .join(catalog.select("item_id", "is_sellable"), on="item_id", how="left")
        .select(
            "item_idx",
            F.col("is_sellable").isNotNull().alias("in_catalog"),
            F.coalesce("is_sellable", F.lit(False)).alias("sellable"),
        )
        .toPandas(),  # one row per vocabulary item: bounded by the catalog, not the logs
    )
    mask = np.zeros(len(model.item_ids), dtype=bool)
    mask[flags.loc[flags["sellable"], "item_idx"].to_numpy()] = True
    counts = {
        "vocabulary_items": len(flags),
        "items_missing_from_catalog": int((~flags["in_catalog"]).sum()),
        "items_not_sellable": int((flags["in_catalog"] & ~flags["sellable"]).sum()),
        "candidate_items": int(mask.sum()),
    }
    if not mask.any():
        raise InputError(
            f"model {model.uri}: none of its {len(flags):,} items is sellable in the catalog; "
            "nothing can be recommended"
        )
    return mask, counts


def candidate_items(spark: SparkSession, model: ResolvedModel, candidates: np.ndarray) -> DataFrame:
    """(item_id) of the candidate items, as a small DataFrame."""
    ids = model.item_ids[np.flatnonzero(candidates)].astype(str)
    return spark.createDataFrame(pd.DataFrame({"item_id": ids}), "item_id string")


def popularity_order(popularity: DataFrame, candidates: np.ndarray, limit: int) -> np.ndarray:
    """Candidate item indices, most events first (ties by index), at most ``limit``; candidates
    never seen fill the tail in index order."""
    top: pd.DataFrame = cast(
        pd.DataFrame,
        popularity.orderBy(F.col("events").desc(), F.col("item_idx"))
        .limit(limit + int((~candidates).sum()))
        .toPandas(),  # bounded by ``limit`` + non-candidates
    )
    order = [i for i in top["item_idx"].to_numpy(dtype=np.int64) if candidates[i]]
    seen = set(order)
    rest = [i for i in np.flatnonzero(candidates) if i not in seen]
    return np.asarray((order + rest)[:limit], dtype=np.int64)


def payload(
    model: ResolvedModel, candidates: np.ndarray, popularity: np.ndarray, precision: str
) -> ScoringPayload:
    return ScoringPayload(
        model_state=model.tower.state_bytes(),
        item_vectors=np.ascontiguousarray(model.vectors, dtype=np.float32),
        candidates=candidates,
        item_ids=model.item_ids,
        popularity=popularity,
        precision=precision,
    )


def score_users(
    spark: SparkSession, inputs: DataFrame, data: ScoringPayload, k: int
) -> tuple[DataFrame, Any]:
    """Scoring inputs -> ``S.SCORED`` rows via the broadcast payload (caller unpersists
    the returned broadcast when done)."""
    from udfs import score as U

    bc = spark.sparkContext.broadcast(data)
    scored = inputs.mapInPandas(U.score_users(bc, k), S.SCORED.schema)  # type: ignore[arg-type]
    return scored, bc


def similar_items(spark: SparkSession, data: ScoringPayload, k: int) -> tuple[DataFrame, Any]:
    """Every vocabulary item -> its k nearest candidate items (``S.SIMILAR_SCORED``)."""
    from udfs import score as U

    bc = spark.sparkContext.broadcast(data)
    n = len(data.item_ids)
    parts = max(1, min(spark.sparkContext.defaultParallelism * 2, n // 20_000 + 1))
    items = spark.range(L.FIRST_INDEX, n, numPartitions=parts).select(
        F.col("id").cast("int").alias("item_idx")
    )
    similar = items.mapInPandas(U.similar_items(bc, k), S.SIMILAR_SCORED.schema)  # type: ignore[arg-type]
    return similar, bc
