"""Shared fixtures: one Spark session for the whole run, built by cartwheel's own factory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Hardened for CI (as in horovod's test/utils/spark_common.py): 2 local cores, no UI, temp dirs.
os.environ.setdefault("CARTWHEEL_SPARK_MASTER", "local[2]")
os.environ.setdefault("CARTWHEEL_LOCAL_DIR", tempfile.mkdtemp(prefix="cartwheel-test-spark-"))
os.environ.setdefault("CARTWHEEL_DRIVER_MEMORY", "4g")
os.environ.setdefault("CARTWHEEL_SPARK_LOG_LEVEL", "ERROR")
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def shared_data_dir() -> Path:
    """The real datasets beside the project (``../shared/data``), or $CARTWHEEL_SHARED_DATA."""
    candidates = [
        os.environ.get("CARTWHEEL_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        "/work/shared/data",
    ]
    for c in candidates:
        if c and (Path(c) / "online-retail").is_dir():
            return Path(c)
    raise FileNotFoundError(
        "real datasets not found: set CARTWHEEL_SHARED_DATA to the shared/data folder "
        f"(looked in {', '.join(str(c) for c in candidates if c)})"
    )


@pytest.fixture(scope="session")
def spark() -> Iterator:
    from jobs.runtime.session import get_spark

    session = get_spark(
        "cartwheel-tests", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture
def data_root(tmp_path: Path) -> str:
    return str(tmp_path / "data")
