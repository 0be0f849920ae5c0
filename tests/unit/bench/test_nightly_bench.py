"""bench/nightly_bench.py's steady-state summary: the first night is the cold one, the last the
steady state, in the figures issue 13 asks for."""

from __future__ import annotations

from typing import Any

import pytest

from bench.nightly_bench import steady_summary

pytestmark = pytest.mark.unit


def night(day: str, wall: float, mode: str, clean_rows: int) -> dict[str, Any]:
    steps = {
        "clean": {"wall_s": wall / 4, "peak_rss_mb": 900.0, "rows_in": clean_rows},
        "train": {"wall_s": wall / 2, "peak_rss_mb": 2000.0 + wall, "rows_in": 10},
    }
    return {
        "run_date": day,
        "night": {"status": "succeeded", "wall_s": wall, "peak_rss_mb": 2500.0 + wall},
        "steps": steps,
        "training": {"mode": mode, "reason": f"{mode} for the test"},
    }


def test_the_first_night_is_cold_and_the_last_is_the_steady_state() -> None:
    doc = {
        "generated_rows": 1_000_123, "days": 7, "raw_rows": 875_000,
        "nights": [night("2026-11-20", 600.0, "full", 875_000), night("2026-11-21", 250.0, "warm", 876_000),
                   night("2026-11-22", 200.0, "warm", 874_000)],
    }  # fmt: skip
    got = steady_summary(doc)
    assert got["rows"] == 1_000_123 and got["days"] == 7
    assert got["window_raw_rows"] == {"cold": 875_000, "steady": 874_000}
    assert got["cold"]["run_date"] == "2026-11-20" and got["cold"]["wall_s"] == 600.0
    assert got["cold"]["peak_rss_mb"] == 3100.0 and got["cold"]["training"]["mode"] == "full"
    steady = got["steady"]
    assert steady["run_date"] == "2026-11-22" and steady["wall_s"] == 200.0
    assert steady["training"]["mode"] == "warm" and steady["peak_rss_mb"] == 2700.0
    assert steady["steps"] == {
        "clean": {"wall_s": 50.0, "peak_rss_mb": 900.0},
        "train": {"wall_s": 100.0, "peak_rss_mb": 2200.0},
    }
