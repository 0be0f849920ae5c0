"""The per-user history state: each user's last L item events of the lookback window, carried
from night to night so that a night reads its new day instead of re-sorting the whole window.

``state(D)`` (``S.USER_HISTORY``) has one row per user with an event of any type whose
``event_time`` lies in the window ``[start of W, start of D+1)``, ``W = D - lookback + 1``:
``last_event_time`` (the latest such event) and ``events``, the user's last L *item* events of
the window, most recent first (by ``event_time``, then ``event_id``: the order label and the
scorer use), each (``event_time``, ``event_id``, ``item_id``, ``event_type``). Item ids, not
vocabulary indices: the state does not depend on a model.

The window is a window of event times, so a night's state follows from yesterday's exactly::

    state(D) = last L of (state(D-1) without events before W)  +  the new events

The new events are the clean events of partition D with ``event_time`` in the window (late
events of earlier days included) and those of partition D-1 at or after the start of D (clean
keeps events up to its clock skew, less than a day, after the end of their partition's day).
Keeping the last L of a union is the same whether the union is taken at once or in steps, and
every event expired from yesterday's state is older than every event of today's window, so
nothing the state dropped can be missing. ``rebuild`` computes the same table from the clean
partitions W-1 .. D at once; a test checks the two agree.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines import label as L
from pipelines import schemas as S


def window_start(run_date: dt.date, lookback_days: int) -> dt.date:
    """W: the first day of the window of ``lookback_days`` ending at ``run_date``."""
    return run_date - dt.timedelta(days=lookback_days - 1)


def rebuild_partitions(run_date: dt.date, lookback_days: int) -> list[dt.date]:
    """The clean partitions ``rebuild`` reads: W-1 (its events past midnight, within the clock
    skew, fall inside the window) to the run date."""
    first = window_start(run_date, lookback_days) - dt.timedelta(days=1)
    return [first + dt.timedelta(days=n) for n in range((run_date - first).days + 1)]


def advance_partitions(run_date: dt.date) -> list[dt.date]:
    """The clean partitions ``advance`` reads: yesterday's (its events after midnight) and today's."""
    return [run_date - dt.timedelta(days=1), run_date]


def _in_window(run_date: dt.date, lookback_days: int) -> Column:
    t = F.col("event_time")
    return (t >= L.day_start(window_start(run_date, lookback_days))) & (
        t < L.day_start(run_date + dt.timedelta(days=1))
    )


def _entry() -> Column:
    # field order is the sort order: sort_array over these structs orders by time, then id
    return F.struct(F.col("event_time"), F.col("event_id"), F.col("item_id"), F.col("event_type"))


def _last(entries: Column, length: int) -> Column:
    """The ``length`` most recent of an array of state entries, most recent first."""
    return F.slice(F.sort_array(entries, asc=False), 1, length)


def _per_user(events: DataFrame, length: int) -> DataFrame:
    """Events (any type) -> ``S.USER_HISTORY`` rows of their users (one pass, no sort of the
    events: an aggregate per user, then each user's array is sorted)."""
    entries = F.collect_list(F.when(F.col("item_id").isNotNull(), _entry()))
    return S.USER_HISTORY.select(
        events.groupBy("user_id").agg(
            F.max("event_time").alias("last_event_time"), _last(entries, length).alias("events")
        )
    )


def rebuild(events: DataFrame, run_date: dt.date, lookback_days: int, length: int) -> DataFrame:
    """Clean events of ``rebuild_partitions`` (more are harmless: the window is by event time)
    -> ``state(run_date)`` from scratch."""
    return _per_user(events.where(_in_window(run_date, lookback_days)), length)


def advance(
    previous: DataFrame, events: DataFrame, run_date: dt.date, lookback_days: int, length: int
) -> DataFrame:
    """``state(run_date - 1)`` + the clean events of ``advance_partitions`` (with ``dt``) ->
    ``state(run_date)``, equal to ``rebuild`` of the same window."""
    today = L.day_start(run_date)
    new = events.where(
        _in_window(run_date, lookback_days)
        & ((F.col("dt") == F.lit(run_date)) | (F.col("event_time") >= today))
    )
    start = L.day_start(window_start(run_date, lookback_days))
    kept = previous.where(F.col("last_event_time") >= start).select(
        "user_id",
        "last_event_time",
        F.filter("events", lambda e: e["event_time"] >= start).alias("events"),
    )
    both = kept.unionByName(_per_user(new, length))
    return S.USER_HISTORY.select(
        both.groupBy("user_id").agg(
            F.max("last_event_time").alias("last_event_time"),
            _last(F.flatten(F.collect_list("events")), length).alias("events"),
        )
    )


def history_positions(state: DataFrame, item_index: DataFrame) -> DataFrame:
    """A state + (item_id, item_idx) -> (``user_id``, ``h``): the user's entries as
    ``L.history_entry`` structs with their position (1 = most recent), ``h`` sorted by position,
    as ``recs.scoring_inputs`` builds them from the events; items outside the index are OOV."""
    exploded = state.select("user_id", F.posexplode("events").alias("pos", "e")).select(
        "user_id",
        (F.col("pos") + 1).alias("pos"),
        F.col("e.item_id").alias("item_id"),
        F.col("e.event_type").alias("event_type"),
        F.col("e.event_time").alias("event_time"),
    )
    type_index = F.create_map(*[F.lit(x) for kv in L.TYPE_INDEX.items() for x in kv])
    indexed = exploded.join(
        F.broadcast(item_index.select("item_id", "item_idx")), on="item_id", how="left"
    ).select(
        "user_id",
        "pos",
        F.col("event_time").cast("double").alias("t"),
        F.coalesce("item_idx", F.lit(L.OOV)).cast("int").alias("idx"),
        type_index[F.col("event_type")].alias("type_idx"),
    )
    return indexed.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("pos", L.history_entry().alias("e")))).alias("h")
    )
