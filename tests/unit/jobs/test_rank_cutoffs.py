"""rank's cutoffs: the val start and the --fit-days days before it, less those with nothing to
list from."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession

from jobs.rank import list_cutoffs
from pipelines import label as L

pytestmark = pytest.mark.unit


def test_cutoffs_before_the_logs_first_item_event_are_skipped(spark: SparkSession) -> None:
    events = spark.createDataFrame(
        [
            (dt.datetime(2026, 11, 10, 9), None),  # a search: no item, nothing to list from
            (dt.datetime(2026, 11, 12, 10), "i1"),  # the first item event, during 11-12
            (dt.datetime(2026, 11, 15, 8), "i2"),
        ],
        "event_time timestamp, item_id string",
    )
    kept, skipped = list_cutoffs(events, dt.date(2026, 11, 16), fit_days=5)
    assert kept == [
        (dt.date(2026, 11, 16), L.VAL), (dt.date(2026, 11, 15), L.TRAIN),
        (dt.date(2026, 11, 14), L.TRAIN), (dt.date(2026, 11, 13), L.TRAIN),
    ]  # fmt: skip
    assert skipped == ["2026-11-12", "2026-11-11"]  # nothing before the start of 11-12
    assert list_cutoffs(events, dt.date(2026, 11, 16), fit_days=0) == ([kept[0]], [])
