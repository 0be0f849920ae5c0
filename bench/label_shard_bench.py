"""Label + shard benchmark at given raw sizes (default 1M and 10M raw rows).

Prepares the input with ``generate`` + ``clean`` (not timed), then times ``label`` and ``shard``
as separate ``cartwheel`` processes. ``bench/results/label-shard-<rows>.json`` records wall
time, events/s and events/s per core, peak resident memory of the process tree, examples per
split and the shard files' size balance (max/min rows per file).

usage: python bench/label_shard_bench.py [--rows 1000000 10000000] [--days 7] [--work-dir DIR] [--keep]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cleaned_root, rates, run_measured, scale_args, write_result

END = "2026-11-21"


def bench_one(rows: int, days: int, work: Path, keep: bool) -> dict:
    logs = work / "logs"
    kept = work / f"ingest-{rows}"  # left by `ingest_bench.py --keep` with the same --days
    kept_clean = kept / "_runs" / END / "clean.json"
    if kept_clean.exists() and len(json.loads(kept_clean.read_text())["days"]) == days:
        root = kept
    else:
        root = work / f"label-{rows}"
    cleaned_root(root, rows, days, END, logs)
    lab = run_measured(
        ["label", "--data-root", str(root), "--run-date", END, "--lookback-days", str(days)],
        logs / f"label-{rows}.log",
    )
    shd = run_measured(
        ["shard", "--data-root", str(root), "--run-date", END, "--workers", "2"],
        logs / f"shard-{rows}.log",
    )
    lm = json.loads((root / "_runs" / END / "label.json").read_text())
    sm = json.loads((root / "_runs" / END / "shard.json").read_text())
    result = {
        "raw_rows_target": rows,
        "days": days,
        "clean_events": lm["rows_in"],
        "examples": lm["examples"],
        "history_length": lm["history_length"],
        "label": {
            **lab,
            **rates(lm["rows_in"], lab["wall_s"]),
            "unit": "clean events",
            "step_duration_s": lm["duration_s"],
            "rows_filtered": lm["rows_filtered"],
            "rows_consumed": lm["rows_consumed"],
        },
        "shard": {
            **shd,
            **rates(sm["rows_in"], shd["wall_s"]),
            "unit": "examples",
            "step_duration_s": sm["duration_s"],
            "splits": sm["splits"],
        },
        "shard_balance_max_over_min": {
            s: info["balance_ratio"] for s, info in sm["splits"].items()
        },
        "conserved": lm["rows_in"]
        == lm["rows_out"] + sum(lm["rows_filtered"].values()) + sum(lm["rows_consumed"].values())
        and sm["rows_in"] == sm["rows_out"],
    }
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> int:
    args = scale_args(__doc__ or "", "keep the generated data for later runs")
    ok = True
    for rows in args.rows:
        print(f"label + shard benchmark: {rows:,} raw rows over {args.days} days ...", flush=True)
        r = bench_one(rows, args.days, args.work_dir, args.keep)
        path = write_result(f"label-shard-{rows}", r)
        for step in ("label", "shard"):
            s = r[step]
            print(
                f"  {step:<6} {s['wall_s']:8.1f}s {s['rows_per_s']:>12,.0f} {s['unit']}/s "
                f"({s['rows_per_s_per_core']:,.0f}/core) peak {s['peak_rss_mb']:,.0f} MB",
                flush=True,
            )
        print(
            f"  examples {r['examples']}; shard balance {r['shard_balance_max_over_min']}; conserved {r['conserved']} -> {path}"
        )
        ok = ok and r["conserved"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
