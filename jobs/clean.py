"""cartwheel clean: raw logs for a date window -> clean events, quarantine, data-quality report.

Reads ``raw/events/dt=...`` for ``--days`` days ending at ``--run-date`` (JSON lines or CSV,
gzip or not) with an explicit all-string schema and the catalog; writes
``clean/events/dt=.../`` and ``quarantine/events/dt=.../`` (Parquet), replacing exactly those
days, ``reports/dt=<run-date>/clean_quality.json`` and ``_runs/<run-date>/clean.json``.
Every raw line is kept, quarantined or filtered with a reason, and the manifest counts each.

With ``--incremental`` a day is skipped when its clean partition was made from the same raw
files (names, sizes, modification times) under the same rules: each published clean partition
carries a ``_cleaned.json`` marker recording both. The nightly run cleans this way, so only new
or changed days are read.

Why this entry point is longer than the others: incremental cleaning (markers, reuse,
reconciliation against the generator's ledger) is I/O, so it lives here and not in
``pipelines/clean.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout
from jobs.runtime.config import AtLeast1, DatedStepConfig, opt, step_config
from jobs.runtime.fingerprint import digest, files_digest
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import (
    RawInput,
    date_window,
    discover_raw_events,
    first_unreadable_gzip,
    naming_bad_files,
    partition_name,
    read_catalog,
    read_raw_lines,
)
from jobs.runtime.session import shuffle_sized_for
from jobs.runtime.step import format_counts, run_cli, staging_area
from jobs.runtime.storage import FileInfo, Storage, join
from pipelines import clean as C
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")
ROWS_PER_FILE = 2_000_000
MARKER = "_cleaned.json"  # in each clean partition: what it was made from


@step_config
class CleanConfig(DatedStepConfig, C.CleanRules):
    """Flags of ``cartwheel clean``: the window, and the cleaning rules."""

    days: AtLeast1 = opt(default=1, help="number of days ending at --run-date to clean")
    allow_missing_days: bool = opt(
        default=False, help="skip days of the window that have no raw data instead of failing"
    )
    incremental: bool = opt(
        default=False,
        help="skip days already cleaned from the same raw files under the same rules "
        "(their clean partition's _cleaned.json says so)",
    )

    def rules_digest(self) -> str:
        """Digest of the cleaning rules (not the window): a change re-cleans every day."""
        return digest({f.name: getattr(self, f.name) for f in dataclasses.fields(C.CleanRules)})

    def validate(self) -> None:
        DatedStepConfig.validate(self)
        C.CleanRules.validate(self)


def _write_partitioned(df: DataFrame, path: str, rows_per_day: dict[dt.date, int]) -> None:
    """Write by ``dt`` with about ROWS_PER_FILE rows per file, sorted for locality."""
    files_per_day = max(1, math.ceil(max(rows_per_day.values(), default=0) / ROWS_PER_FILE))
    # One task per (day, bucket) would mean thousands of tasks for a dataset of thousands of days;
    # hash (dt, bucket) onto at most the shuffle-partition count: each task then writes several
    # days in turn (sorted by dt), and a day's bucket still lands in exactly one file.
    shuffle = int(df.sparkSession.conf.get("spark.sql.shuffle.partitions") or 200)
    partitions = max(1, min(len(rows_per_day) * files_per_day, max(shuffle, files_per_day)))
    bucket = F.pmod(
        F.xxhash64(F.col("user_id") if "user_id" in df.columns else F.col("raw_record")),
        F.lit(files_per_day),
    )
    (
        df.repartition(partitions, F.col("dt"), bucket)
        .sortWithinPartitions(*[c for c in ("dt", "user_id", "event_time") if c in df.columns])
        .write.partitionBy("dt")
        .parquet(path)
    )


def _summarise_dispositions(
    rows: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """(per day: disposition -> rows, per file: lines and the OR of their present fields)."""
    per_day: dict[str, dict[str, int]] = {}
    per_file: dict[str, dict[str, int]] = {}
    for r in rows:
        day = per_day.setdefault(r["dt"].isoformat(), {})
        day[r["disposition"]] = day.get(r["disposition"], 0) + r["rows"]
        f = per_file.setdefault(r["source_file"], {"lines": 0, "present": 0})
        f["lines"] += r["rows"]
        f["present"] |= int(r["present"] or 0)
    return per_day, per_file


def _quality_report(
    per_day: dict[str, dict[str, int]], quality_rows: list[dict[str, Any]], config: CleanConfig
) -> dict[str, Any]:
    """The data-quality report: counts by reason, by event type, null rates, per day."""
    totals: dict[str, int] = {}
    for counts in per_day.values():
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    kept = totals.get(C.KEPT, 0)
    days: dict[str, Any] = {}
    sums: dict[str, int] = {}
    for q in sorted(quality_rows, key=lambda r: r["dt"]):
        day = q["dt"].isoformat()
        figures = {k: int(v) for k, v in q.items() if k != "dt"}
        days[day] = {"dispositions": per_day.get(day, {}), **figures}
        for k, v in figures.items():
            sums[k] = sums.get(k, 0) + v
    for day, counts in per_day.items():
        days.setdefault(day, {"dispositions": counts, "rows": 0})
    null_rates = {
        k[len("null_") :]: round(v / kept, 6) if kept else 0.0
        for k, v in sums.items()
        if k.startswith("null_")
    }
    return {
        "run_date": config.run_date.isoformat(),
        "days": sorted(days),
        "rows_in": sum(totals.values()),
        "rows_kept": kept,
        "quarantined_by_reason": {r: totals.get(r, 0) for r in C.QUARANTINE_REASONS},
        "filtered_by_reason": {r: totals.get(r, 0) for r in C.FILTER_REASONS},
        "kept_by_event_type": {
            k[len("type_") :]: v for k, v in sums.items() if k.startswith("type_")
        },
        "null_rates": null_rates,
        "unknown_items": sums.get("unknown_items", 0),
        "pii_scrubbed": sums.get("pii_scrubbed", 0),
        "sessions": sums.get("sessions", 0),
        "per_day": dict(sorted(days.items())),
    }


def check_required_fields(per_file: dict[str, dict[str, int]]) -> None:
    """InputError naming the raw files in which no line carries a required field."""
    wrong = sorted(path for path, c in per_file.items() if c["lines"] and not c["present"])
    if wrong:
        raise InputError(
            f"raw file(s) with the wrong columns (no line is a record with user_id, event_type or "
            f"event_time): {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}"
        )
    lacking = {path: C.missing_fields(c["present"]) for path, c in per_file.items() if c["lines"]}
    lacking = {path: fields for path, fields in sorted(lacking.items()) if fields}
    if lacking:
        listed = "; ".join(f"{path} lacks {', '.join(f)}" for path, f in list(lacking.items())[:5])
        raise InputError(
            f"raw file(s) missing a required column (no line has it; renamed?): {listed}"
            f"{' ...' if len(lacking) > 5 else ''}. Required: {', '.join(C.REQUIRED_RAW_FIELDS)}"
        )


MARKER_VERSION = 2


def day_marker(config: CleanConfig, files: list[FileInfo]) -> dict[str, Any]:
    """What a day's ``_cleaned.json`` says it was made from (raw files, relative to the data
    root, and the rules); ``complete_marker`` adds what it produced."""
    return {
        "version": MARKER_VERSION,
        "raw_fingerprint": files_digest(files, config.data_root),
        "raw_files": len(files),
        "rules": config.rules_digest(),
        "cleaned_for_run_date": config.run_date.isoformat(),
    }


def partition_files(storage: Storage, folder: str) -> dict[str, int]:
    """Data file name (relative to ``folder``) -> size, for a published or staged partition."""
    base = folder.rstrip("/") + "/"
    return {f.path[len(base) :] if f.path.startswith(base) else f.path: f.size
            for f in storage.list_files(folder)}  # fmt: skip


def complete_marker(
    marker: dict[str, Any],
    dispositions: dict[str, int],
    quality: dict[str, int],
    outputs: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The marker plus the day's row counts, quality figures and output files: enough to check
    the day's outputs are all there and to report on the day without reading it again."""
    return {**marker, "dispositions": dispositions, "quality": quality, "outputs": outputs}


