"""One night end to end at a given raw size: generate, then ``cartwheel nightly``, measured.

For each ``--rows`` size: generates that many raw rows over ``--days`` days (not timed as part of
the night), runs ``cartwheel nightly`` for the last day with ``--lookback-days`` = ``--days`` in a
subprocess, sampling the resident memory of its whole process tree (driver JVM, Python, Horovod
and Spark workers), then runs the same night again (every step skipped). Writes
``bench/results/nightly-<rows>.json``: wall time, rows/s, peak memory, and per step the wall
time, rows in/out and the peak memory while it ran (from the step manifests' start and end).

usage: python bench/nightly_bench.py [--rows 1000000 10000000] [--days 7] [--epochs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import rates, run_measured, run_sampled, write_result

RUN_DATE = "2026-11-21"


def step_figures(runs: Path, samples: list[tuple[float, int]]) -> dict[str, Any]:
    """Per step: wall time, rows and the peak tree RSS between its manifest's start and end."""
    night = json.loads((runs / "nightly.json").read_text())
    out: dict[str, Any] = {}
    for name, s in night["steps"].items():
        path = runs / f"{name}.json"
        m = json.loads(path.read_text()) if path.exists() else {}
        start = dt.datetime.fromisoformat(m["started_at"]).timestamp() if m else 0
        end = dt.datetime.fromisoformat(m["finished_at"]).timestamp() + 1 if m else 0
        peak = max((rss for t, rss in samples if start <= t <= end), default=0)
        out[name] = {
            "status": s["status"],
            "wall_s": s["duration_s"],
            "rows_in": s["rows_in"],
            "rows_out": s["rows_out"],
            "rows_quarantined": s["rows_quarantined"],
            "rows_filtered": s["rows_filtered"],
            "peak_rss_mb": round(peak / 2**20, 1),
        }
    return out


def bench(rows: int, days: int, epochs: int, work: Path) -> dict[str, Any]:
    root = work / f"night-{rows}"
    shutil.rmtree(root, ignore_errors=True)
    gen = run_measured(
        ["generate", "--data-root", str(root), "--end-date", RUN_DATE, "--rows", str(rows),
         "--days", str(days)],
        work / f"generate-{rows}.log",
    )  # fmt: skip
    args = ["nightly", "--data-root", str(root), "--run-date", RUN_DATE,
            "--lookback-days", str(days), "--epochs", str(epochs)]  # fmt: skip
    wall, code, samples = run_sampled(args, work / f"nightly-{rows}.log")
    runs = root / "_runs" / RUN_DATE
    steps = step_figures(runs, samples)
    night = json.loads((runs / "nightly.json").read_text())
    again_wall, again_code, _ = run_sampled(args, work / f"nightly-again-{rows}.log")
    again = json.loads((runs / "nightly.json").read_text())
    evaluation = json.loads((runs / "evaluate.json").read_text())
    raw = steps["clean"]["rows_in"]
    return {
        "raw_rows": raw,
        "days": days,
        "epochs": epochs,
        "generate": gen,
        "night": {
            "status": night["status"],
            "exit_code": code,
            "wall_s": round(wall, 2),
            "peak_rss_mb": round(max((r for _, r in samples), default=0) / 2**20, 1),
            **rates(raw, wall),
        },
        "steps": steps,
        "rerun_all_skipped": {
            "exit_code": again_code,
            "wall_s": round(again_wall, 2),
            "statuses": sorted({s["status"] for s in again["steps"].values()}),
        },
        "test_recall_at_20": {
            m: per_k["20"]["recall"] for m, per_k in evaluation["metrics"].items() if "20" in per_k
        },
        "gate": evaluation.get("gate"),
        "train_examples_per_s": [
            round(e["examples"] / e["seconds"], 1)
            for e in json.loads((runs / "train.json").read_text())["epochs"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cartwheel-nightly-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        doc = bench(rows, args.days, args.epochs, work)
        path = write_result(f"nightly-{rows}", doc)
        print(f"[nightly-bench] {rows:,} rows: night {doc['night']['status']} in "
              f"{doc['night']['wall_s']:.0f}s, peak {doc['night']['peak_rss_mb']:.0f} MB -> {path}")  # fmt: skip
        for name, s in doc["steps"].items():
            print(
                f"  {name:<9}{s['status']:<10}{s['wall_s']:>8.1f}s  peak {s['peak_rss_mb']:>7.0f} MB"
            )
        if not args.keep:
            shutil.rmtree(work / f"night-{rows}", ignore_errors=True)


if __name__ == "__main__":
    main()
