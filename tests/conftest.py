"""Shared fixtures: one Spark session for the whole run, built by cartwheel's own factory."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Hardened for CI (as in horovod's test/utils/spark_common.py): 2 local cores, no UI, temp dirs.
os.environ.setdefault("CARTWHEEL_SPARK_MASTER", "local[2]")
# One Spark scratch folder per run (xdist workers inherit it), removed when the run ends.
if "CARTWHEEL_LOCAL_DIR" not in os.environ:
    os.environ["CARTWHEEL_LOCAL_DIR"] = tempfile.mkdtemp(prefix="cartwheel-test-spark-")
    atexit.register(shutil.rmtree, os.environ["CARTWHEEL_LOCAL_DIR"], ignore_errors=True)
os.environ.setdefault("CARTWHEEL_DRIVER_MEMORY", "4g")
os.environ.setdefault("CARTWHEEL_SPARK_LOG_LEVEL", "ERROR")
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


# The longest modules first (measured with --durations=0 on 2 workers; xdist's loadfile hands out
# whole modules in collection order, once `make test` passes --no-loadscope-reorder: by default
# xdist re-sorts them by their number of tests), so that no long module starts last while the
# other worker idles. The first modules differ in whether they need the trained template: one
# worker builds it (for test_nightly) while the other runs unit modules that do not wait for it
# (test_clean, test_baselines, test_label: together about as long as the build), so that
# test_rank does not sit waiting on the template's lock. The test order inside a
# module, and the order of every other module, stay as pytest-randomly shuffled them.
LONGEST_FIRST: tuple[str, ...] = (
    "tests/smoke/test_nightly.py",
    "tests/unit/pipelines/test_clean.py",
    "tests/unit/pipelines/test_baselines.py",
    "tests/unit/pipelines/test_label.py",
    "tests/smoke/test_rank.py",
    "tests/smoke/test_train.py",
    "tests/smoke/test_score_evaluate.py",
    "tests/smoke/test_bad_input.py",
    "tests/smoke/test_real_datasets.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the modules of ``LONGEST_FIRST`` to the front, in that order (a stable sort)."""
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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

    # Tiny frames: compiling whole-stage generated code costs more than running the stage
    # (test_label + test_baselines: 103 s with it, 71 s without), and so does adaptive query
    # execution's re-planning after every shuffle stage (test_clean, test_label, test_baselines
    # and test_metrics: 213 s with it, 151 s without). Both are execution strategies with the
    # same results (Spark's own suites run both ways); the tests that start their own process
    # (the CLI, spark-submit, the nightly lock, the killed training run) and the demo run with
    # both on, as a night does.
    session = get_spark(
        "cartwheel-tests",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.adaptive.enabled": "false",
            # The JIT's optimising tier (C2) spends more CPU compiling than it saves on tiny
            # frames (same results; the suite is CPU-bound on 2 cores).
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture
def data_root(tmp_path: Path) -> str:
    return str(tmp_path / "data")


TEMPLATE_END = "2026-11-21"


@pytest.fixture(scope="session")
def trained_template(spark: Any, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One data root taken through generate, clean, label, shard and train (8 days, 50k rows,
    300 items; a small model of up to 4 epochs registered as ``cartwheel-two-tower@candidate``), built
    once per test run and shared by the xdist workers through a file lock. Modules copy it
    (``copy_root``) instead of re-running the pipeline; its train manifest is
    ``_runs/2026-11-21/train.json``."""
    from filelock import FileLock

    from jobs import clean, generate, label, shard, train

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base
    template = shared / "trained-template"
    with FileLock(str(template) + ".lock"):
        if not (template / "_ready").exists():
            shutil.rmtree(template, ignore_errors=True)
            r, end = str(template / "data"), dt.date.fromisoformat(TEMPLATE_END)
            generate.main(
                spark,
                generate.GenerateConfig(
                    data_root=r, end_date=end, days=8, rows=50_000, items=300, seed=5
                ),
            )
            clean.main(spark, clean.CleanConfig(data_root=r, run_date=end, days=8))
            label.main(spark, label.LabelConfig(data_root=r, run_date=end, lookback_days=8))
            shard.main(spark, shard.ShardConfig(data_root=r, run_date=end, workers=2))
            trained = train.main(
                spark, train.TrainConfig(data_root=r, run_date=end, **TEMPLATE_TRAIN)
            )
            assert trained.succeeded, trained.manifest.get("error")
            (template / "_ready").touch()
    return template / "data"


TEMPLATE_TRAIN: dict[str, Any] = {
    "epochs": 4,
    "patience": 2,
    "dim": 32,
    "item_embedding_dim": 32,
    "category_embedding_dim": 8,
    "batch_size": 128,
    "k": 10,
}


def copy_root(template: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of a template data root (modification times kept, so fingerprints and
    clean markers still match; the MLflow store follows the copy, see ``registry``)."""
    root = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(template, root, copy_function=shutil.copy2)
    return root