def reusable_marker(
    storage: Storage, clean_root: str, quarantine_root: str, day: dt.date, expected: dict[str, Any]
) -> dict[str, Any] | None:
    """The day's marker if the day is complete: same raw files and rules, and every output file
    it names still there with its size (and no other); else None (the day is cleaned again)."""
    part = partition_name(day)
    path = join(clean_root, part, MARKER)
    if not storage.exists(path):
        return None
    try:
        marker: dict[str, Any] = storage.read_json(path)
    except (OSError, ValueError) as exc:
        log.warning("[clean] %s is unreadable (%s): cleaning %s again", path, exc, day)
        return None
    if any(marker.get(k) != expected[k] for k in ("version", "raw_fingerprint", "rules")):
        return None
    outputs = marker.get("outputs") or {}
    for table, root in (("clean", clean_root), ("quarantine", quarantine_root)):
        found = partition_files(storage, join(root, part))
        if found != outputs.get(table, {}):
            log.warning(
                "[clean] %s of %s does not match its marker (%d file(s) found, %d recorded): "
                "cleaning the day again",
                join(root, part),
                day,
                len(found),
                len(outputs.get(table, {})),
            )
            return None
    return marker


def split_done_days(
    storage: Storage, clean_root: str, quarantine_root: str, raw: RawInput, config: CleanConfig
) -> tuple[RawInput, dict[dt.date, dict[str, Any]]]:
    """(the days still to clean, the complete days' markers)."""
    todo, done = RawInput(missing_days=list(raw.missing_days)), {}
    for day, files in raw.files.items():
        expected = day_marker(config, files)
        marker = reusable_marker(storage, clean_root, quarantine_root, day, expected)
        if marker is not None:
            done[day] = marker
        else:
            todo.files[day] = files
    return todo, dict(sorted(done.items()))


