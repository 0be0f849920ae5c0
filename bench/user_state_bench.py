"""Score's histories from the window against the per-user history state, at scale.

Prepares a generated, cleaned log (``generate`` + ``clean``, not timed; ``--days`` + 1 days so
the night before the run date has a full window too), then, in one Spark session, times four
ways to the same thing, each written to Parquet:

* ``inputs_from_window``: ``recs.scoring_inputs`` over the window's events (what score did
  before the state: one sort of every event of the window by user and time);
* ``state_rebuilt``: ``user_state.rebuild`` of the run date's state from the window (a first
  night, or a fallback);
* ``state_advanced``: ``user_state.advance`` of the day before's state by the new day (a
  steady night; the day before's state is built first, not timed);
* ``inputs_from_state``: ``recs.scoring_inputs_from_state`` over the advanced state.

A steady night pays ``state_advanced + inputs_from_state`` where it paid ``inputs_from_window``.
Before the times count, the advanced state is checked equal to the rebuilt one (``exceptAll``
both ways), and the two scoring inputs are compared: ``inputs_rows_differing`` counts rows on
one side only (the state's window is one of event times; users whose only events are late
ones from before the window, or clock-skewed ones, can differ). Writes
``bench/results/user-state-<rows>.json``: wall seconds per phase, events in the window and
in the new day, users, peak RSS of the process tree.

usage: python bench/user_state_bench.py [--rows 10000000] [--days 30] [--work-dir DIR] [--keep]
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PeakMemory, cleaned_root, scale_args, write_result

END = "2026-11-21"
LENGTH = 50


def timed(name: str, action: Any, figures: dict[str, Any]) -> None:
    start = time.monotonic()
    action()
    figures[name] = round(time.monotonic() - start, 2)
    print(f"[user-state] {name}: {figures[name]} s", flush=True)


def bench_one(rows: int, days: int, work: Path) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from jobs.runtime.readers import read_clean_events
    from jobs.runtime.session import get_spark
    from jobs.runtime.storage import Storage
    from pipelines import recs as R
    from pipelines import schemas as S
    from pipelines import user_state as U
    from pipelines.frames import dense_index

    root = cleaned_root(work / f"user-state-{rows}", rows, days + 1, END, work / "logs")
    out = work / f"user-state-{rows}-out"
    shutil.rmtree(out, ignore_errors=True)
    spark = get_spark("user-state-bench")
    storage = Storage(spark)
    day = dt.date.fromisoformat(END)
    yesterday = day - dt.timedelta(days=1)

    def clean(days_: list[dt.date]) -> Any:
        return read_clean_events(spark, storage, str(root), days_)

    window_days = [day - dt.timedelta(days=n) for n in range(days)][::-1]
    window = clean(window_days)
    cutoff = day + dt.timedelta(days=1)
    index_path = str(out / "item_index")
    dense_index(
        window.where(F.col("item_id").isNotNull()).select("item_id").distinct(),
        "item_idx", group=F.lit(0), order=[F.col("item_id")], start=2,
    ).write.parquet(index_path)  # fmt: skip
    index = spark.read.parquet(index_path)

    # yesterday's state, as last night left it (not timed)
    U.rebuild(clean(U.rebuild_partitions(yesterday, days)), yesterday, days, LENGTH).write.parquet(
        str(out / "state-yesterday")
    )
    previous = spark.read.schema(S.USER_HISTORY.schema).parquet(str(out / "state-yesterday"))

    figures: dict[str, Any] = {}
    with PeakMemory() as peak:
        timed(
            "inputs_from_window",
            lambda: R.scoring_inputs(window, index, cutoff, LENGTH, "purchased").write.parquet(
                str(out / "inputs-window")
            ),
            figures,
        )
        timed(
            "state_rebuilt",
            lambda: U.rebuild(
                clean(U.rebuild_partitions(day, days)), day, days, LENGTH
            ).write.parquet(str(out / "state-rebuilt")),
            figures,
        )
        new_day = clean(U.advance_partitions(day))
        timed(
            "state_advanced",
            lambda: U.advance(previous, new_day, day, days, LENGTH).write.parquet(
                str(out / "state-advanced")
            ),
            figures,
        )
        state = spark.read.schema(S.USER_HISTORY.schema).parquet(str(out / "state-advanced"))
        timed(
            "inputs_from_state",
            lambda: R.scoring_inputs_from_state(
                state, window, index, cutoff, LENGTH, "purchased"
            ).write.parquet(str(out / "inputs-state")),
            figures,
        )
    rebuilt = spark.read.parquet(str(out / "state-rebuilt"))
    differ = rebuilt.exceptAll(state).count() + state.exceptAll(rebuilt).count()
    if differ:
        raise SystemExit(f"the advanced state differs from the rebuilt one in {differ} rows")
    from_window = spark.read.parquet(str(out / "inputs-window"))
    from_state = spark.read.parquet(str(out / "inputs-state"))
    inputs_differ = (
        from_window.exceptAll(from_state).count() + from_state.exceptAll(from_window).count()
    )
    doc = {
        "rows": rows,
        "days": days,
        "history_length": LENGTH,
        "window_events": window.count(),
        "new_day_events": new_day.where(F.col("dt") == F.lit(day)).count(),
        "users": state.count(),
        "states_equal": True,
        "inputs_rows": from_state.count(),
        "inputs_rows_differing": inputs_differ,
        "wall_s": figures,
        "steady_over_window": round(
            (figures["state_advanced"] + figures["inputs_from_state"])
            / figures["inputs_from_window"],
            3,
        ),
        "peak_rss_mb": round(peak.peak / 2**20, 1),
    }
    spark.stop()
    return doc


def main() -> None:
    args = scale_args(__doc__ or "", "keep the generated data root")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        doc = bench_one(rows, args.days, args.work_dir)
        path = write_result(f"user-state-{rows}", doc)
        print(f"[user-state] {rows:,} rows: {doc['wall_s']} -> {path}", flush=True)
        if not args.keep:
            shutil.rmtree(args.work_dir / f"user-state-{rows}", ignore_errors=True)
            shutil.rmtree(args.work_dir / f"user-state-{rows}-out", ignore_errors=True)


if __name__ == "__main__":
    main()
