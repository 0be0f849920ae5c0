"""Scoring: the torch top-K against a naive reference, exclusion rules, and scoring inputs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch
from pyspark.sql import SparkSession

from pipelines import label as L
from pipelines import recs as R
from pipelines import schemas as S

pytestmark = pytest.mark.unit


def naive_top_k(
    users: np.ndarray, items: np.ndarray, candidates: np.ndarray, k: int, excluded
) -> list[list[int]]:
    out = []
    for u, ex in zip(users, excluded, strict=True):
        scores = [
            (float(items[i] @ u), i)
            for i in range(len(items))
            if candidates[i] and i not in set(ex)
        ]
        scores.sort(key=lambda s: (-s[0], s[1]))
        out.append([i for _, i in scores[:k]])
    return out


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_top_k_matches_a_naive_loop_with_exclusions_and_unsellable_items() -> None:
    rng = np.random.default_rng(0)
    items, users = unit_rows(rng, 40, 8), unit_rows(rng, 13, 8)
    candidates = np.ones(40, dtype=bool)
    candidates[[L.PAD, L.OOV, 7, 11]] = False
    excluded = [
        rng.choice(np.arange(2, 40), size=rng.integers(0, 6), replace=False) for _ in range(13)
    ]
    # a tiny chunk forces several chunks through the exclusion scatter
    scorer = R.TopKScorer(
        items, candidates, device=torch.device("cpu"), max_scores_per_chunk=5 * 40
    )
    got = scorer.top_k(users, 6, excluded=excluded)
    want = naive_top_k(users, items, candidates, 6, excluded)
    assert got.items.tolist() == want
    expected = [[items[i] @ u for i in row] for row, u in zip(want, users, strict=True)]
    np.testing.assert_allclose(got.scores, np.array(expected), rtol=1e-5)


def test_grouped_top_k_equals_a_full_top_k() -> None:
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(37, 64 * 50, generator=gen)
    scores[5, :] = float("-inf")  # a row without any candidate
    scores[6, :] = float("-inf")
    scores[6, [3, 700, 3199]] = torch.tensor([0.5, 2.0, -1.0])  # fewer candidates than k
    scores[7, 128:192] = 9.0 + torch.arange(64) / 100  # every best entry in one group
    values, indices = R.grouped_top_k(scores, 10)
    want = torch.topk(scores, 10, dim=1)
    assert torch.equal(values, want.values)
    finite = torch.isfinite(want.values)
    assert torch.equal(indices[finite], want.indices[finite])
    assert indices[6, :3].tolist() == [700, 3, 3199]
    assert torch.equal(torch.gather(scores, 1, indices), values)


def test_top_k_over_many_items_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(1)
    items, users = unit_rows(rng, 3000, 8), unit_rows(rng, 9, 8)  # 47 groups of 64, padded
    candidates = rng.random(3000) < 0.7
    candidates[[L.PAD, L.OOV]] = False
    excluded = [rng.choice(np.arange(2, 3000), size=40, replace=False) for _ in range(9)]
    got = R.TopKScorer(items, candidates, device=torch.device("cpu")).top_k(
        users, 20, excluded=excluded
    )
    assert got.items.tolist() == naive_top_k(users, items, candidates, 20, excluded)


def test_bfloat16_scoring_holds_the_table_in_bfloat16_and_keeps_separated_orders() -> None:
    # user (1, 0): an item's score is its first coordinate, rounded to bfloat16's 8 bits
    firsts = np.array([0.0, 0.0, 1 / 3, 0.9, 0.6, -0.2, 0.7071], dtype=np.float32)
    items = np.stack([firsts, np.sqrt(1 - firsts**2)], axis=1).astype(np.float32)
    candidates = np.array([False, False, True, True, True, True, True])
    user = np.array([[1.0, 0.0]], dtype=np.float32)
    full = R.TopKScorer(items, candidates, device=torch.device("cpu")).top_k(user, 4)
    bf16 = R.TopKScorer(items, candidates, device=torch.device("cpu"), precision="bfloat16")
    got = bf16.top_k(user, 4)
    assert bf16.items.dtype == torch.bfloat16
    assert got.items.tolist() == full.items.tolist() == [[3, 6, 4, 2]]
    rounded = torch.as_tensor(firsts[[3, 6, 4, 2]]).to(torch.bfloat16).float().numpy()
    assert got.scores.dtype == np.float32
    np.testing.assert_array_equal(got.scores[0], rounded)
    assert not np.array_equal(full.scores[0], rounded)  # float32 keeps 1/3 and 0.7071 exact
    with pytest.raises(ValueError, match="precision 'int8'"):
        R.TopKScorer(items, candidates, precision="int8")


def test_fewer_candidates_than_k_leaves_minus_one() -> None:
    items = np.eye(4, dtype=np.float32)
    candidates = np.array([False, False, True, True])
    got = R.TopKScorer(items, candidates, device=torch.device("cpu")).top_k(
        np.eye(4, dtype=np.float32)[[2]], 3, excluded=[np.array([3])]
    )
    assert got.items.tolist() == [[2, -1, -1]]
    assert np.isneginf(got.scores[0, 1:]).all()


def test_self_items_are_never_their_own_neighbour() -> None:
    items = np.array([[0, 0], [0, 0], [1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    candidates = np.array([False, False, True, True, True])
    got = R.TopKScorer(items, candidates, device=torch.device("cpu")).top_k(
        items[[2, 4]], 1, self_items=np.array([2, 4])
    )
    assert got.items[:, 0].tolist() == [3, 3]


def test_popularity_top_k_skips_each_users_excluded_items() -> None:
    ranking = np.array([5, 3, 9, 2])
    got = [
        x.tolist()
        for x in R.popularity_top_k(
            ranking, 2, [np.array([3]), np.array([], dtype=np.int64), np.array([5, 3, 9])]
        )
    ]
    assert got == [[5, 9], [5, 3], [2]]


RUN = dt.date(2026, 11, 21)


def clean(spark: SparkSession, rows: list[tuple]) -> object:
    data = [
        (
            f"e{n}",
            user,
            item,
            kind,
            when,
            "s",
            None,
            None,
            None,
            None,
            item is not None,
            when.date(),
        )
        for n, (user, item, kind, when) in enumerate(rows)
    ]
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def test_scoring_inputs_take_the_last_items_before_the_cutoff(spark: SparkSession) -> None:
    t = dt.datetime(2026, 11, 21, 10)
    events = clean(
        spark,
        [
            ("u", "a", S.VIEW, t),
            ("u", "b", S.PURCHASE, t + dt.timedelta(hours=1)),
            ("u", "zz", S.CLICK, t + dt.timedelta(hours=2)),  # not in the vocabulary -> OOV
            ("u", "c", S.VIEW, t + dt.timedelta(days=1)),  # at/after the cutoff: unseen
            ("w", None, S.SEARCH, t),  # a search-only user is cold
        ],
    )
    index = spark.createDataFrame([("a", 2), ("b", 3), ("c", 4)], "item_id string, item_idx int")
    got = {
        r["user_id"]: r.asDict()
        for r in R.scoring_inputs(
            events, index, RUN + dt.timedelta(days=1), 2, "purchased"
        ).collect()
    }
    assert set(got) == {"u", "w"}
    u = got["u"]
    assert u["hist_item_idx"] == [L.OOV, 3] and u["hist_len"] == 2
    assert u["hist_type_idx"] == [L.TYPE_INDEX[S.CLICK], L.TYPE_INDEX[S.PURCHASE]]
    assert u["hist_age_s"] == [12 * 3600, 13 * 3600]
    assert u["excluded_idx"] == [3]
    assert (
        got["w"]["hist_len"] == 0
        and got["w"]["hist_item_idx"] == [0, 0]
        and got["w"]["excluded_idx"] == []
    )


def test_exclude_interacted_hides_every_item_event(spark: SparkSession) -> None:
    t = dt.datetime(2026, 11, 21, 10)
    events = clean(spark, [("u", "a", S.VIEW, t), ("u", "b", S.CART, t), ("u", "c", S.PURCHASE, t)])
    index = spark.createDataFrame([("a", 2), ("b", 3), ("c", 4)], "item_id string, item_idx int")
    cutoff = RUN + dt.timedelta(days=1)
    row = R.scoring_inputs(events, index, cutoff, 5, "interacted").first()
    assert row is not None and row["excluded_idx"] == [2, 3, 4]
    none = R.scoring_inputs(events, index, cutoff, 5, "none").first()
    assert none is not None and none["excluded_idx"] == []
