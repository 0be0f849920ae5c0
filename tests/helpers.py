"""Small builders shared by tests: raw lines and catalogs as in-memory frames."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines import schemas as S

DAY = dt.date(2026, 11, 20)
JSON_FILE = "file:/raw/events/dt=2026-11-20/part-00000.json.gz"
CSV_FILE = "file:/raw/events/dt=2026-11-20/part-00000.csv.gz"


def event(**fields: Any) -> str:
    """A JSON line with sensible defaults for a valid view; pass a field as None to drop it."""
    record: dict[str, Any] = {
        "event_id": "e1",
        "event_time": "2026-11-20T10:00:00Z",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "view",
        "price": 9.5,
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def lines(
    spark: SparkSession, *values: str, day: dt.date = DAY, source_file: str = JSON_FILE
) -> DataFrame:
    """(value, source_file, dt) frame of raw lines for one file and day."""
    return spark.createDataFrame(
        [(v, source_file.replace(DAY.isoformat(), day.isoformat()), day) for v in values],
        "value string, source_file string, dt date",
    )


def catalog(spark: SparkSession, *items: tuple[str, str]) -> DataFrame:
    """A catalog of (item_id, category) pairs."""
    return spark.createDataFrame(
        [(i, f"title {i}", c, 1.0, True) for i, c in items or (("i1", "shoes"), ("i2", "hats"))],
        S.CATALOG.schema,
    )


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss)


def events(spark: SparkSession, *rows: tuple) -> DataFrame:
    """(user, item or None, type, time) -> clean events; items starting with 'x' are unknown."""
    data = []
    for n, (user, item, kind, when) in enumerate(rows):
        known = None if item is None else not item.startswith("x")
        category = None if item is None or not known else f"cat-{item[-1]}"
        data.append(
            (f"e{n:03d}", user, item, kind, when, f"{user}-s", None, None, "q" if item is None else None,
             category, known, when.date())
        )  # fmt: skip
    return spark.createDataFrame(data, S.CLEAN_EVENTS.schema)


def assert_lists(actual: DataFrame, expected: dict[str, list[str]]) -> None:
    """Recommendation lists equal ``expected`` (user -> items, best first), compared as whole
    frames of (user_id, rank, item_id) with ``assertDataFrameEqual``."""
    from pyspark.testing import assertDataFrameEqual

    rows = [(u, r, i) for u, items in expected.items() for r, i in enumerate(items, start=1)]
    want = actual.sparkSession.createDataFrame(rows, "user_id string, rank int, item_id string")
    got = actual.select("user_id", F.col("rank").cast("int").alias("rank"), "item_id")
    assertDataFrameEqual(got, want)
