"""The per-user history state: advanced night by night it equals a rebuild from the window, and
the scoring inputs built from it equal those built from the events."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines import label as L
from pipelines import recs as R
from pipelines import user_state as U
from tests.helpers import at, events

pytestmark = pytest.mark.unit

D0 = dt.date(2026, 11, 10)
DAYS = [D0 + dt.timedelta(days=n) for n in range(6)]
LOOKBACK, LENGTH = 3, 3


def log(spark: SparkSession) -> DataFrame:
    """Six days of events; two arrive in a later partition than their day (``dt`` overridden)."""
    d0, d1, d2, d3, d4, d5 = DAYS
    ev = events(
        spark,
        # a heavy user: more item events a day than the state keeps, ties at one instant
        *[("heavy", f"i{n % 5}", "view", at(day, 9, n)) for day in DAYS for n in range(4)],
        ("heavy", "i1", "cart", at(d3, 12)),
        ("heavy", "i2", "purchase", at(d3, 12)),
        ("heavy", None, "search", at(d5, 23)),  # latest event, but not an item event
        # a user whose only events leave the window
        ("gone", "i1", "view", at(d0, 8)),
        ("gone", "i2", "click", at(d1, 8)),
        # a user who only searches: in the state while the search is in the window
        ("searcher", None, "search", at(d2, 10)),
        # late events: partition d4 holds one of d2 (inside later windows) and one of d0
        ("late", "i3", "view", at(d4, 7)),
        ("late", "i4", "view", at(d2, 7)),  # e-late-in
        ("late", "i0", "click", at(d0, 7)),  # e-late-out: older than any window from d4 on
        # clock skew: partition d3 holds an event 30 minutes into d4
        ("skew", "i1", "view", at(d3, 20)),
        ("skew", "i2", "cart", at(d4, 0, 30)),  # e-skew
    )
    n = ev.count()
    late_in, late_out, skew = f"e{n - 4:03d}", f"e{n - 3:03d}", f"e{n - 1:03d}"
    return ev.withColumn(
        "dt",
        F.when(F.col("event_id").isin(late_in, late_out), F.lit(d4))
        .when(F.col("event_id") == skew, F.lit(d3))
        .otherwise(F.col("dt")),
    )


def partitions(ev: DataFrame, days: list[dt.date]) -> DataFrame:
    return ev.where(F.col("dt").isin(*days))


def rebuilt(ev: DataFrame, day: dt.date) -> DataFrame:
    return U.rebuild(partitions(ev, U.rebuild_partitions(day, LOOKBACK)), day, LOOKBACK, LENGTH)


def test_a_state_advanced_night_by_night_equals_one_rebuilt_from_the_window(
    spark: SparkSession,
) -> None:
    ev = log(spark).cache()
    state = rebuilt(ev, DAYS[2]).cache()
    for day in DAYS[3:]:
        state = U.advance(
            state, partitions(ev, U.advance_partitions(day)), day, LOOKBACK, LENGTH
        ).cache()
        assertDataFrameEqual(state, rebuilt(ev, day))
        by_user = {r["user_id"]: r for r in state.collect()}
        heavy = by_user["heavy"]["events"]
        assert len(heavy) == LENGTH
        assert [e["event_time"] for e in heavy] == sorted(
            (e["event_time"] for e in heavy), reverse=True
        )
        late = [e["item_id"] for e in by_user.get("late", {"events": []})["events"]]
        assert "i0" not in late  # the late event older than the window never enters
        if day == DAYS[3]:
            # the skew event (30 minutes into d4, partition d3) waits for d4's window
            assert [e["item_id"] for e in by_user["skew"]["events"]] == ["i1"]
            assert "searcher" in by_user and by_user["searcher"]["events"] == []
            # the window starts at d1: gone's d0 view expired, its d1 click stays
            assert [e["item_id"] for e in by_user["gone"]["events"]] == ["i2"]
        if day == DAYS[4]:
            assert late == ["i3", "i4"]
            assert "gone" not in by_user  # its last event (d1) is before the window
            assert [e["item_id"] for e in by_user["skew"]["events"]] == ["i2", "i1"]
        if day == DAYS[5]:
            assert "searcher" not in by_user  # its search (d2) left the window
            # the latest event is a search: the time counts, the history is item events only
            assert by_user["heavy"]["last_event_time"] == at(DAYS[5], 23)
            assert heavy[0]["event_type"] == "view" and heavy[0]["event_time"] == at(DAYS[5], 9, 3)


def test_scoring_inputs_from_the_state_equal_those_from_the_events(spark: SparkSession) -> None:
    # no late or skewed events here: a window of partitions is then the state's window of times
    d0, d1, d2 = DAYS[:3]
    ev = events(
        spark,
        *[("a", f"i{n % 4}", "view", at(d1, 9, n)) for n in range(6)],
        ("a", "i2", "purchase", at(d2, 10)),
        ("a", "x9", "view", at(d2, 11)),  # outside the index: OOV
        ("b", "i0", "cart", at(d2, 8)),
        ("b", "i0", "click", at(d2, 8)),  # a tie, ordered by event id
        ("c", None, "search", at(d2, 9)),  # no item events: an empty history
        ("old", "i1", "view", at(d0, 9)),  # before the window
    )
    index = spark.createDataFrame(
        [(f"i{n}", n + 2) for n in range(4)], "item_id string, item_idx int"
    )
    window = partitions(ev, [d1, d2])
    state = U.rebuild(ev, d2, 2, 5)  # keeps 5; the inputs take the last 3 of them
    cutoff = d2 + dt.timedelta(days=1)
    from_state = R.scoring_inputs_from_state(state, window, index, cutoff, 3, "purchased")
    assertDataFrameEqual(from_state, R.scoring_inputs(window, index, cutoff, 3, "purchased"))
    rows = {r["user_id"]: r for r in from_state.collect()}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["a"]["hist_item_idx"][:2] == [L.OOV, 4] and rows["a"]["excluded_idx"] == [4]
    assert rows["c"]["hist_len"] == 0
