"""Registered models for scoring and evaluation: resolve a ``models:/`` URI, load the user tower
and the model's own item vocabulary, and build the payload every scoring task receives."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.train import default_tracking_uri
from pipelines import label as L
from pipelines import recs as R
from pipelines.errors import ConfigError, InputError
from udfs.score import ScoringPayload
from udfs.user_tower import UserTower

log = logging.getLogger("cartwheel")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
ITEM_EMBEDDINGS = "item_embeddings/item_embeddings.parquet"


@dataclass
class ResolvedModel:
    """A registered model version, loaded: its tower and its item vocabulary."""

    uri: str
    name: str
    version: str
    run_id: str
    tower: UserTower
    vectors: np.ndarray  # (num_items, dim)
    item_ids: np.ndarray  # index -> item id ("" for PAD / OOV)

    @property
    def history_length(self) -> int:
        return int(self.tower.config.history_length)

    def item_index(self, spark: SparkSession) -> DataFrame:
        """(item_id, item_idx) of the model's vocabulary, as a small DataFrame."""
        idx = np.arange(L.FIRST_INDEX, len(self.item_ids))
        frame = pd.DataFrame(
            {"item_id": self.item_ids[idx].astype(str), "item_idx": idx.astype("int32")}
        )
        return spark.createDataFrame(frame, "item_id string, item_idx int")


def configure_tracking(data_root: str) -> str:
    import mlflow

    uri = default_tracking_uri(data_root)
    mlflow.set_tracking_uri(uri)
    return uri


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def resolve(uri: str) -> ResolvedModel:
    """Load ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: InputError naming the URI when
    the model, alias or version does not exist, or its item table does not match its vectors."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.match(uri)
    if not match:
        raise ConfigError(
            f"invalid config value model_uri={uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    client = MlflowClient()
    name = match["name"]
    try:
        mv = (
            client.get_model_version_by_alias(name, match["alias"])
            if match["alias"]
            else client.get_model_version(name, match["version"])
        )
    except MlflowException as exc:
        known = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise InputError(
            f"model {uri} does not exist in the registry at {mlflow.get_tracking_uri()} "
            f"(registered models: {known}): {exc.message}"
        ) from exc
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    tower = pyfunc.get_raw_model()
    if not isinstance(tower, UserTower):
        raise InputError(f"model {uri} is not a cartwheel two-tower model ({type(tower).__name__})")
    vectors = tower.item_vectors()
    try:
        path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=ITEM_EMBEDDINGS)
    except MlflowException as exc:
        raise InputError(
            f"model {uri} has no item table ({ITEM_EMBEDDINGS} in run {mv.run_id})"
        ) from exc
    table = pd.read_parquet(path, columns=["item_idx", "item_id"])
    if (
        len(table) != len(vectors)
        or (table["item_idx"].to_numpy() != np.arange(len(vectors))).any()
    ):
        raise InputError(
            f"model {uri}: its item table ({len(table)} rows) does not match its {len(vectors)} item vectors"
        )
    item_ids = table["item_id"].fillna("").astype(str).to_numpy(dtype=object)
    log.info("[model] %s -> %s version %s (%d items)", uri, name, mv.version, len(vectors) - 2)
    return ResolvedModel(uri, name, str(mv.version), str(mv.run_id), tower, vectors, item_ids)


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


def payload(model: ResolvedModel, candidates: np.ndarray, popularity: np.ndarray) -> ScoringPayload:
    return ScoringPayload(
        model_state=model.tower.state_bytes(),
        item_vectors=np.ascontiguousarray(model.vectors, dtype=np.float32),
        candidates=candidates,
        item_ids=model.item_ids,
        popularity=popularity,
    )


def score_users(
    spark: SparkSession, inputs: DataFrame, data: ScoringPayload, k: int
) -> tuple[DataFrame, Any]:
    """Scoring inputs -> ``SCORED_SCHEMA`` rows via the broadcast payload (caller unpersists
    the returned broadcast when done)."""
    from udfs import score as U

    bc = spark.sparkContext.broadcast(data)
    scored = inputs.mapInPandas(U.score_users(bc, k), R.SCORED_SCHEMA)  # type: ignore[arg-type]
    return scored, bc


def similar_items(spark: SparkSession, data: ScoringPayload, k: int) -> tuple[DataFrame, Any]:
    """Every vocabulary item -> its k nearest candidate items (``SIMILAR_SCORED_SCHEMA``)."""
    from udfs import score as U

    bc = spark.sparkContext.broadcast(data)
    n = len(data.item_ids)
    parts = max(1, min(spark.sparkContext.defaultParallelism * 2, n // 20_000 + 1))
    items = spark.range(L.FIRST_INDEX, n, numPartitions=parts).select(
        F.col("id").cast("int").alias("item_idx")
    )
    similar = items.mapInPandas(U.similar_items(bc, k), R.SIMILAR_SCORED_SCHEMA)  # type: ignore[arg-type]
    return similar, bc
