"""Shard: examples -> shuffled, balanced files for Petastorm readers (one worker per rank).

Each row gets a seeded random key; rows are dealt into ``num_files`` buckets and each bucket
becomes exactly one Parquet file, its rows in random order, so every file is an i.i.d. sample of
its split. Small splits are dealt exactly (rank modulo files: sizes differ by at most one row);
large ones by a hash of the key, whose bucket sizes differ by a few standard deviations of a
binomial (well under 1% at 10^5 rows per file) without a global sort.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from pipelines.frames import spark_hash_long

# Below this many rows a split is dealt exactly (one global ordering is cheap at this size).
EXACT_DEAL_MAX_ROWS = 200_000


def one_partition() -> WindowSpec:
    """The exact deal's window: every row in one partition, on purpose and bounded by
    ``EXACT_DEAL_MAX_ROWS``. Keyed by a constant rather than left unpartitioned, so that Spark
    does not warn, for every split, that it moves all data to one partition (a small night
    printed 20 such warnings)."""
    return Window.partitionBy(F.lit(0))


def estimated_row_bytes(history_length: int) -> int:
    """Rough stored size of one example (three int arrays of L plus scalars), for file counts."""
    return 12 * history_length + 120


def file_count(rows: int, workers: int, target_file_bytes: int, history_length: int) -> int:
    """Files for a split: a multiple of ``workers``, about ``target_file_bytes`` each, never
    more files than rows."""
    if rows < workers:
        raise ValueError(f"{rows} rows cannot be split over {workers} workers")
    per_worker = math.ceil(
        rows * estimated_row_bytes(history_length) / (target_file_bytes * workers)
    )
    per_worker = max(1, min(per_worker, rows // workers))
    return workers * per_worker


def deal(examples: DataFrame, num_files: int, rows: int, seed: int) -> DataFrame:
    """Add ``_file`` (0..num_files-1) and ``_key`` (random order) to every row."""
    key = F.xxhash64(
        F.lit(seed),
        F.col("user_id"),
        F.col("target_item_id"),
        F.col("target_time"),
        F.col("target_type"),
    )
    keyed = examples.withColumn("_key", key)
    if rows <= EXACT_DEAL_MAX_ROWS:
        order = one_partition().orderBy("_key", "user_id", "target_time", "target_item_id")
        rank = F.row_number().over(order) - 1
        return keyed.withColumn("_file", F.pmod(rank, F.lit(num_files)).cast("int"))
    return keyed.withColumn(
        "_file", F.pmod(F.xxhash64(F.lit(seed + 1), F.col("_key")), F.lit(num_files)).cast("int")
    )


def partition_keys(num_partitions: int) -> dict[int, int]:
    """For each partition i, a long whose hash partitioning lands in partition i.

    ``repartition(n, col)`` places a row by ``pmod(murmur3(col, seed 42), n)``, the very
    function ``F.hash`` computes (``frames.spark_hash_long`` on the driver); so by keying bucket
    i with such a long, hash partitioning becomes an identity map and each bucket gets a
    partition (and a file) of its own. Range partitioning cannot do this: its sampled bounds
    merge heavily repeated values.
    """
    keys: dict[int, int] = {}
    for candidate in range(max(1024, 64 * num_partitions)):
        keys.setdefault(spark_hash_long(candidate) % num_partitions, candidate)
        if len(keys) == num_partitions:
            return keys
    raise RuntimeError(f"found keys for {len(keys)} of {num_partitions} partitions")


def one_file_per_bucket(frame: DataFrame, bucket: str, num_files: int) -> DataFrame:
    """Rows partitioned so that writing gives one file per value of the int column ``bucket``
    (0 .. num_files-1)."""
    keys = partition_keys(num_files)
    key_of = F.create_map(
        *[F.lit(v) for bucket_no in range(num_files) for v in (bucket_no, keys[bucket_no])]
    )
    return (
        # cast: the keys were found by hashing longs, and an int hashes differently
        frame.withColumn("_pkey", key_of[F.col(bucket)].cast("long"))
        .repartition(num_files, "_pkey")
        .drop("_pkey")
    )


def shard_split(examples: DataFrame, num_files: int, rows: int, seed: int) -> DataFrame:
    """Rows laid out so that writing produces one file per bucket, rows shuffled within it."""
    dealt = deal(examples, num_files, rows, seed)
    return (
        one_file_per_bucket(dealt, "_file", num_files)
        .sortWithinPartitions("_key")
        .drop("_file", "_key")
    )


def deal_lists(lists: DataFrame, num_files: int, n_lists: int, seed: int) -> DataFrame:
    """Candidate-list rows (``group_id`` names a list) laid out so that writing produces
    ``num_files`` files of whole lists, each file's rows ordered by ``group_id`` then
    ``item_id``. Up to ``EXACT_DEAL_MAX_ROWS`` lists are dealt exactly (list counts per file
    differ by at most one), more by a hash of the list."""
    key = F.xxhash64(F.lit(seed), F.col("group_id"))
    if n_lists <= EXACT_DEAL_MAX_ROWS:
        order = one_partition().orderBy("_key", "group_id")
        files = (
            lists.select("group_id")
            .distinct()
            .withColumn("_key", key)
            .withColumn("_file", F.pmod(F.row_number().over(order) - 1, F.lit(num_files)))
            .select("group_id", F.col("_file").cast("int").alias("_file"))
        )
        dealt = lists.join(F.broadcast(files), "group_id", "inner")
    else:
        dealt = lists.withColumn("_file", F.pmod(key, F.lit(num_files)).cast("int"))
    return (
        one_file_per_bucket(dealt, "_file", num_files)
        .sortWithinPartitions("group_id", "item_id")
        .drop("_file")
    )
