"""The pipeline on ``local-cluster[2,1,1024]``: two real executor JVMs with their own Python
workers, so a step that leaned on driver-local state (files, globals) would fail here.

A full demo in a subprocess on two executor JVMs takes several minutes on 2 cores: it is
``slow`` (run by ``make test-all``), so ``make test`` stays within its time budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.slow]


def test_demo_reconciles_on_a_two_executor_cluster(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    env = {
        **os.environ,
        "CARTWHEEL_SPARK_MASTER": "local-cluster[2,1,1024]",
        "CARTWHEEL_DRIVER_MEMORY": "1g",
    }
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "demo", "--data-root", str(root), "--rows", "6000", "--days", "4", "--epochs", "1", "--gate-min-ratio", "0"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    # The JVMs' shutdown noise follows a failure; show the Python error lines first.
    errors = [
        line
        for line in done.stderr.splitlines()
        if "Error" in line and not line.startswith(("\t", " "))
    ]
    assert done.returncode == 0, "\n".join(errors[-15:]) + "\n" + done.stdout[-3000:]
    assert "every injected defect was found and every row is accounted for" in done.stdout
    gen = json.loads((root / "_runs/2026-11-21/generate.json").read_text())
    cln = json.loads((root / "_runs/2026-11-21/clean.json").read_text())
    assert cln["rows_in"] == gen["raw_rows"] and cln["rows_out"] == gen["natural_rows"]
    assert cln["spark"]["master"] == "local-cluster[2,1,1024]"
    night = json.loads((root / "_runs/2026-11-21/nightly.json").read_text())
    assert night["status"] == "succeeded" and night["published"]
    latest = json.loads((root / "recs/_latest.json").read_text())
    assert latest["run_date"] == "2026-11-21" and (root / "recs/user_topk/dt=2026-11-21").is_dir()
    html = (root / "reports/dt=2026-11-21/night.html").read_text()
    assert "Test metrics vs baselines" in html and "Sample recommendations" in html
