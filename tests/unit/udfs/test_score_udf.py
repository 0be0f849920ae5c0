"""The scoring UDF's per-worker cache: two models in one session never get mixed up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import SparkSession

from jobs.runtime import scoring
from pipelines.model import ModelConfig, TwoTower
from udfs import score as U
from udfs.pyfunc import UserTower

pytestmark = pytest.mark.unit

HISTORY = 4


def payload(num_items: int, seed: int) -> U.ScoringPayload:
    """A randomly initialised two-tower model over ``num_items`` indices, as a payload."""
    torch.manual_seed(seed)
    config = ModelConfig(
        num_items=num_items, num_categories=3, history_length=HISTORY, dim=8,
        item_embedding_dim=8, category_embedding_dim=4, encoder="mean",
    )  # fmt: skip
    model = TwoTower(config, torch.arange(num_items) % 3).eval()
    tower = UserTower(None, state={"model_config": config.to_dict(), "model": model.state_dict()})
    candidates = np.ones(num_items, dtype=bool)
    candidates[:2] = False  # PAD and OOV
    return U.ScoringPayload(
        model_state=tower.state_bytes(),
        item_vectors=tower.item_vectors(),
        candidates=candidates,
        item_ids=np.array(["", ""] + [f"i{i}" for i in range(2, num_items)], dtype=object),
        popularity=np.arange(2, num_items, dtype=np.int64),
    )


def inputs(num_items: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 64
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "hist_item_idx": [list(rng.integers(2, num_items, HISTORY)) for _ in range(n)],
            "hist_type_idx": [[1] * HISTORY for _ in range(n)],
            "hist_age_s": [[60] * HISTORY for _ in range(n)],
            "hist_len": [HISTORY] * n,
            "excluded_idx": [[] for _ in range(n)],
        }
    )


def test_payload_key_changes_with_any_part_of_the_payload() -> None:
    a, b = payload(40, seed=1), payload(40, seed=2)
    assert a.key == payload(40, seed=1).key
    assert a.key != b.key
    fewer = U.ScoringPayload(a.model_state, a.item_vectors, ~a.candidates, a.item_ids, a.popularity)
    assert fewer.key != a.key


def test_a_bfloat16_payload_scores_in_bfloat16_close_to_float32() -> None:
    full = payload(40, seed=1)
    half = dataclasses.replace(full, precision="bfloat16")
    assert half.key != full.key  # a worker never reuses the float32 scorer for it
    loaded = U._load(half)
    assert {p.dtype for p in loaded.tower.model.parameters()} == {torch.bfloat16}
    assert loaded.scorer.items.dtype == torch.bfloat16
    frame = inputs(40)
    got = U.score_frame(loaded, frame, k=5)
    want = U.score_frame(U._load(full), frame, k=5)
    assert got["score"].dtype == np.float32
    # bfloat16 scores widened to float32: the low 16 bits are zero
    assert (got["score"].to_numpy().view(np.uint32) & 0xFFFF == 0).all()
    assert (want["score"].to_numpy().view(np.uint32) & 0xFFFF != 0).any()
    overlap = [
        len(set(g["item_id"]) & set(w["item_id"])) / 5
        for (_, g), (_, w) in zip(got.groupby("user_id"), want.groupby("user_id"), strict=True)
    ]
    assert np.mean(overlap) >= 0.8


def test_two_models_scored_in_turn_on_reused_workers_each_use_their_own(
    spark: SparkSession,
) -> None:
    # The second night's evaluate scores tonight's model, then the champion: their vocabularies
    # differ by an item. Python workers are reused (Spark's default), so a cache keyed by the
    # broadcast object's id() handed the second task the first model.
    assert spark.conf.get("spark.python.worker.reuse", "true") == "true"
    small, large = payload(30, seed=1), payload(31, seed=2)
    for first, second in ((large, small), (small, large)):
        for data in (first, second):
            frame = inputs(len(data.item_ids) - 1)  # indices valid for both models
            df = spark.createDataFrame(frame).repartition(2)
            scored, bc = scoring.score_users(spark, df, data, k=5)
            got = scored.toPandas().sort_values(["user_id", "rank"]).reset_index(drop=True)
            bc.unpersist(blocking=True)
            bc.destroy()
            here = U.score_frame(U._load(data), frame, k=5)
            expected = here.sort_values(["user_id", "rank"]).reset_index(drop=True)
            assert list(got["item_id"]) == list(expected["item_id"])
            np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5)