def _clean(
    spark: SparkSession,
    storage: Storage,
    config: CleanConfig,
    raw: RawInput,
    clean_root: str,
    quarantine_root: str,
) -> tuple[list[str], dict[str, dict[str, int]], list[dict[str, Any]]]:
    """Clean the days in ``raw`` and publish their partitions; (partition names, dispositions
    per day, quality rows per day)."""
    days = sorted(raw.files)
    log.info(
        "[clean] %d day(s) %s .. %s: %d files, %.1f MB%s",
        len(days),
        days[0],
        days[-1],
        len(raw.all_files),
        raw.bytes / 1e6,
        f"; no raw data for {len(raw.missing_days)} day(s)" if raw.missing_days else "",
    )
    catalog = read_catalog(spark, storage, config.data_root)
    labeled = C.compact_labeled(C.label_events(read_raw_lines(spark, raw), catalog, config))
    labeled = labeled.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with naming_bad_files("raw events", lambda: first_unreadable_gzip(storage, raw.all_files)):
            counts = [r.asDict() for r in C.disposition_counts(labeled).collect()]
        per_day, per_file = _summarise_dispositions(counts)
        check_required_fields(per_file)
        log.info(
            "[clean] labelled %s lines; computing quality figures",
            f"{sum(c['lines'] for c in per_file.values()):,}",
        )
        quality = [r.asDict() for r in C.quality_by_day(labeled).collect()]
        kept_per_day = {dt.date.fromisoformat(d): c.get(C.KEPT, 0) for d, c in per_day.items()}
        q_per_day = {
            dt.date.fromisoformat(d): sum(v for k, v in c.items() if k in C.QUARANTINE_REASONS)
            for d, c in per_day.items()
        }
        with staging_area(storage, config.data_root, "clean") as staging:
            log.info("[clean] writing clean events and quarantine to staging")
            _write_partitioned(C.clean_events(labeled), join(staging, "clean"), kept_per_day)
            _write_partitioned(
                C.quarantined_events(labeled), join(staging, "quarantine"), q_per_day
            )
            names = [partition_name(d) for d in days]
            quality_of = {q["dt"]: {k: int(v) for k, v in q.items() if k != "dt"} for q in quality}
            for day in days:
                if kept_per_day.get(day):  # a day with no clean rows has no partition to mark
                    part = partition_name(day)
                    outputs = {
                        t: partition_files(storage, join(staging, t, part))
                        for t in ("clean", "quarantine")
                    }
                    storage.write_json(
                        join(staging, "clean", part, MARKER),
                        complete_marker(
                            day_marker(config, raw.files[day]),
                            per_day[day.isoformat()],
                            quality_of.get(day, {}),
                            outputs,
                        ),
                    )
            storage.publish_partitions(join(staging, "clean"), clean_root, names)
            storage.publish_partitions(join(staging, "quarantine"), quarantine_root, names)
    finally:
        labeled.unpersist()

    return names, per_day, quality


