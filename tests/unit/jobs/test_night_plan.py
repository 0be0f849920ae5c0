"""The night's skip rule: a finished step is kept only with the same fingerprint and version."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import nightly
from jobs.runtime.manifest import code_version

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 20)


def finished_night(root: Path, version: str) -> None:
    runs = root / "_runs" / DAY.isoformat()
    runs.mkdir(parents=True)
    step = {"status": "succeeded", "fingerprint": "f1", "code_version": version}
    (runs / "nightly.json").write_text(json.dumps({"steps": {"label": step}}))
    (runs / "label.json").write_text(json.dumps({"status": "succeeded", "finished_at": "t"}))


@pytest.mark.parametrize(
    ("recorded", "keep", "skipped"),
    [
        ("same", False, True),  # same version, same fingerprint: kept
        ("cartwheel 0.0.1+gold", False, False),  # an upgrade redoes the step
        ("cartwheel 0.0.1+gold", True, True),  # unless the user keeps results across versions
        (None, False, False),  # a state written before versions were recorded
    ],
)
def test_a_new_code_version_redoes_a_finished_step_unless_kept(
    spark: SparkSession, tmp_path: Path, recorded: str | None, keep: bool, skipped: bool
) -> None:
    finished_night(tmp_path, code_version() if recorded == "same" else recorded)
    config = nightly.NightlyConfig(
        data_root=str(tmp_path), run_date=DAY, keep_results_across_versions=keep
    )
    night = nightly.Night(spark, config)
    assert (night.plan.skippable("label", "f1") is not None) is skipped
    assert night.plan.skippable("label", "other fingerprint") is None
