"""Next-click queries and item -> item lists on hand-made sessions."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import metrics as Mx
from pipelines import schemas as S
from pipelines import sessions as N
from tests.helpers import assert_lists

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 10)


def events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """(user, session, item or None, type, minutes after T0) -> clean events."""
    data = [
        (f"e{n:02d}", user, item, kind, T0 + dt.timedelta(minutes=m), session, None, None, None,
         None, True, (T0 + dt.timedelta(minutes=m)).date())
        for n, (user, session, item, kind, m) in enumerate(rows)
    ]  # fmt: skip
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def test_a_query_is_each_step_to_a_different_item_within_one_session(spark: SparkSession) -> None:
    log = events(
        spark,
        [
            ("u", "s1", "a", "view", 0),
            ("u", "s1", "a", "view", 1),  # the same item again: no query
            ("u", "s1", None, "search", 2),  # not an item event
            ("u", "s1", "b", "click", 3),  # a -> b
            ("u", "s1", "a", "cart", 4),  # b -> a
            ("u", "s2", "c", "view", 5),  # a new session starts without a seed
            ("u", "s2", "d", "view", 6),  # c -> d
            ("v", "s1", "x", "view", -24 * 60),  # the day before the window
            ("v", "s1", "y", "view", 7),  # the seed x lies before the window: no query
            ("v", "s1", "z", "purchase", 8),  # y -> z
        ],
    )
    got = {(r.seed, r.target, r.query_id) for r in N.next_click_queries(log, DAY).collect()}
    assert got == {
        ("a", "b", "u\ts1\te03"), ("b", "a", "u\ts1\te04"), ("c", "d", "u\ts2\te06"),
        ("y", "z", "v\ts1\te09"),
    }  # fmt: skip
    before_end = N.next_click_queries(log, DAY, DAY + dt.timedelta(days=1)).count()
    assert before_end == 4 and N.next_click_queries(log, DAY + dt.timedelta(days=1)).count() == 0


def test_hit_rate_and_mrr_of_query_lists_match_a_hand_computation(spark: SparkSession) -> None:
    queries = spark.createDataFrame(
        [("q1", "a", "b"), ("q2", "a", "c"), ("q3", "b", "z")],
        "query_id string, seed string, target string",
    )
    schema = "method string, user_id string, item_id string, rank int"
    seed_lists = spark.createDataFrame(
        [("m", "a", "b", 1), ("m", "a", "c", 2), ("m", "b", "a", 1), ("m", "b", "c", 2)], schema
    )
    lists = N.query_lists(seed_lists, queries)
    assert_lists(lists, {"q1": ["b", "c"], "q2": ["b", "c"], "q3": ["a", "c"]})
    table = Mx.ranking_metrics(lists, N.relevant(queries), [1, 2], 3).collect()
    by_k = {r.k: r for r in table}
    # HR@1: q1 only; HR@2: q1 and q2. MRR@2: (1 + 1/2 + 0) / 3; MAP with one relevant item is MRR
    assert by_k[1].hit_rate == pytest.approx(1 / 3) and by_k[1].recall == pytest.approx(1 / 3)
    assert by_k[2].recall == pytest.approx(2 / 3) and by_k[2].map == pytest.approx(0.5)


def test_neighbour_lists_never_hold_the_seed_and_fill_up_from_popularity(
    spark: SparkSession,
) -> None:
    history = events(
        spark,
        [
            ("u1", "s", "a", "view", -60), ("u1", "s", "b", "view", -59),
            ("u2", "s", "a", "view", -58), ("u2", "s", "b", "view", -57),
            ("u2", "s", "c", "view", -56), ("u3", "s", "c", "view", -55),
            ("u3", "s", "d", "view", -54), ("u4", "s", "d", "view", -53),
        ],
    )  # fmt: skip
    queries = spark.createDataFrame(
        [("q1", "a", "b"), ("q2", "e", "a")], "query_id string, seed string, target string"
    )
    candidates = spark.createDataFrame([(i,) for i in "abcde"], "item_id string")
    f = N.seed_frames(history, queries, candidates, 3, DAY, B.BaselineSettings())
    popular = E.popularity_lists(f)
    # popularity: a, b, c, d have two events each (ties by id); never the seed itself
    assert_lists(popular, {"a": ["b", "c", "d"], "e": ["a", "b", "c"]})
    co = N.cooccurrence_lists(f, popular)
    # a shares users with b (2: u1, u2) and c (1: u2); the rest comes from popularity
    assert_lists(co, {"a": ["b", "c", "d"], "e": ["a", "b", "c"]})
    knn = N.item_knn_lists(f, popular)
    rows = {(r.user_id, r.rank): r.item_id for r in knn.collect()}
    assert rows[("a", 1)] == "b" and "a" not in {i for (s, _), i in rows.items() if s == "a"}
