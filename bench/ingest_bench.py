"""Ingest benchmark: generate + clean at given sizes (default 1M and 10M raw rows).

Each step runs as its own ``cartwheel`` process (a fresh local Spark on all cores); the result
file ``bench/results/ingest-<rows>.json`` records wall time, rows/s, rows/s per core and the
peak resident memory of the process tree, plus the clean step's reconciliation against the
generator's ledger (a benchmark that got the wrong answer fast is not a result).

usage: python bench/ingest_bench.py [--rows 1000000 10000000] [--days 7] [--work-dir DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import rates, run_measured, scale_args, write_result

END = "2026-11-21"


def measured_generate(root: Path, rows: int, days: int, logs: Path) -> tuple[dict, dict]:
    """``cartwheel generate`` of ``rows`` raw rows into a fresh ``root``, measured: (wall time,
    peak RSS and rates; the step's manifest)."""
    shutil.rmtree(root, ignore_errors=True)
    args = ["generate", "--data-root", str(root), "--end-date", END, "--days", str(days)]
    gen = run_measured([*args, "--rows", str(rows), "--seed", "1"], logs / f"generate-{rows}.log")
    g = json.loads((root / "_runs" / END / "generate.json").read_text())
    return {**gen, **rates(g["raw_rows"], gen["wall_s"]), "step_duration_s": g["duration_s"]}, g


def bench_one(rows: int, days: int, work: Path, keep: bool = False) -> dict:
    root = work / f"ingest-{rows}"
    gen, g = measured_generate(root, rows, days, work / "logs")
    cln = run_measured(
        ["clean", "--data-root", str(root), "--run-date", END, "--days", str(days)],
        work / "logs" / f"clean-{rows}.log",
    )
    c = json.loads((root / "_runs" / END / "clean.json").read_text())
    found = {
        **c["rows_quarantined_by_reason"],
        **c["rows_filtered"],
        "unknown_item": c["quality"]["unknown_items"],
        "pii_query": c["quality"]["pii_scrubbed"],
    }
    mismatches = {k: (v, found.get(k)) for k, v in g["injected"].items() if found.get(k) != v}
    raw_rows = g["raw_rows"]
    result = {
        "rows_target": rows,
        "raw_rows": raw_rows,
        "days": days,
        "raw_bytes": c["input_bytes"],
        "generate": gen,
        "clean": {
            **cln,
            **rates(raw_rows, cln["wall_s"]),
            "step_duration_s": c["duration_s"],
            "rows_out": c["rows_out"],
            "rows_quarantined": c["rows_quarantined"],
            "rows_filtered": sum(c["rows_filtered"].values()),
        },
        "total_wall_s": round(gen["wall_s"] + cln["wall_s"], 2),
        "reconciled": not mismatches and c["quality"]["sessions"] == g["sessions"],
        "mismatches": mismatches,
    }
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> int:
    args = scale_args(__doc__ or "", "keep the data (label_shard_bench.py reuses it)")
    ok = True
    for rows in args.rows:
        print(f"ingest benchmark: {rows:,} rows over {args.days} days ...", flush=True)
        result = bench_one(rows, args.days, args.work_dir, args.keep)
        path = write_result(f"ingest-{rows}", result)
        g, c = result["generate"], result["clean"]
        print(
            f"  generate {g['wall_s']:8.1f}s {g['rows_per_s']:>12,.0f} rows/s ({g['rows_per_s_per_core']:,.0f}/core) peak {g['peak_rss_mb']:,.0f} MB\n"
            f"  clean    {c['wall_s']:8.1f}s {c['rows_per_s']:>12,.0f} rows/s ({c['rows_per_s_per_core']:,.0f}/core) peak {c['peak_rss_mb']:,.0f} MB\n"
            f"  reconciled with the generator's ledger: {result['reconciled']}  -> {path}",
            flush=True,
        )
        ok = ok and result["reconciled"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
