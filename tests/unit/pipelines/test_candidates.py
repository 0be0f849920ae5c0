"""Candidates from several generators, their features and labels, on hand-made frames."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from pipelines import candidates as C
from pipelines import schemas as S

pytestmark = pytest.mark.unit

AS_OF = dt.date(2026, 11, 21)
WEIGHTS = {S.PURCHASE: 1.0, S.VIEW: 0.1}


def lists(spark: SparkSession, rows: list[tuple[str, str, str, int]]) -> DataFrame:
    return spark.createDataFrame(rows, S.RANKED_LISTS.schema)


def events(spark: SparkSession, rows: list[tuple[str, str, str, dt.datetime, str]]) -> DataFrame:
    data = [
        (f"e{n}", user, item, kind, t, "s", None, None, None, category, True, t.date())
        for n, (user, item, kind, t, category) in enumerate(rows)
    ]
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def test_merge_keeps_one_row_per_pair_with_each_generators_rank(spark: SparkSession) -> None:
    proposed = lists(
        spark,
        [
            ("model", "u", "a", 1), ("model", "u", "b", 2), ("als", "u", "b", 1),
            ("als", "u", "c", 2), ("other", "u", "z", 1),
        ],
    )  # fmt: skip
    merged = C.merge(proposed, ["model", "als"])
    expected = spark.createDataFrame(
        [("u", "a", 1, None, ["model"]), ("u", "b", 2, 1, ["model", "als"]), ("u", "c", None, 2, ["als"])],
        "user_id string, item_id string, rank_model int, rank_als int, sources array<string>",
    )  # fmt: skip
    assertDataFrameEqual(merged, expected)  # the 'other' method's item z is not a candidate


def test_features_are_computed_from_the_events_before_the_cutoff_only(
    spark: SparkSession,
) -> None:
    day = dt.datetime(2026, 11, 21)
    before = events(
        spark,
        [
            ("u", "a", S.PURCHASE, day - dt.timedelta(days=1), "x"),
            ("u", "a", S.VIEW, day - dt.timedelta(days=7), "x"),
            ("u", "b", S.VIEW, day - dt.timedelta(hours=12), "y"),
            ("v", "a", S.VIEW, day - dt.timedelta(hours=18), "x"),
            # at the cutoff: the period being predicted, never a feature
            ("u", "c", S.PURCHASE, day + dt.timedelta(hours=1), "y"),
        ],
    )
    catalog = spark.createDataFrame(
        [("a", "A", "x", 9.0, True), ("b", "B", "y", None, True), ("c", "C", "y", 3.0, True)],
        S.CATALOG.schema,
    )
    merged = C.merge(lists(spark, [("g", "u", "a", 1), ("g", "u", "c", 2)]), ["g"])
    out = {
        r["item_id"]: dict(zip(C.feature_names(["g"]), r["features"], strict=True))
        for r in C.features(merged, before, catalog, AS_OF, WEIGHTS, ["g"]).collect()
    }
    assert set(out) == {"a", "c"}
    a, c = out["a"], out["c"]
    assert a == pytest.approx(
        {
            "g_rr": 1.0, "g_in": 1.0,
            "ui_strength_short": math.log1p(2 ** (-1 / 7) + 0.1 * 2 ** (-7 / 7)),
            "ui_strength_long": math.log1p(2 ** (-1 / 60) + 0.1 * 2 ** (-7 / 60)),
            "ui_seen": 1.0, "ui_days_since": math.log1p(1.0), "ui_purchases": math.log1p(1),
            "ui_events": math.log1p(2), "item_events": math.log1p(3), "item_recent": math.log1p(2),
            "item_trend": math.log1p(2) - math.log1p(3), "item_conversion": 1 / 3,
            "user_events": math.log1p(3), "user_cat_share": 2 / 3, "user_cat_recent": 2 / 3,
            "last_cat_match": 0.0, "item_cat_share": 1.0,
            "user_rebuy_share": 0.0, "n_sources": 1.0, "price_log": math.log1p(9.0),
        },
        rel=1e-6,
    )  # fmt: skip
    assert c == pytest.approx(
        {
            "g_rr": 0.5, "g_in": 1.0, "ui_strength_short": 0.0, "ui_strength_long": 0.0,
            "ui_seen": 0.0, "ui_days_since": math.log1p(365.0), "ui_purchases": 0.0,
            "ui_events": 0.0, "item_events": 0.0, "item_recent": 0.0, "item_trend": 0.0,
            "item_conversion": 0.0, "user_events": math.log1p(3), "user_cat_share": 1 / 3,
            "user_cat_recent": 1 / 3, "last_cat_match": 1.0, "item_cat_share": 0.0, "user_rebuy_share": 0.0, "n_sources": 1.0,
            "price_log": math.log1p(3.0),
        },
        rel=1e-6,
    )  # fmt: skip


def test_recent_category_share_and_rebuying_describe_the_user(spark: SparkSession) -> None:
    t = dt.datetime(2026, 11, 20)
    before = events(
        spark,
        [
            ("w", "p", S.PURCHASE, t, "x"),
            ("w", "p", S.PURCHASE, t + dt.timedelta(hours=1), "x"),
            ("w", "q", S.PURCHASE, t + dt.timedelta(hours=2), "y"),
            ("w", "r", S.VIEW, t + dt.timedelta(hours=3), "y"),
        ],
    )
    catalog = spark.createDataFrame(
        [(i, i, c, None, True) for i, c in (("p", "x"), ("q", "y"), ("r", "y"), ("s", "y"))],
        S.CATALOG.schema,
    )
    merged = C.merge(lists(spark, [("g", "w", "p", 1), ("g", "w", "s", 2)]), ["g"])
    settings = C.FeatureSettings(recent_events=2)  # w's last two events are both in y
    rows = C.features(merged, before, catalog, AS_OF, WEIGHTS, ["g"], settings).collect()
    got = {
        r["item_id"]: dict(zip(C.feature_names(["g"]), r["features"], strict=True)) for r in rows
    }
    wanted = (
        "user_cat_share", "user_cat_recent", "item_cat_share", "user_rebuy_share",
        "last_cat_match",
    )  # fmt: skip
    # three purchases of two items: one in three bought an item again; w's latest event is in y
    assert [got["p"][f] for f in wanted] == pytest.approx([0.5, 0.0, 1.0, 1 / 3, 0.0])
    assert [got["s"][f] for f in wanted] == pytest.approx([0.5, 1.0, 0.0, 1 / 3, 1.0])


def test_last_category_skips_a_latest_event_without_one(spark: SparkSession) -> None:
    t = dt.datetime(2026, 11, 20)
    before = events(
        spark,
        [("x", "a", S.VIEW, t, "c1"), ("x", "b", S.VIEW, t + dt.timedelta(hours=1), None)],
    )
    catalog = spark.createDataFrame(
        [("a", "A", "c1", None, True), ("b", "B", None, None, True), ("z", "Z", "c2", None, True)],
        S.CATALOG.schema,
    )
    merged = C.merge(lists(spark, [("g", "x", "a", 1), ("g", "x", "z", 2)]), ["g"])
    names = C.feature_names(["g"])
    got = {
        r["item_id"]: r["features"][names.index("last_cat_match")]
        for r in C.features(merged, before, catalog, AS_OF, WEIGHTS, ["g"]).collect()
    }
    assert got == {"a": 1.0, "z": 0.0}  # b, the latest, has no category: a's c1 counts


def test_a_generator_that_did_not_propose_an_item_scores_zero_for_it(
    spark: SparkSession,
) -> None:
    merged = C.merge(lists(spark, [("g", "u", "a", 3), ("h", "u", "b", 1)]), ["g", "h"])
    before = events(spark, [("u", "a", S.VIEW, dt.datetime(2026, 11, 20), "x")])
    catalog = spark.createDataFrame([], S.CATALOG.schema)
    rows = C.features(merged, before, catalog, AS_OF, WEIGHTS, ["g", "h"]).collect()
    got = {
        r["item_id"]: dict(zip(C.feature_names(["g", "h"]), r["features"], strict=True))
        for r in rows
    }
    assert (
        got["a"]["g_rr"],
        got["a"]["g_in"],
        got["a"]["h_rr"],
        got["a"]["h_in"],
    ) == pytest.approx((1 / 3, 1.0, 0.0, 0.0))
    assert (got["b"]["g_in"], got["b"]["h_rr"]) == (0.0, 1.0)
    assert got["b"]["price_log"] == 0.0  # not in the catalog: no price
    assert {r["item_id"]: r["sources"] for r in rows} == {"a": ["g"], "b": ["h"]}


def test_labels_mark_the_targets_among_the_candidates(spark: SparkSession) -> None:
    pairs = spark.createDataFrame(
        [("u", "a", ["g"], [1.0]), ("u", "b", ["g"], [0.5]), ("v", "a", ["g"], [1.0])],
        "user_id string, item_id string, sources array<string>, features array<float>",
    )
    targets = spark.createDataFrame(
        [("u", "b"), ("u", "b"), ("v", "z")], "user_id string, item_id string"
    )  # a repeated target counts once; v's target z was proposed by no generator
    out = {(r["user_id"], r["item_id"]): r["label"] for r in C.labeled(pairs, targets).collect()}
    assert out == {("u", "a"): 0.0, ("u", "b"): 1.0, ("v", "a"): 0.0}


def test_the_lead_source_is_the_generator_that_ranked_the_item_highest(
    spark: SparkSession,
) -> None:
    proposed = lists(
        spark,
        [
            ("g", "u", "a", 3), ("h", "u", "a", 1),  # h ranks a higher
            ("g", "u", "b", 2), ("h", "u", "b", 2),  # a tie: the first generator
            ("h", "u", "c", 5),  # only h proposed c
        ],
    )  # fmt: skip
    gens = ["g", "h"]
    catalog = spark.createDataFrame([], S.CATALOG.schema)
    pairs = C.features(C.merge(proposed, gens), events(spark, []), catalog, AS_OF, WEIGHTS, gens)
    got = {
        r["item_id"]: r["source"]
        for r in pairs.select("item_id", C.lead_source(gens).alias("source")).collect()
    }
    assert got == {"a": "h", "b": "g", "c": "h"}
