"""Dealing examples into shard files: counts, balance, determinism, one bucket per partition."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines import shard as SH

pytestmark = pytest.mark.unit


def examples(spark: SparkSession, n: int) -> DataFrame:
    base = dt.datetime(2026, 11, 19)
    return spark.range(n).select(
        F.format_string("u%d", F.col("id") % 97).alias("user_id"),
        F.format_string("i%d", F.col("id") % 31).alias("target_item_id"),
        (F.lit(base) + F.make_interval(secs=F.col("id").cast("int"))).alias("target_time"),
        F.lit("click").alias("target_type"),
        F.col("id").alias("n"),
    )


@pytest.mark.parametrize(
    ("rows", "workers", "target", "expected"),
    [
        (10, 2, 10**9, 2),  # tiny: one file per worker
        (10**6, 2, 1 << 20, 2 * 344),  # ~720 MB at 12*50+120 bytes/row -> 1 MB files
        (5, 4, 1, 4),  # never more files than rows allow (one row per file at least)
    ],
)
def test_file_count_is_a_multiple_of_workers(
    rows: int, workers: int, target: int, expected: int
) -> None:
    got = SH.file_count(rows, workers, target, history_length=50)
    assert got == expected and got % workers == 0


def test_fewer_rows_than_workers_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 rows cannot be split over 4 workers"):
        SH.file_count(3, 4, 1 << 20, 50)


def _partition_sizes(df: DataFrame) -> list[int]:
    return df.rdd.glom().map(len).collect()


def test_exact_deal_balances_files_to_one_row(spark: SparkSession) -> None:
    df = examples(spark, 1001)
    sizes = _partition_sizes(SH.shard_split(df, 4, 1001, seed=3))
    assert sorted(sizes) == [250, 250, 250, 251]


def test_hash_deal_fills_every_file_evenly(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SH, "EXACT_DEAL_MAX_ROWS", 0)
    df = examples(spark, 40_000)
    sizes = _partition_sizes(SH.shard_split(df, 4, 40_000, seed=3))
    assert len(sizes) == 4 and sum(sizes) == 40_000
    assert max(sizes) / min(sizes) < 1.1


def test_every_row_lands_in_exactly_one_file(spark: SparkSession) -> None:
    df = examples(spark, 500)
    dealt = SH.shard_split(df, 2, 500, seed=1)
    assert sorted(r["n"] for r in dealt.select("n").collect()) == list(range(500))


def test_deal_is_deterministic_and_shuffles(spark: SparkSession) -> None:
    df = examples(spark, 300)
    a = (
        SH.shard_split(df, 2, 300, seed=7)
        .rdd.glom()
        .map(lambda rows: [r["n"] for r in rows])
        .collect()
    )
    b = (
        SH.shard_split(df, 2, 300, seed=7)
        .rdd.glom()
        .map(lambda rows: [r["n"] for r in rows])
        .collect()
    )
    c = (
        SH.shard_split(df, 2, 300, seed=8)
        .rdd.glom()
        .map(lambda rows: [r["n"] for r in rows])
        .collect()
    )
    assert a == b and a != c
    assert a[0] != sorted(a[0])  # rows are in random order within a file
