"""Nights end to end at a given raw size: generate, then ``cartwheel nightly`` night after night,
measured.

For each ``--rows`` size: generates that many raw rows over ``--days`` + ``--nights`` - 1 days
(not timed as part of a night), then runs ``cartwheel nightly`` with ``--lookback-days`` =
``--days`` for each of the last ``--nights`` days in turn, in a subprocess, sampling the resident
memory of its whole process tree (driver JVM, Python, Horovod and Spark workers), then runs the
last night again (every step skipped). The first night starts from nothing (clean reads every
day of its window, rank tunes its generators on val); a later night is the steady state (clean
reads the new day, rank takes the generator settings the first night chose: ``--retune-days``).
Writes ``bench/results/nightly-<rows>.json``: per night how train ran (full or warm-started,
and why), the wall time, rows/s (over the raw
rows of the night's window, clean's ``rows_in``, days it reused included), peak memory,
and per step the wall time, rows in/out and the peak memory while it ran (from the step
manifests' start and end), the test recall@20 of every method and the gate; the first
night's figures also stand at the top level (``night``, ``steps``), as in files written before
the bench ran more than one night. With two nights or more it also writes
``bench/results/night-steady-<rows>.json``: rows, days, the cold (first) night's wall time and
peak memory, and the steady (last) night's, per step too.

usage: python bench/nightly_bench.py [--rows 1000000 10000000] [--days 7] [--epochs 2]
                                     [--nights 2]
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


def measure_night(
    root: Path, day: dt.date, days: int, epochs: int, log: Path
) -> tuple[list[str], dict[str, Any]]:
    """Run one night for ``day`` and measure it: (its command line, its figures)."""
    args = ["nightly", "--data-root", str(root), "--run-date", day.isoformat(),
            "--lookback-days", str(days), "--epochs", str(epochs)]  # fmt: skip
    wall, code, samples = run_sampled(args, log)
    runs = root / "_runs" / day.isoformat()
    night = json.loads((runs / "nightly.json").read_text())
    steps = step_figures(runs, samples)
    evaluation = json.loads((runs / "evaluate.json").read_text())
    ranked = json.loads((runs / "rank.json").read_text()) if (runs / "rank.json").exists() else {}
    raw = steps["clean"]["rows_in"]
    return args, {
        "run_date": day.isoformat(),
        "night": {
            "status": night["status"],
            "exit_code": code,
            "wall_s": round(wall, 2),
            "peak_rss_mb": round(max((r for _, r in samples), default=0) / 2**20, 1),
            **rates(raw, wall),
        },
        "steps": steps,
        "test_recall_at_20": {
            m: per_k["20"]["recall"] for m, per_k in evaluation["metrics"].items() if "20" in per_k
        },
        "gate": evaluation.get("gate"),
        "train_examples_per_s": [
            round(e["examples"] / e["seconds"], 1)
            for e in json.loads((runs / "train.json").read_text())["epochs"]
        ],
        # where rank's generator settings came from: tuned tonight, or an earlier night's
        "rank_tuning_reused_from": (ranked.get("tuning") or {}).get("reused_from"),
        # full or warm-started training, and why (train's plan)
        "training": {
            k: v
            for k, v in (
                json.loads((runs / "train.json").read_text()).get("training") or {}
            ).items()
            if k in ("mode", "reason", "source")
        },
    }


def steady_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The issue's ``night-steady-<rows>`` figures: the first (cold) night and the last night
    of the run (the steady state: clean reads the new day, train warm-starts)."""
    cold, steady = doc["nights"][0], doc["nights"][-1]
    return {
        "rows": doc["generated_rows"],
        "days": doc["days"],
        "window_raw_rows": {"cold": doc["raw_rows"], "steady": steady["steps"]["clean"]["rows_in"]},
        "cold": night_figures(cold),
        "steady": {
            **night_figures(steady),
            "steps": {
                name: {"wall_s": s["wall_s"], "peak_rss_mb": s["peak_rss_mb"]}
                for name, s in steady["steps"].items()
            },
        },
    }


def night_figures(night: dict[str, Any]) -> dict[str, Any]:
    """One measured night's run date, status, wall time, peak RSS and how it trained."""
    return {
        "run_date": night["run_date"],
        "status": night["night"]["status"],
        "wall_s": night["night"]["wall_s"],
        "peak_rss_mb": night["night"]["peak_rss_mb"],
        "training": night["training"],
    }


def bench(rows: int, days: int, epochs: int, nights: int, work: Path) -> dict[str, Any]:
    root = work / f"night-{rows}"
    shutil.rmtree(root, ignore_errors=True)
    last = dt.date.fromisoformat(RUN_DATE)
    gen = run_measured(
        ["generate", "--data-root", str(root), "--end-date", RUN_DATE, "--rows", str(rows),
         "--days", str(days + nights - 1)],
        work / f"generate-{rows}.log",
    )  # fmt: skip
    measured = []
    for n in range(nights):
        day = last - dt.timedelta(days=nights - 1 - n)
        args, figures = measure_night(root, day, days, epochs, work / f"nightly-{rows}-{day}.log")
        measured.append(figures)  # a failed night (a gate, say) does not stop the next
    again_wall, again_code, _ = run_sampled(args, work / f"nightly-again-{rows}.log")
    again = json.loads((root / "_runs" / measured[-1]["run_date"] / "nightly.json").read_text())
    first = measured[0]
    return {
        "raw_rows": first["steps"]["clean"]["rows_in"],  # the first night's window
        "generated_rows": json.loads((root / "_runs" / RUN_DATE / "generate.json").read_text())[
            "raw_rows"
        ],
        "days": days,
        "epochs": epochs,
        "generate": gen,
        "night": first["night"],
        "steps": first["steps"],
        "nights": measured,
        "rerun_all_skipped": {
            "run_date": measured[-1]["run_date"],
            "exit_code": again_code,
            "wall_s": round(again_wall, 2),
            "statuses": sorted({s["status"] for s in again["steps"].values()}),
        },
        "test_recall_at_20": first["test_recall_at_20"],
        "gate": first["gate"],
        "train_examples_per_s": first["train_examples_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nights", type=int, default=2, help="consecutive nights to run")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cartwheel-nightly-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        doc = bench(rows, args.days, args.epochs, args.nights, work)
        path = write_result(f"nightly-{rows}", doc)
        print(f"[nightly-bench] {rows:,} rows -> {path}")
        if len(doc["nights"]) > 1:
            steady = write_result(f"night-steady-{rows}", steady_summary(doc))
            print(f"[nightly-bench] cold and steady-state nights -> {steady}")
        for n in doc["nights"]:
            print(f"  night {n['run_date']}: {n['night']['status']} in {n['night']['wall_s']:.0f}s, "
                  f"peak {n['night']['peak_rss_mb']:.0f} MB")  # fmt: skip
            for name, s in n["steps"].items():
                print(
                    f"    {name:<9}{s['status']:<10}{s['wall_s']:>8.1f}s  "
                    f"peak {s['peak_rss_mb']:>7.0f} MB"
                )
        if not args.keep:
            shutil.rmtree(work / f"night-{rows}", ignore_errors=True)


if __name__ == "__main__":
    main()
