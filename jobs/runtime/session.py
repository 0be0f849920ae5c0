"""The one place cartwheel creates (or adopts) a SparkSession.

On a laptop or in CI it builds a ``local[*]`` session sized for the machine; on Databricks or in a
Jupyter kernel that already holds a session it adopts that one and only sets the SQL options
cartwheel's correctness depends on (UTC session time zone, dynamic partition overwrite, micros
Parquet timestamps).

Environment overrides: ``CARTWHEEL_SPARK_MASTER`` (e.g. ``local-cluster[2,1,1024]``, ``yarn``),
``CARTWHEEL_DRIVER_MEMORY`` (e.g. ``6g``), ``CARTWHEEL_LOCAL_DIR`` (shuffle/spill folder),
``CARTWHEEL_SPARK_UI=1`` (turn the web UI on), ``CARTWHEEL_SPARK_LOG_LEVEL`` (default WARN).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psutil
from pyspark import StorageLevel
from pyspark.errors import PySparkNotImplementedError
from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("cartwheel")

LOG4J_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties")
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions"
# HotSpot never JIT-compiles a method over 8,000 bytecode bytes; the whole-stage code Spark
# generates for a wide row (the generator's records, clean's parse) exceeds it and then runs
# interpreted: the generator's records took 40 s instead of 21 s per 2M rows here.
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"

# Options cartwheel relies on for correctness; set even on an adopted session.
RUNTIME_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def machine_defaults(cores: int | None = None, total_memory: int | None = None) -> dict[str, str]:
    """Static conf for a local session sized to this machine (driver memory, shuffle partitions)."""
    cores = cores or os.cpu_count() or 2
    total_memory = total_memory or psutil.virtual_memory().total
    # Local mode runs executors inside the driver JVM: give it ~40% of RAM, within [1g, 16g].
    driver_gb = max(1, min(16, int(total_memory * 0.4 / 2**30)))
    return {
        "spark.driver.memory": os.environ.get("CARTWHEEL_DRIVER_MEMORY", f"{driver_gb}g"),
        "spark.sql.shuffle.partitions": str(max(8, 4 * cores)),
        "spark.default.parallelism": str(max(4, 2 * cores)),
    }


def _python_env() -> None:
    # Executors must run this interpreter (and its venv), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def submitted_conf() -> set[str] | None:
    """The conf keys spark-submit set, when this process was started by spark-submit (or the
    pyspark shell): the JVM is already up, so --master and --driver-memory must not be
    overridden. None when cartwheel starts the JVM itself."""
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    # Set at JVM launch; changing them now would be ignored or, for the master, wrong.
    return {k for k, _ in SparkConf().getAll()} | {"spark.driver.memory"}


def get_spark(
    app_name: str = "cartwheel", extra_conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The active SparkSession if there is one (Databricks, Jupyter), else a new local one
    (``extra_conf`` over the defaults; its driver JVM options are added to cartwheel's)."""
    _python_env()
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in RUNTIME_CONF.items():
            active.conf.set(key, value)
        for key, value in (extra_conf or {}).items():
            active.conf.set(key, value)
        return active

    local_dir = os.environ.get("CARTWHEEL_LOCAL_DIR") or os.path.join(
        tempfile.gettempdir(), "cartwheel-spark"
    )
    os.makedirs(local_dir, exist_ok=True)
    extra = dict(extra_conf or {})
    # a caller's JVM options come after cartwheel's own (the log4j config, Derby's home, the JIT)
    java_options = (
        f"-Dderby.system.home={local_dir} -Dlog4j.configurationFile=file:{LOG4J_CONFIG} "
        + JIT_OPTIONS
    )
    if JAVA_OPTIONS in extra:
        java_options += " " + extra.pop(JAVA_OPTIONS)
    conf: dict[str, str] = {
        "spark.master": os.environ.get("CARTWHEEL_SPARK_MASTER", "local[*]"),
        "spark.app.name": app_name,
        **machine_defaults(),
        **RUNTIME_CONF,
        "spark.local.dir": local_dir,
        "spark.sql.warehouse.dir": os.path.join(local_dir, "warehouse"),
        "spark.ui.enabled": "true" if os.environ.get("CARTWHEEL_SPARK_UI") == "1" else "false",
        "spark.ui.showConsoleProgress": "false",
        JAVA_OPTIONS: java_options,
        EXECUTOR_JAVA_OPTIONS: JIT_OPTIONS,
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        **extra,
    }
    preset = submitted_conf()
    if preset is not None:  # spark-submit's flags (--master, --driver-memory, --conf) win
        conf = {k: v for k, v in conf.items() if k not in preset}
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("CARTWHEEL_SPARK_LOG_LEVEL", "WARN"))
    return spark


def default_parallelism(spark: SparkSession, fallback: int = 8) -> int:
    """The session's default parallelism (its executors' cores), or ``fallback`` on Spark
    Connect, which does not expose it."""
    try:
        return int(spark.sparkContext.defaultParallelism)
    except PySparkNotImplementedError:
        return fallback


SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
# Input bytes (gzip JSON or Parquet on disk: ~20 bytes a row here) per shuffle partition: about
# 1.5M rows, so a task's sort buffers stay bounded however long the log is.
SHUFFLE_INPUT_BYTES = 32 * 2**20


def shuffle_partitions_for(input_bytes: int, floor: int) -> int:
    """Shuffle partitions for a step reading ``input_bytes``: one per SHUFFLE_INPUT_BYTES, at
    least ``floor`` (the session's setting)."""
    return max(floor, math.ceil(input_bytes / SHUFFLE_INPUT_BYTES))


@contextmanager
def shuffle_sized_for(spark: SparkSession, input_bytes: int, step: str) -> Iterator[int]:
    """Within the block, ``spark.sql.shuffle.partitions`` grows to one per SHUFFLE_INPUT_BYTES of
    ``input_bytes`` (never below the session's value, which is restored after). Adaptive query
    execution still coalesces partitions that turn out small. Yields the partitions used."""
    before = spark.conf.get(SHUFFLE_PARTITIONS) or "200"
    partitions = shuffle_partitions_for(input_bytes, int(before))
    if partitions == int(before):
        yield partitions
        return
    log.info(
        "[%s] %.1f MB of input: %d shuffle partitions (session: %s)",
        step,
        input_bytes / 1e6,
        partitions,
        before,
    )
    spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
    try:
        yield partitions
    finally:
        spark.conf.set(SHUFFLE_PARTITIONS, before)


def materialize(frame: DataFrame) -> DataFrame:
    """``frame``, computed now and kept on the executors (in memory, spilling to disk) with its
    lineage cut, so later jobs on it neither recompute nor re-plan what built it: a long plan
    under a cached frame still costs the driver seconds per job. A local checkpoint is freed
    when the driver no longer references it; Spark Connect 3.5 has none, and there the frame is
    persisted and counted instead (``unpersist`` frees it; on a checkpoint it does nothing)."""
    try:
        return frame.localCheckpoint(eager=True)
    except PySparkNotImplementedError:
        kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
        kept.count()
        return kept
