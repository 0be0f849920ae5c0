"""The dataset adapters on a few hand-made source rows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipelines import ingest as I

pytestmark = pytest.mark.unit

RUN = dt.date(2026, 11, 22)


def decoded(events: DataFrame) -> list[tuple[str, dict | str]]:
    """(dt, parsed JSON line or the verbatim text) per row, in input order."""
    out = []
    for r in events.collect():
        try:
            value: dict | str = json.loads(r["value"])
        except json.JSONDecodeError:
            value = r["value"]
        out.append((r["dt"].isoformat(), value))
    return out


def retail(spark: SparkSession, *rows: tuple) -> DataFrame:
    return spark.createDataFrame(list(rows), I.ONLINE_RETAIL_SCHEMA)


def test_online_retail_line_maps_to_a_raw_purchase_in_utc(spark: SparkSession) -> None:
    src = retail(
        spark,
        (
            "536365",
            "85123A",
            "WHITE HEART",
            6,
            "2010-12-01 08:26:00",
            2.55,
            17850.0,
            "United Kingdom",
        ),
        ("563000", "22423", "CAKESTAND", 1, "2011-08-10 10:00:00", 12.75, 12345.0, "France"),
    )
    assert decoded(I.online_retail_events(src, RUN)) == [
        ("2010-12-01", {"event_time": "2010-12-01T08:26:00Z", "user_id": "17850", "item_id": "85123A",
                        "event_type": "purchase", "session_id": "536365", "price": 2.55, "quantity": 6}),
        # British Summer Time: 10:00 in London is 09:00 UTC.
        ("2011-08-10", {"event_time": "2011-08-10T09:00:00Z", "user_id": "12345", "item_id": "22423",
                        "event_type": "purchase", "session_id": "563000", "price": 12.75, "quantity": 1}),
    ]  # fmt: skip


def test_online_retail_cancellation_and_missing_customer_pass_through(spark: SparkSession) -> None:
    src = retail(
        spark,
        ("C536379", "D", "Discount", -1, "2010-12-01 09:41:00", 27.5, 14527.0, "United Kingdom"),
        ("536414", "22139", None, 56, "2010-12-01 11:52:00", 0.0, None, "United Kingdom"),
    )
    (_, cancel), (_, anonymous) = decoded(I.online_retail_events(src, RUN))
    assert (
        isinstance(cancel, dict) and cancel["event_type"] == "cancel" and cancel["quantity"] == -1
    )
    assert isinstance(anonymous, dict) and "user_id" not in anonymous and anonymous["price"] == 0.0


def test_online_retail_unreadable_date_goes_to_the_run_date(spark: SparkSession) -> None:
    src = retail(spark, ("536365", "85123A", "X", 6, "01/12/2010 8:26", 2.55, 17850.0, "UK"))
    [(day, record)] = decoded(I.online_retail_events(src, RUN))
    assert (
        day == RUN.isoformat()
        and isinstance(record, dict)
        and record["event_time"] == "01/12/2010 8:26"
    )


def test_online_retail_catalog(spark: SparkSession) -> None:
    src = retail(
        spark,
        (
            "1",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            6,
            "2010-12-01 08:26:00",
            2.55,
            1.0,
            "UK",
        ),
        (
            "2",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            6,
            "2010-12-01 08:26:00",
            2.95,
            1.0,
            "UK",
        ),
        ("3", "85123A", "?", 6, "2010-12-01 08:26:00", 0.0, 1.0, "UK"),
        (
            "4",
            "gift_0001_40",
            "Dotcomgiftshop Gift Voucher Â£40.00",
            1,
            "2010-12-01 08:26:00",
            34.04,
            None,
            "UK",
        ),
        ("5", "POST", "POSTAGE", 1, "2010-12-01 08:26:00", 18.0, 1.0, "UK"),
    )
    rows = {r["item_id"]: r.asDict() for r in I.online_retail_catalog(src).collect()}
    assert rows == {
        "85123A": {"item_id": "85123A", "title": "WHITE HANGING HEART T-LIGHT HOLDER", "category": "holder",
                   "price": 2.75, "is_sellable": True},
        "gift_0001_40": {"item_id": "gift_0001_40", "title": "Dotcomgiftshop Gift Voucher £40.00",
                         "category": "£40.00", "price": 34.04, "is_sellable": False},
        "POST": {"item_id": "POST", "title": "POSTAGE", "category": "postage", "price": 18.0, "is_sellable": False},
    }  # fmt: skip


def test_taobao_lines_keep_behaviour_names_and_unix_seconds(spark: SparkSession) -> None:
    lines = spark.createDataFrame(
        [("543462,1715,1464116,pv,1511658000",), ("1,2,3,fav,2000000000",), ("garbage line",)],
        "value string",
    )
    assert decoded(I.taobao_events(lines, RUN)) == [
        (
            "2017-11-26",
            {
                "event_time": "1511658000",
                "user_id": "543462",
                "item_id": "1715",
                "event_type": "pv",
            },
        ),
        # 2033 is after the run date: filed under the run date, where clean flags it as future.
        (
            RUN.isoformat(),
            {"event_time": "2000000000", "user_id": "1", "item_id": "2", "event_type": "fav"},
        ),
        (RUN.isoformat(), "garbage line"),
    ]


def test_taobao_catalog_maps_items_to_categories(spark: SparkSession) -> None:
    lines = spark.createDataFrame(
        [("1,10,7,pv,1511658000",), ("2,10,7,buy,1511658001",), ("3,11,8,pv,1",)], "value string"
    )
    rows = sorted((r["item_id"], r["category"]) for r in I.taobao_catalog(lines).collect())
    assert rows == [("10", "7"), ("11", "8")]


@pytest.mark.parametrize(
    ("rating", "expected"),
    [("5.0", "purchase"), ("4.0", "purchase"), ("3.5", "cart"), ("2.0", "click"), ("0.5", "view")],
)
def test_movielens_rating_sets_the_interaction_type(
    spark: SparkSession, rating: str, expected: str
) -> None:
    lines = spark.createDataFrame([(f"1,31,{rating},1260759144",)], "value string")
    [(day, record)] = decoded(I.movielens_events(lines, RUN))
    assert day == "2009-12-14"
    assert record == {
        "event_time": "1260759144",
        "user_id": "1",
        "item_id": "31",
        "event_type": expected,
    }


def test_movielens_unreadable_rating_passes_the_line_verbatim(spark: SparkSession) -> None:
    lines = spark.createDataFrame([("1,31,great,1260759144",)], "value string")
    assert decoded(I.movielens_events(lines, RUN)) == [("2009-12-14", "1,31,great,1260759144")]


def test_movielens_catalog_takes_the_first_genre(spark: SparkSession) -> None:
    movies = spark.createDataFrame(
        [
            ("1", "Toy Story (1995)", "Adventure|Animation"),
            ("2", "Odd (2001)", "(no genres listed)"),
        ],
        I.MOVIELENS_MOVIES_SCHEMA,
    )
    rows = sorted(
        (r["item_id"], r["title"], r["category"]) for r in I.movielens_catalog(movies).collect()
    )
    assert rows == [("1", "Toy Story (1995)", "adventure"), ("2", "Odd (2001)", None)]
