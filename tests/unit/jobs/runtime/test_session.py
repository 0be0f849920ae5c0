"""The session cartwheel builds: its conf on this machine, and what a caller's conf adds."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from jobs.runtime.session import JAVA_OPTIONS, JIT_OPTIONS, LOG4J_CONFIG, machine_defaults


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
