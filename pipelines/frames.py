"""DataFrame helpers shared by the stages: plain Spark SQL, so they run on Spark Connect too."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

HASH_GROUPS = 64


def dense_index(
    frame: DataFrame,
    name: str,
    *,
    group: Column,
    order: list[Column],
    descending_groups: bool = False,
    start: int = 0,
) -> DataFrame:
    """``frame`` + int column ``name``: start, start + 1, ... over its rows ordered by ``group``
    (ascending, or descending with ``descending_groups``), then by ``order`` within a group.

    ``order`` must make rows unique within a group. No ``.rdd`` and no window over the whole
    frame: rows are numbered within their group (a deterministic function of the row, so a
    re-computed frame gets the same numbers), and each group is offset by the sizes of the groups
    before it (a table with one row per group, broadcast to the final join).
    """
    numbered = frame.withColumn("_group", group).withColumn(
        "_pos", F.row_number().over(Window.partitionBy("_group").orderBy(*order)) - 1
    )
    sizes = numbered.groupBy("_group").agg(F.count(F.lit(1)).alias("_size"))
    by_group = F.col("_group").desc() if descending_groups else F.col("_group").asc()
    # One row per group, so one partition is right; naming it keeps Spark from warning that an
    # unpartitioned window moves "all data" to one partition.
    before = (
        Window.partitionBy(F.lit(0)).orderBy(by_group).rowsBetween(Window.unboundedPreceding, -1)
    )
    offsets = sizes.select(
        "_group", F.coalesce(F.sum("_size").over(before), F.lit(0)).alias("_offset")
    )
    return numbered.join(F.broadcast(offsets), "_group").select(
        *frame.columns,
        (F.col("_offset") + F.col("_pos") + F.lit(start)).cast("int").alias(name),
    )


def key_index(keys: DataFrame, key: str, name: str) -> DataFrame:
    """The distinct non-null values of column ``key`` -> (key, dense int index from 0), in an
    order fixed by the values themselves (hash group, then value)."""
    distinct = keys.select(key).where(F.col(key).isNotNull()).distinct()
    return dense_index(
        distinct, name, group=F.pmod(F.xxhash64(key), F.lit(HASH_GROUPS)), order=[F.col(key)]
    )


_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _mix_k1(k1: int) -> int:
    return (_rotl((k1 * 0xCC9E2D51) & _M32, 15) * 0x1B873593) & _M32


def _mix_h1(h1: int, k1: int) -> int:
    return (_rotl(h1 ^ k1, 13) * 5 + 0xE6546B64) & _M32


def spark_hash_long(value: int, seed: int = 42) -> int:
    """What Spark's ``hash(long)`` gives (Murmur3 x86_32 over the 8 bytes, seed 42), computed on
    the driver without a job; a signed 32-bit int."""
    v = value & 0xFFFFFFFFFFFFFFFF
    h1 = _mix_h1(_mix_h1(seed & _M32, _mix_k1(v & _M32)), _mix_k1(v >> 32))
    h1 ^= 8
    h1 = ((h1 ^ (h1 >> 16)) * 0x85EBCA6B) & _M32
    h1 = ((h1 ^ (h1 >> 13)) * 0xC2B2AE35) & _M32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1