def main(spark: SparkSession, config: CleanConfig) -> RunResult:
    """Clean ``config.days`` days of raw events ending at ``config.run_date``."""
    storage = Storage(spark)
    run = StepRun(spark, "clean", config)
    clean_root = layout.clean_events(config.data_root)
    quarantine_root = layout.quarantine_events(config.data_root)
    report_path = layout.reports(config.data_root, config.run_date, "clean_quality.json")
    with run:
        raw = discover_raw_events(
            storage,
            config.data_root,
            date_window(config.run_date, config.days),
            allow_missing_days=config.allow_missing_days,
        )
        reused: dict[dt.date, dict[str, Any]] = {}
        if config.incremental:
            raw, reused = split_done_days(storage, clean_root, quarantine_root, raw, config)
            if reused:
                log.info(
                    "[clean] %d day(s) already clean from the same raw files and rules: %s",
                    len(reused),
                    ", ".join(d.isoformat() for d in reused),
                )
        days = sorted(raw.files)
        run.inputs = [f.path for f in raw.all_files]
        run.inputs.append(layout.raw_catalog(config.data_root))
        names: list[str] = []
        per_day: dict[str, dict[str, int]] = {}
        quality: list[dict[str, Any]] = []
        if days:
            with shuffle_sized_for(spark, raw.bytes, "clean"):
                names, per_day, quality = _clean(
                    spark, storage, config, raw, clean_root, quarantine_root
                )
        else:
            log.info("[clean] nothing to clean: every day of the window is current")
        # A reused day is reported with the figures its marker recorded, never as zeros.
        for day, marker in reused.items():
            per_day[day.isoformat()] = marker["dispositions"]
            quality.append({"dt": day, **marker["quality"]})
        report = _quality_report(per_day, quality, config)
        storage.write_json(report_path, report)
        run.outputs = (
            [join(clean_root, n) for n in names]
            + [join(quarantine_root, n) for n in names]
            + [report_path]
        )
        run.record(
            rows_in=report["rows_in"],
            rows_out=report["rows_kept"],
            quarantined=report["quarantined_by_reason"],
            filtered=report["filtered_by_reason"],
        )
        run.extra = {
            "days": [d.isoformat() for d in days],
            "days_reused": [d.isoformat() for d in reused],
            "rows_cleaned_now": sum(
                v
                for d, c in per_day.items()
                if dt.date.fromisoformat(d) in raw.files
                for v in c.values()
            ),
            "missing_days": [d.isoformat() for d in raw.missing_days],
            "input_files": len(raw.all_files),
            "input_bytes": raw.bytes,
            "quality": {k: v for k, v in report.items() if k not in ("per_day", "run_date")},
            "per_day": {d: v["dispositions"] for d, v in report["per_day"].items()},
            "report": report_path,
        }
    return run.result(report=report)


def summarize(result: RunResult) -> str:
    m = result.manifest
    q = m["quality"]
    reused = m.get("days_reused") or []
    head = (
        f"cleaned {m['rows_cleaned_now']:,} raw rows for {m['days'][0]} .. {m['days'][-1]}"
        if m["days"]
        else "nothing to clean"
    )
    if reused:
        head += f"; {len(reused)} day(s) already clean. Window {m['rows_in']:,} raw rows"
    return (
        f"{head}: {m['rows_out']:,} kept, {m['rows_quarantined']:,} quarantined, "
        f"{sum(m['rows_filtered'].values()):,} filtered\n"
        f"quarantined: {format_counts(m['rows_quarantined_by_reason'])}\n"
        f"filtered: {format_counts(m['rows_filtered'])}\n"
        f"kept by type: {format_counts(q['kept_by_event_type'])}; sessions {q['sessions']:,}; "
        f"unknown items {q['unknown_items']:,}; queries scrubbed of PII {q['pii_scrubbed']:,}\n"
        f"report: {m['report']}\nmanifest: {result.manifest_path}"
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("clean", CleanConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
