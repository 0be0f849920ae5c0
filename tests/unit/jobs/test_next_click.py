"""evaluate --next-click on a test window without a session step to judge."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from jobs import evaluate
from jobs.runtime import next_click
from jobs.runtime.lists import Held
from pipelines import schemas as S
from pipelines.errors import InputError

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 21)


def test_a_test_window_without_two_items_in_a_session_is_a_clear_error(spark: SparkSession) -> None:
    t = dt.datetime(2026, 11, 21, 9)
    rows = [  # one item per session on the test day, and a search without an item
        ("e1", "u", "a", "view", t, "s1"), ("e2", "u", None, "search", t, "s1"),
        ("e3", "v", "a", "view", t, "s2"), ("e4", "v", "a", "cart", t, "s2"),
    ]  # fmt: skip
    events = spark.createDataFrame(
        [(*r, None, None, None, None, True, DAY) for r in rows], S.CLEAN_EVENTS.schema
    )
    candidates = spark.createDataFrame([("a",)], "item_id string")
    config = evaluate.EvaluateConfig(
        data_root="/x", run_date=DAY, next_click=True, tune_baselines=False
    )
    bounds = {"val_start": DAY - dt.timedelta(days=1), "test_start": DAY}
    held = Held()
    try:
        with pytest.raises(InputError, match=r"no session in the test days \(from 2026-11-21\)"):
            next_click.measure(
                spark, config, {}, events, events.limit(0), bounds, candidates, 1, held
            )
    finally:
        held.release()
