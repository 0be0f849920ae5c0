"""Spark-Connect-safe helpers: dense indices without ``.rdd``, and Spark's hash on the driver."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines.frames import dense_index, key_index, spark_hash_long
from pipelines.shard import partition_keys

pytestmark = pytest.mark.unit


def test_dense_index_orders_by_descending_group_then_key(spark: SparkSession) -> None:
    counts = spark.createDataFrame(
        [("b", 5), ("a", 5), ("c", 9), ("d", 1), ("e", 5)], "item_id string, count long"
    ).repartition(3)
    out = dense_index(
        counts,
        "idx",
        group=F.col("count"),
        order=[F.col("item_id")],
        descending_groups=True,
        start=2,
    )
    expected = spark.createDataFrame(
        [("c", 9, 2), ("a", 5, 3), ("b", 5, 4), ("e", 5, 5), ("d", 1, 6)],
        "item_id string, count long, idx int",
    )
    assertDataFrameEqual(out, expected)


def test_key_index_is_dense_distinct_and_the_same_when_recomputed(spark: SparkSession) -> None:
    keys = spark.createDataFrame(
        [(f"u{i % 300}",) for i in range(1000)] + [(None,)], "user_id string"
    ).repartition(4)
    index = key_index(keys, "user_id", "u")
    rows = index.collect()
    assert sorted(r["u"] for r in rows) == list(range(300))
    assert len({r["user_id"] for r in rows}) == 300 and None not in {r["user_id"] for r in rows}
    assertDataFrameEqual(index, key_index(keys.repartition(7), "user_id", "u"))


def test_spark_hash_long_matches_spark(spark: SparkSession) -> None:
    ids = spark.range(-500, 500).union(
        spark.createDataFrame([(2**63 - 1,), (-(2**63),)], "id long")
    )
    for r in ids.select("id", F.hash("id").alias("h")).collect():
        assert spark_hash_long(r["id"]) == r["h"], r["id"]


def test_partition_keys_land_each_in_its_own_partition(spark: SparkSession) -> None:
    keys = partition_keys(7)
    assert sorted(keys) == list(range(7))
    frame = spark.createDataFrame([(k,) for k in keys.values()], "k long").repartition(7, "k")
    per_partition = frame.select(F.spark_partition_id().alias("p"), "k").collect()
    assert {r["p"]: r["k"] for r in per_partition} == {p: k for p, k in keys.items()}
