"""ingest -> clean on the real datasets in ../shared/data: every source row is accounted for.

Expected figures are computed independently from the source files with pandas, not copied from
an earlier run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from jobs import clean, ingest
from pipelines import clean as C

pytestmark = pytest.mark.smoke

INGEST_DATE = dt.date(2026, 11, 22)


def conserved(manifest: dict) -> bool:
    m = manifest
    return m["rows_in"] == m["rows_out"] + m["rows_quarantined"] + sum(m["rows_filtered"].values())


def run(
    spark: SparkSession,
    root: Path,
    fmt: str,
    source: Path,
    run_date: dt.date,
    days: int,
    **rules: object,
) -> tuple[dict, dict]:
    ing = ingest.main(
        spark,
        ingest.IngestConfig(
            data_root=str(root), format=fmt, input=str(source), run_date=INGEST_DATE
        ),
    )
    cln = clean.main(
        spark,
        clean.CleanConfig(
            data_root=str(root), run_date=run_date, days=days, allow_missing_days=True, **rules
        ),  # type: ignore[arg-type]
    )
    assert ing.succeeded and cln.succeeded
    assert conserved(ing.manifest) and conserved(cln.manifest)
    assert cln.manifest["rows_in"] == ing.manifest["rows_out"]
    source = json.loads((root / "raw" / "_source.json").read_text())
    assert source["format"] == fmt and source["exclude"] == ing.manifest["exclude"]
    return ing.manifest, cln.manifest


def online_retail(spark: SparkSession, source: Path, root: Path, days: int) -> None:
    src = pd.read_parquet(source)
    ing, cln = run(
        spark, root, "online-retail", source, dt.date(2011, 12, 9), days,
        bot_max_events_per_minute=0,
    )  # fmt: skip
    assert ing["rows_in"] == len(src)
    assert ing["exclude"] == "none"  # re-orders are what a wholesale customer does most
    assert ing["mojibake_descriptions"] > 0
    no_customer = src["CustomerID"].isna()
    cancelled = src["InvoiceNo"].str.upper().str.startswith("C")
    assert cln["rows_quarantined_by_reason"][C.MISSING_ID] == int(no_customer.sum())
    assert cln["rows_filtered"][C.IGNORED_EVENT_TYPE] == int((cancelled & ~no_customer).sum())
    kept_side = src[~no_customer & ~cancelled]
    assert cln["rows_quarantined_by_reason"][C.INVALID_QUANTITY] == int(
        (kept_side["Quantity"] > 10_000).sum()
    )
    # duplicates, over the fields a raw record carries, among the rows that reach deduplication
    carried = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    reaching = kept_side[kept_side["Quantity"] <= 10_000]
    assert cln["rows_filtered"][C.EXACT_DUPLICATE] == int(reaching.duplicated(subset=carried).sum())
    assert cln["quality"]["kept_by_event_type"]["purchase"] == cln["rows_out"]
    catalog = spark.read.parquet(str(root / "raw" / "catalog"))
    assert catalog.count() == src["StockCode"].nunique()
    assert (
        catalog.where("title like '%Â£%'").count() == 0
        and catalog.where("title like '%£%'").count() > 0
    )


def test_online_retail_last_weeks(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    """The invoices of the file's last 45 days (124k of 542k lines; the whole file is
    ``test_online_retail_whole_file``, marked slow)."""
    src = pd.read_parquet(shared_data / "online-retail" / "online_retail.parquet")
    when = pd.to_datetime(src["InvoiceDate"])
    recent = src[when >= when.max() - pd.Timedelta(days=45)]
    assert 100_000 < len(recent) < len(src)
    source = tmp_path / "online_retail_last_weeks.parquet"
    recent.to_parquet(source, index=False)
    online_retail(spark, source, tmp_path / "data", 46)


@pytest.mark.slow  # 542k lines over 374 days: about 2 minutes on 2 cores (make test-all)
def test_online_retail_whole_file(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "online-retail" / "online_retail.parquet"
    assert len(pd.read_parquet(source)) == 541_909
    online_retail(spark, source, tmp_path, 400)


def test_taobao(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "taobao-userbehavior-excerpt" / "UserBehavior.csv"
    src = pd.read_csv(source, header=None, names=["user", "item", "category", "behavior", "ts"])
    ing, cln = run(spark, tmp_path, "taobao", source, dt.date(2017, 11, 26), 1)
    assert ing["rows_in"] == len(src) == 110_300 and ing["exclude"] == "purchased"
    expected = (
        src["behavior"]
        .map({"pv": "view", "cart": "cart", "fav": "cart", "buy": "purchase"})
        .value_counts()
    )
    kept = {k: v for k, v in cln["quality"]["kept_by_event_type"].items() if v}
    assert kept == expected.to_dict()
    assert cln["rows_out"] == len(src)


def movielens(spark: SparkSession, source: Path, root: Path) -> None:
    ratings = pd.read_csv(source / "ratings.csv")
    end = pd.to_datetime(ratings["timestamp"].max(), unit="s").date()
    first = pd.to_datetime(ratings["timestamp"].min(), unit="s").date()
    ing, cln = run(spark, root, "movielens", source, end, (end - first).days + 1)
    assert ing["rows_in"] == len(ratings) and ing["header_lines"] == 1
    assert ing["exclude"] == "interacted"  # a film rated 1 star is seen, not to be offered again
    days = pd.to_datetime(ratings["timestamp"], unit="s").dt.date.nunique()
    assert ing["days"] == days and len(cln["days"]) == days
    liked = int((ratings["rating"] >= 4.0).sum())
    assert cln["rows_out"] + cln["rows_filtered"].get(C.BOT_USER, 0) == len(ratings)
    assert 0 < cln["quality"]["kept_by_event_type"]["purchase"] <= liked
    assert ing["catalog_items"] == len(pd.read_csv(source / "movies.csv"))


def test_movielens_last_year(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    """The ratings of the file's last 365 days (the whole file spans 4,110 rating days, one
    partition each: ``test_movielens_whole_file``, marked slow, runs it all)."""
    whole = shared_data / "ml-latest-small"
    ratings = pd.read_csv(whole / "ratings.csv")
    recent = ratings[ratings["timestamp"] >= ratings["timestamp"].max() - 365 * 86_400]
    assert 1_000 < len(recent) < len(ratings)
    source = tmp_path / "ml-last-year"
    source.mkdir()
    recent.to_csv(source / "ratings.csv", index=False)
    shutil.copy(whole / "movies.csv", source / "movies.csv")
    movielens(spark, source, tmp_path / "data")


@pytest.mark.slow  # 4,110 day partitions: about 2 minutes on 2 cores (make test-all)
def test_movielens_whole_file(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    ratings = pd.read_csv(shared_data / "ml-latest-small" / "ratings.csv")
    assert len(ratings) == 100_836
    movielens(spark, shared_data / "ml-latest-small", tmp_path)
