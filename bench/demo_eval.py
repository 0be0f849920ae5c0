"""`cartwheel demo` with its defaults, measured, keeping the evaluation table it prints.

Runs the demo (200k generated rows over 7 days: generate, clean, label, shard, train, rank,
score, evaluate, publish) in a subprocess and writes ``bench/results/eval-demo.json``: wall
time, peak memory, every step's duration, the training epochs and the evaluate step's metrics
for every method.

usage: python bench/demo_eval.py [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_measured, write_result

RUN_DATE = "2026-11-21"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cartwheel-demo-eval-"))
    root = work / "demo"
    measured = run_measured(["demo", "--data-root", str(root)], work / "demo.log")
    runs = root / "_runs" / RUN_DATE
    steps = {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}
    evaluation, train = steps["evaluate"], steps["train"]
    doc = {
        "demo": measured,
        "step_duration_s": {name: m["duration_s"] for name, m in steps.items()},
        "train_epochs": train["epochs"],
        "best_epoch": train["best_epoch"],
        "test_users": evaluation["rows_in"],
        "cold_users": evaluation["cold_users"],
        "labels": evaluation["labels"],
        "metrics": evaluation["metrics"],
    }
    path = write_result("eval-demo", doc)
    for method, per_k in evaluation["metrics"].items():
        print(
            f"{method:<20}" + "".join(f"  recall@{k} {v['recall']:.4f}" for k, v in per_k.items())
        )
    print(f"[demo-eval] -> {path}")


if __name__ == "__main__":
    main()
