"""The rules evaluate applies to a metrics table: the quality gate and the champion tolerance."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from jobs import evaluate, models
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit

END = dt.date(2026, 11, 21)
MODEL = models.ResolvedModel("u", "m", "3", "r", None, np.zeros((1, 1)), np.array([""]))  # type: ignore[arg-type]


def table(model: float, popularity: float, champion: float) -> dict:
    return {
        "model": {"20": {"recall": model}},
        "popularity": {"20": {"recall": popularity}},
        "champion": {"20": {"recall": champion}},
    }


def test_quality_gate_needs_the_ratio_times_the_baseline() -> None:
    config = evaluate.EvaluateConfig(data_root="/x", run_date=END, gate_min_ratio=1.2)
    passed = evaluate.quality_gate(config, table(0.30, 0.25, 0.0))
    assert passed["passed"] and "0.3000 >= 1.2 x popularity 0.2500" in passed["reason"]
    failed = evaluate.quality_gate(config, table(0.29, 0.25, 0.0))
    assert not failed["passed"] and "0.2900 < 1.2 x popularity" in failed["reason"]
    off = evaluate.EvaluateConfig(data_root="/x", run_date=END, gate_min_ratio=0)
    assert evaluate.quality_gate(off, table(0.0, 0.25, 0.0))["passed"]


def test_champion_tolerance_lets_a_near_tie_take_over() -> None:
    strict = evaluate.EvaluateConfig(data_root="/x", run_date=END)
    tolerant = evaluate.EvaluateConfig(data_root="/x", run_date=END, champion_tolerance=0.05)
    near = table(0.300, 0.1, 0.310)  # 3% below the champion
    assert not evaluate.promotion(strict, near, MODEL, "2")["promote"]
    decision = evaluate.promotion(tolerant, near, MODEL, "2")
    assert decision["promote"] and "within 5%" in decision["reason"]
    far = table(0.290, 0.1, 0.310)  # 6.5% below
    kept = evaluate.promotion(tolerant, far, MODEL, "2")
    assert not kept["promote"] and "v2 keeps serving" in kept["reason"]


def test_gate_and_tolerance_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"champion_tolerance=1\.0"):
        evaluate.EvaluateConfig(data_root="/x", run_date=END, champion_tolerance=1.0)
    with pytest.raises(ConfigError, match="gate_baseline='als'"):
        evaluate.EvaluateConfig(
            data_root="/x", run_date=END, baselines=("popularity",), gate_baseline="als"
        )
