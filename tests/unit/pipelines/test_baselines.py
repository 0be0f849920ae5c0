"""Baselines on tiny event sets: exclusions, candidates, fill-up and co-occurrence."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines import baselines as B
from pipelines import schemas as S
from tests.helpers import assert_lists

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 19, 10)


def clean(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    data = [
        (f"e{n}", user, item, kind, T0 + dt.timedelta(minutes=n), "s", None, None, None, None, True, T0.date())
        for n, (user, item, kind) in enumerate(rows)
    ]  # fmt: skip
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def frame(spark: SparkSession, rows: list[tuple], schema: str) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def test_global_list_skips_each_users_exclusions_and_non_candidates(spark: SparkSession) -> None:
    counts = frame(
        spark,
        [("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0), ("z", 9.0)],
        "item_id string, score double",
    )
    users = frame(spark, [("u",), ("v",)], "user_id string")
    candidates = frame(
        spark, [("a",), ("b",), ("c",), ("d",)], "item_id string"
    )  # z is not sellable
    exclusions = frame(spark, [("u", "a"), ("u", "c")], "user_id string, item_id string")
    assert_lists(
        B.global_list(counts, users, candidates, exclusions, 2, B.POPULARITY),
        {"u": ["b", "d"], "v": ["a", "b"]},
    )


def test_fill_up_keeps_the_primary_order_and_adds_unlisted_fallback_items(
    spark: SparkSession,
) -> None:
    schema = "method string, user_id string, item_id string, rank int"
    primary = frame(spark, [("co", "u", "x", 1), ("co", "u", "a", 2)], schema)
    fallback = frame(
        spark,
        [("p", u, i, r) for u in ("u", "w") for r, i in enumerate(["a", "b", "c"], 1)],
        schema,
    )
    assert_lists(
        B.fill_up(primary, fallback, 3, B.COOCCURRENCE),
        {"u": ["x", "a", "b"], "w": ["a", "b", "c"]},
    )


def test_pair_sums_list_each_pair_both_ways_with_the_sum_over_shared_users(
    spark: SparkSession,
) -> None:
    rows = frame(
        spark,
        [("u", "a", 1.0), ("u", "b", 2.0), ("u", "c", 3.0), ("v", "a", 1.0), ("v", "b", 1.0)],
        "user_id string, item_id string, w double",
    )
    expected = {("a", "b"): 3.0, ("a", "c"): 3.0, ("b", "c"): 6.0}  # b-c: u alone, 2 x 3
    want = [(x, y, t) for (p, q), t in expected.items() for x, y in ((p, q), (q, p))]
    assertDataFrameEqual(
        B.pair_sums(rows, F.col("w")),
        frame(spark, want, "seed string, item_id string, total double"),
    )


def test_cooccurrence_ranks_items_seen_with_the_users_recent_items(spark: SparkSession) -> None:
    events = clean(
        spark,
        [
            ("p", "a", S.VIEW), ("p", "b", S.VIEW),  # a-b together twice, a-c once
            ("q", "a", S.VIEW), ("q", "b", S.VIEW),
            ("r", "a", S.VIEW), ("r", "c", S.VIEW),
            ("u", "a", S.VIEW),  # the user to recommend for
        ],
    )  # fmt: skip
    users = frame(spark, [("u",)], "user_id string")
    candidates = frame(spark, [("a",), ("b",), ("c",)], "item_id string")
    none = frame(spark, [], "user_id string, item_id string")
    assert_lists(
        B.cooccurrence_lists(events, users, candidates, none, 5, B.BaselineSettings()),
        {"u": ["b", "c"]},  # a itself co-occurs with nothing of u's own
    )


def test_als_recommends_only_allowed_items_for_known_users(spark: SparkSession) -> None:
    rows = [(u, i, S.PURCHASE) for u in ("p", "q", "r") for i in ("a", "b", "c")] + [
        ("u", "a", S.VIEW)
    ]
    events = clean(spark, rows)
    users = frame(spark, [("u",), ("stranger",)], "user_id string")
    candidates = frame(spark, [("a",), ("b",)], "item_id string")
    exclusions = frame(spark, [("u", "a")], "user_id string, item_id string")
    settings = B.BaselineSettings(als_rank=2, als_iterations=3, als_blocks=2)
    assert_lists(
        B.als_lists(
            events, users, candidates, exclusions, {S.PURCHASE: 1.0, S.VIEW: 0.1}, 2, settings
        ),
        {"u": ["b"]},  # c is not a candidate, a is excluded; ALS never saw "stranger"
    )


AS_OF = dt.date(2026, 11, 21)
WEIGHTS = {S.VIEW: 0.1, S.PURCHASE: 1.0}


def clean_at(spark: SparkSession, rows: list[tuple[str, str, str, float]]) -> DataFrame:
    """(user, item, type, days before AS_OF's start) -> clean events."""
    start = dt.datetime.combine(AS_OF, dt.time())
    data = [
        (f"e{n}", u, i, kind, start - dt.timedelta(days=days), "s", None, None, None, None, True, AS_OF)
        for n, (u, i, kind, days) in enumerate(rows)
    ]  # fmt: skip
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def test_strength_sums_type_weights_halved_every_half_life(spark: SparkSession) -> None:
    events = clean_at(
        spark, [("u", "a", S.PURCHASE, 1.0), ("u", "a", S.VIEW, 2.0), ("u", "b", "cart", 0.0)]
    )
    got = {r["item_id"]: r["strength"] for r in B.strengths(events, WEIGHTS, AS_OF, 1.0).collect()}
    assert got["a"] == pytest.approx(1.0 * 0.5 + 0.1 * 0.25)
    assert got["b"] == pytest.approx(0.1)  # a type without a weight counts 0.1


def test_item_neighbours_are_cosine_similar_items_in_order(spark: SparkSession) -> None:
    events = clean_at(
        spark,
        [("p", "a", S.VIEW, 1), ("p", "b", S.VIEW, 1), ("q", "a", S.VIEW, 1),
         ("q", "b", S.VIEW, 1), ("q", "c", S.VIEW, 1)],
    )  # fmt: skip
    strength = B.strengths(events, WEIGHTS, AS_OF, 1e9)
    rows = B.item_neighbours(strength, 5).where("seed = 'a'").orderBy("similarity").collect()
    assert [(r["item_id"], round(r["similarity"], 4)) for r in rows] == [
        ("c", round(1 / 2**0.5, 4)),
        ("b", 1.0),
    ]
    assert B.item_neighbours(strength, 1).where("seed = 'a'").count() == 1


def test_item_knn_weighs_the_users_recent_items_most(spark: SparkSession) -> None:
    events = clean_at(
        spark,
        [("p", "a", S.VIEW, 40), ("p", "b", S.VIEW, 40), ("q", "d", S.VIEW, 40),
         ("q", "e", S.VIEW, 40), ("u", "a", S.VIEW, 30), ("u", "d", S.VIEW, 1)],
    )  # fmt: skip
    users = frame(spark, [("u",)], "user_id string")
    candidates = frame(spark, [(i,) for i in "abde"], "item_id string")
    own = frame(spark, [("u", "a"), ("u", "d")], "user_id string, item_id string")
    settings = B.BaselineSettings(knn_half_life_days=3.0)
    knn = B.item_knn_lists(B.Decayed(events, users, candidates, own, WEIGHTS, AS_OF, 5, settings))
    assert_lists(knn, {"u": ["e", "b"]})  # d (yesterday) outweighs a (a month ago)
    only_b = frame(spark, [("b",)], "item_id string")
    knn = B.item_knn_lists(B.Decayed(events, users, only_b, own, WEIGHTS, AS_OF, 5, settings))
    assert_lists(knn, {"u": ["b"]})


def test_buy_again_ranks_the_users_own_items_by_decayed_strength(spark: SparkSession) -> None:
    events = clean_at(
        spark,
        [("u", "x", S.PURCHASE, 30), ("u", "x", S.PURCHASE, 29), ("u", "y", S.VIEW, 1),
         ("v", "z", S.VIEW, 1)],
    )  # fmt: skip
    users = frame(spark, [("u",)], "user_id string")
    candidates = frame(spark, [(i,) for i in "xyz"], "item_id string")
    none = frame(spark, [], "user_id string, item_id string")

    def lists(half_life: float, exclusions: DataFrame = none) -> DataFrame:
        settings = B.BaselineSettings(buy_again_half_life_days=half_life)
        fit = B.Decayed(events, users, candidates, exclusions, WEIGHTS, AS_OF, 5, settings)
        return B.buy_again_lists(fit)

    assert_lists(lists(365.0), {"u": ["x", "y"]})  # two purchases outweigh a view
    assert_lists(lists(1.0), {"u": ["y", "x"]})  # ... unless a month is 30 half-lives
    hidden = frame(spark, [("u", "x")], "user_id string, item_id string")
    assert_lists(lists(365.0, hidden), {"u": ["y"]})


def test_recent_popularity_over_days_without_events_falls_back_to_popularity(
    spark: SparkSession,
) -> None:
    """A ratings log can have no event in the last days before the cut: every user still gets
    a list (the all-time one), not none at all, which would score no method row."""
    from pipelines import evaluation as E

    before = clean(spark, [("u", "a", "view"), ("v", "a", "view"), ("v", "b", "view")])
    users = frame(spark, [("u",), ("v",)], "user_id string")
    candidates = frame(spark, [("a",), ("b",), ("c",)], "item_id string")
    exclusions = frame(spark, [("v", "a")], "user_id string, item_id string")
    settings = B.BaselineSettings(recent_days=1)
    f = E.EvalFrames(before, users, candidates, exclusions, 2, T0.date() + dt.timedelta(days=5),
                     settings)  # fmt: skip
    popular = E.popularity_lists(f)
    recent = E.recent_popularity_lists(f, popular)
    assert_lists(recent, {"u": ["a", "b"], "v": ["b"]})
    assert {r["method"] for r in recent.collect()} == {B.RECENT_POPULARITY}


def test_every_baselines_list_is_the_first_k_of_its_deeper_list(spark: SparkSession) -> None:
    """Evaluate takes a baseline's lists from the ranker's deeper generator lists (the first K
    rows) when the settings agree: that holds only if each list at K is a prefix of the same
    method's list at a larger depth, fill-up from popularity and tie order included."""
    from pipelines import evaluation as E

    rows = [
        (user, item, (S.VIEW, S.PURCHASE)[(n + m) % 3 == 0], float((n + m) % 9))
        for n, user in enumerate("pqrstu")
        for m, item in enumerate("abcdefghij")
        if (n * 7 + m * 3) % 4 != 0
    ]  # fmt: skip
    before = clean_at(spark, rows)
    users = frame(spark, [(u,) for u in "pqrstuv"], "user_id string")  # v is cold
    candidates = frame(spark, [(i,) for i in "abcdefghi"], "item_id string")  # j is not sold
    exclusions = frame(
        spark, [("p", "a"), ("q", "b"), ("q", "c")], "user_id string, item_id string"
    )
    settings = B.BaselineSettings(als_rank=4, als_iterations=3, als_blocks=1, recent_days=3)
    shallow = E.EvalFrames(before, users, candidates, exclusions, 3, AS_OF, settings)
    deep = dataclasses.replace(shallow, k=7)

    popular = {f.k: E.popularity_lists(f).cache() for f in (shallow, deep)}

    def lists(f: E.EvalFrames, method: str) -> list[tuple]:
        got = E.BASELINES[method](f, popular[f.k]).select("user_id", "rank", "item_id").collect()
        return sorted(map(tuple, got))

    for method in E.BASELINES:
        short, long = lists(shallow, method), lists(deep, method)
        assert short and len(long) > len(short), method
        assert short == [row for row in long if row[1] <= 3], method
