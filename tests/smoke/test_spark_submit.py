"""A step through real ``spark-submit``, shipped as the ``--py-files`` zip that ``make package``
builds: the flags spark-submit was given win over cartwheel's local defaults."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import generate
from jobs.runtime import pyfiles
from tests.conftest import REPO

pytestmark = pytest.mark.smoke

DAY = dt.date(2026, 11, 21)


def test_clean_runs_under_spark_submit_from_the_py_files_zip(
    spark: SparkSession, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    generate.main(
        spark, generate.GenerateConfig(data_root=str(root), end_date=DAY, days=2, rows=3000)
    )
    bundle = pyfiles.build(tmp_path / "dist")
    submit = Path(sys.executable).parent / "spark-submit"
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "CARTWHEEL_SPARK_MASTER": "local[1]",  # spark-submit's --master must win over this
    }
    done = subprocess.run(
        [str(submit), "--master", "local[2]", "--driver-memory", "1g", "--py-files", str(bundle),
         str(REPO / "jobs" / "clean.py"), "--data-root", str(root), "--run-date", DAY.isoformat(), "--days", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "cleaned " in done.stdout and "kept" in done.stdout
    manifest = json.loads((root / "_runs" / DAY.isoformat() / "clean.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["rows_in"] > 0
    assert manifest["code_path"] == str(bundle)  # the code came from the zip
    assert manifest["spark"]["master"] == "local[2]"
    assert (root / "clean" / "events" / f"dt={DAY}").is_dir()

    # A bad flag fails before Spark does any work, with exit code 2 and the flag named.
    bad = subprocess.run(
        [str(submit), "--master", "local[1]", "--py-files", str(bundle),
         str(REPO / "jobs" / "clean.py"), "--data-root", str(root), "--run-date", "2026-13-01"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    # spark-submit merges the Python driver's stderr into its own stdout
    assert bad.returncode == 2 and "--run-date: expected a date YYYY-MM-DD" in bad.stdout
