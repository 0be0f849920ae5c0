"""The session cartwheel builds: its conf on this machine, and what a caller's conf adds."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from jobs.runtime.session import (
    JAVA_OPTIONS,
    JIT_OPTIONS,
    LOG4J_CONFIG,
    SHUFFLE_INPUT_BYTES,
    SHUFFLE_PARTITIONS,
    machine_defaults,
    shuffle_partitions_for,
    shuffle_sized_for,
)


def test_a_callers_jvm_options_are_added_to_cartwheels_own(spark: SparkSession) -> None:
    """The test session asks for C1-only JIT; the driver keeps cartwheel's log4j config beside it
    (replacing it would bring back Spark's INFO flood)."""
    options = spark.sparkContext.getConf().get(JAVA_OPTIONS) or ""
    assert f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG}" in options
    assert JIT_OPTIONS in options  # huge generated methods compiled, not interpreted
    assert options.endswith(" -XX:TieredStopAtLevel=1")


def test_machine_defaults_size_the_driver_and_the_shuffle_from_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARTWHEEL_DRIVER_MEMORY", raising=False)
    small = machine_defaults(cores=2, total_memory=4 * 2**30)  # 40 % of RAM, at least 1g
    assert small == {"spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "8",
                     "spark.default.parallelism": "4"}  # fmt: skip
    big = machine_defaults(cores=16, total_memory=64 * 2**30)  # at most 16g
    assert big == {"spark.driver.memory": "16g", "spark.sql.shuffle.partitions": "64",
                   "spark.default.parallelism": "32"}  # fmt: skip
    monkeypatch.setenv("CARTWHEEL_DRIVER_MEMORY", "6g")
    assert machine_defaults(cores=2, total_memory=64 * 2**30)["spark.driver.memory"] == "6g"


def test_shuffle_partitions_grow_with_the_input_and_never_below_the_floor() -> None:
    assert shuffle_partitions_for(0, 8) == 8
    assert shuffle_partitions_for(8 * SHUFFLE_INPUT_BYTES, 8) == 8
    assert shuffle_partitions_for(8 * SHUFFLE_INPUT_BYTES + 1, 8) == 9
    assert shuffle_partitions_for(100 * SHUFFLE_INPUT_BYTES, 8) == 100


def test_a_sized_shuffle_holds_inside_the_block_and_the_session_value_comes_back(
    spark: SparkSession,
) -> None:
    before = spark.conf.get(SHUFFLE_PARTITIONS)
    with shuffle_sized_for(spark, 5 * SHUFFLE_INPUT_BYTES + int(before), "test") as n:
        assert n == max(int(before), 6)
        assert spark.conf.get(SHUFFLE_PARTITIONS) == str(n)
    assert spark.conf.get(SHUFFLE_PARTITIONS) == before
    with (
        pytest.raises(RuntimeError, match="inside"),
        shuffle_sized_for(spark, 50 * SHUFFLE_INPUT_BYTES, "test"),
    ):
        assert spark.conf.get(SHUFFLE_PARTITIONS) == "50"
        raise RuntimeError("failed inside")
    assert spark.conf.get(SHUFFLE_PARTITIONS) == before
    with shuffle_sized_for(spark, 1, "test") as n:  # a small input keeps the session's value
        assert str(n) == before == spark.conf.get(SHUFFLE_PARTITIONS)
