"""The pipeline on ``local-cluster[2,1,1024]``: two real executor JVMs with their own Python
workers, so a step that leaned on driver-local state (files, globals) would fail here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke


def test_demo_reconciles_on_a_two_executor_cluster(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    env = {
        **os.environ,
        "CARTWHEEL_SPARK_MASTER": "local-cluster[2,1,1024]",
        "CARTWHEEL_DRIVER_MEMORY": "1g",
    }
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "demo", "--data-root", str(root), "--rows", "6000", "--days", "4", "--epochs", "1"],
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
