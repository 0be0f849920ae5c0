"""Where clean spends its time: the pipeline's prefixes, each run to Spark's no-op sink.

On a data root with raw events (e.g. the one ``vs_duckdb.py`` or ``ingest_bench.py`` made),
one Spark session runs ever longer prefixes of ``pipelines/clean.py`` (read the lines; parse
them; give the record reasons; shuffle by user-day; the duplicate rules; the bot rule; the
sessions; the PII scrub, catalog join and output columns) and times each, writing every row of
the prefix to the ``noop`` format, so nothing but the computation is timed. Each prefix
recomputes everything before it; the difference between two prefixes is what the later part
costs. The first prefix also pays the JVM's warm-up, so the whole pipeline is timed once more
at the end, warm. Then, on the same session, what the step does after the pipeline: persist
and count the dispositions (the step's first action), the quality figures, and the two writes.

usage: python bench/clean_profile.py --root DATA_ROOT [--run-date 2026-11-21] [--days 7]
writes bench/results/clean-profile-<raw rows>.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, required=True, help="a data root with raw events")
    p.add_argument("--run-date", type=dt.date.fromisoformat, default=dt.date(2026, 11, 21))
    p.add_argument("--days", type=int, default=7)
    a = p.parse_args(argv)

    from pyspark import StorageLevel
    from pyspark.sql import DataFrame

    from bench.common import write_result
    from jobs.runtime.readers import date_window, discover_raw_events, read_catalog, read_raw_lines
    from jobs.runtime.session import get_spark, shuffle_sized_for
    from jobs.runtime.storage import Storage
    from pipelines import clean as C

    spark = get_spark("cartwheel-clean-profile")
    storage = Storage(spark)
    raw = discover_raw_events(
        storage, str(a.root), date_window(a.run_date, a.days), allow_missing_days=False
    )
    catalog = read_catalog(spark, storage, str(a.root))
    rules = C.CleanRules()
    timings: dict[str, float] = {}

    def timed(name: str, action: Callable[[], Any]) -> None:
        start = time.monotonic()
        action()
        timings[name] = round(time.monotonic() - start, 2)
        print(f"  {name:48s} {timings[name]:7.1f} s", flush=True)

    def noop(frame: DataFrame) -> Callable[[], None]:
        return lambda: frame.write.format("noop").mode("overwrite").save()

    out = Path(tempfile.mkdtemp(prefix="clean-profile-"))
    try:
        with shuffle_sized_for(spark, raw.bytes, "clean"):
            lines = read_raw_lines(spark, raw)
            prefixes = {"1 read lines (first run: JVM warm-up)": lines}
            frame = lines
            for n, (name, step) in enumerate(C.stages(catalog, rules), start=2):
                frame = frame.transform(step)
                prefixes[f"{n} + {name}"] = frame
            labeled = C.compact_labeled(frame)
            prefixes[f"{len(prefixes) + 1} + output columns"] = labeled
            for name, prefix in prefixes.items():
                timed(name, noop(prefix))
            timed(f"{len(prefixes) + 1} the whole pipeline again, warm", noop(labeled))
            cached = labeled.persist(StorageLevel.MEMORY_AND_DISK)
            timed("persist + disposition counts", lambda: C.disposition_counts(cached).collect())
            timed("quality figures", lambda: C.quality_by_day(cached).collect())
            timed(
                "write clean events",
                lambda: C.clean_events(cached).write.partitionBy("dt").parquet(str(out / "c")),
            )
            timed(
                "write quarantine",
                lambda: (
                    C.quarantined_events(cached).write.partitionBy("dt").parquet(str(out / "q"))
                ),
            )
            rows = cached.count()
            cached.unpersist()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    path = write_result(
        f"clean-profile-{rows}",
        {
            "root": str(a.root),
            "run_date": a.run_date.isoformat(),
            "days": a.days,
            "raw_rows": rows,
            "raw_bytes": raw.bytes,
            "seconds": timings,
            "note": "each prefix recomputes all before it (noop sink); differences are the "
            "later part's cost; one Spark session, so prefix 1 includes the JVM's warm-up",
        },
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
