"""bench/gpu_check.sh's CPU fallback runs to the end: the two-tower's training steps and scoring
in float32 and bf16, and an all-reduce over Gloo in two processes, with the sum checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_the_gpu_check_runs_its_cpu_fallback_to_the_end(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu-cpu.json").read_text())
    assert result["device"] == "cpu" and result["errors"] == {}
    for precision, dtype in (("off", "torch.float32"), ("bf16", "torch.bfloat16")):
        train, score = result["train"][precision], result["score"][precision]
        assert train["dtype"] == score["dtype"] == dtype
        assert train["examples_per_s"] > 0 and train["losses_finite"]
        assert score["users_per_s"] > 0 and score["items"] == result["sizes"]["items"]
    weights = result["score"]["bf16_weights"]  # what score --precision bfloat16 runs
    assert weights["dtype"] == "torch.bfloat16" and weights["users_per_s"] > 0
    reduced = result["collective"]
    assert (reduced["backend"], reduced["processes"], reduced["sum_ok"]) == ("gloo", 2, True)
    assert reduced["bus_gb_per_s"] > 0
