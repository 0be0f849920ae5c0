"""The whole pipeline on a real dataset, ending in the evaluation table (every method at K 10/20/50).

UCI Online Retail (``../shared/data/online-retail``, 2010-12-01 .. 2011-12-09): ingest, clean
(bot-minute rule off: invoices are bursts by nature), label with a 14-day test and 14-day val
period, shard, train with 2 Horovod workers, evaluate against the Spark baselines. Each step runs
as ``cartwheel <step>`` in a subprocess, measured (wall time, peak memory);
``bench/results/eval-online-retail.json`` keeps the metrics table, the step timings and the
evaluation's user counts.

usage: python bench/real_eval.py [--work-dir DIR] [--epochs 8] [--exclude purchased]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_measured, write_result
from bench.quality import DATASETS, commands

RUN_DATE = "2011-12-09"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--exclude", default="purchased")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cartwheel-real-eval-"))
    root = str(work / "online-retail")
    # the same ingest .. train as bench/quality.py; evaluate at the baselines' defaults
    steps = commands(DATASETS["online-retail"], root, args.epochs, ranker=False)
    steps["evaluate"] = ["evaluate", "--data-root", root, "--run-date", RUN_DATE,
                         "--no-tune-baselines", "--exclude", args.exclude]  # fmt: skip
    timings = {}
    for name, argv in steps.items():
        print(f"[real-eval] {name}", flush=True)
        timings[name] = run_measured(argv, work / "logs" / f"{name}.log")
    metrics = json.loads(Path(root, "reports", f"dt={RUN_DATE}", "metrics.json").read_text())
    doc = {
        "dataset": "UCI Online Retail",
        "run_date": RUN_DATE,
        "exclude": args.exclude,
        "steps": timings,
        "users": metrics["users"],
        "cold_users": metrics["cold_users"],
        "relevant_pairs": metrics["relevant_pairs"],
        "unreachable_pairs": metrics["unreachable_pairs"],
        "candidate_items": metrics["candidate_items"],
        "metrics": metrics["metrics"],
        "labels": metrics["labels"],
        "report_md": Path(root, "reports", f"dt={RUN_DATE}", "report.md").read_text(),
    }
    path = write_result("eval-online-retail", doc)
    print(doc["report_md"])
    print(f"[real-eval] -> {path}")


if __name__ == "__main__":
    main()
