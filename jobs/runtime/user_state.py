"""The per-user history state on disk: find yesterday's, decide whether it can be advanced,
and write tonight's (``pipelines.user_state`` holds the transforms).

``state/user_history/dt=D/`` holds ``state(D)`` (Parquet) and ``_meta.json``: the window and
history length it was built for, how it was built, and a fingerprint of every clean partition
it read that a later state still depends on. Tonight's state is advanced from yesterday's when
yesterday's exists, was built for the same window length and history length, and none of those
clean partitions changed since (a re-cleaned late day, say); otherwise it is rebuilt from the
window, and the reason is logged and recorded. A state that exists but cannot be read is an
error that names it: a damaged file is never silently replaced.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout
from jobs.runtime.fingerprint import paths_digest
from jobs.runtime.readers import naming_bad_files, read_parquet_table
from jobs.runtime.storage import Storage, join
from pipelines import schemas as S
from pipelines import user_state as U
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")
WHAT = "user history state"
INCREMENTAL, REBUILT = "incremental", "rebuilt"


@dataclass(frozen=True)
class StatePlan:
    """How tonight's state is built: advanced from ``previous`` (a path) or rebuilt, and why."""

    built: str
    reason: str
    previous: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean_digests(storage: Storage, root: str, days: list[dt.date]) -> dict[str, str]:
    """``dt=D`` -> a fingerprint of that clean partition's files (a missing one counts as empty)."""
    clean = layout.clean_events(root)
    return {
        layout.partition(d): paths_digest(storage, [join(clean, layout.partition(d))], root)
        for d in days
    }


def depends_on(run_date: dt.date, lookback_days: int) -> list[dt.date]:
    """The clean partitions a state of ``run_date`` read that tomorrow's still depends on."""
    return U.rebuild_partitions(run_date, lookback_days)[1:]


def plan(
    storage: Storage, root: str, run_date: dt.date, lookback_days: int, length: int
) -> StatePlan:
    """Advance yesterday's state, or rebuild (with the reason)."""
    yesterday = run_date - dt.timedelta(days=1)
    path = layout.user_history(root, yesterday)
    meta_path = join(path, "_meta.json")
    if not storage.exists(meta_path):
        return StatePlan(REBUILT, f"no {WHAT} of {yesterday} at {path}")
    try:
        meta = storage.read_json(meta_path)
        built_for = (int(meta["lookback_days"]), int(meta["history_length"]))
        recorded = dict(meta["clean_partitions"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"cannot read {WHAT}: {meta_path}: not a state's _meta.json ({exc})"
        ) from exc
    if built_for != (lookback_days, length):
        return StatePlan(
            REBUILT,
            f"the {WHAT} of {yesterday} was built for --lookback-days {built_for[0]} and "
            f"history length {built_for[1]}, tonight needs {lookback_days} and {length}",
        )
    now = clean_digests(storage, root, depends_on(yesterday, lookback_days))
    changed = [p for p, digest in now.items() if recorded.get(p) != digest]
    if changed:
        return StatePlan(
            REBUILT,
            f"clean events changed since the {WHAT} of {yesterday} was built: "
            + ", ".join(join(layout.clean_events(root), p) for p in changed),
        )
    return StatePlan(INCREMENTAL, f"advanced the {WHAT} of {yesterday} by one day", path)


def read_state(spark: SparkSession, storage: Storage, path: str) -> DataFrame:
    """A state table checked against its contract (InputError naming a bad one)."""
    return read_parquet_table(spark, storage, path, S.USER_HISTORY.schema, WHAT)


def write_state(
    storage: Storage,
    state: DataFrame,
    folder: str,
    root: str,
    run_date: dt.date,
    lookback_days: int,
    length: int,
    state_plan: StatePlan,
) -> tuple[int, int]:
    """Write ``state`` and its ``_meta.json`` to ``folder`` (a staging partition); (the users
    it holds, those of them without an item event), from one pass over the written files. The
    first action over yesterday's state runs here, so a damaged file is named."""
    with naming_bad_files(WHAT):
        state.write.parquet(folder)
    counts = (
        state.sparkSession.read.schema(S.USER_HISTORY.schema)
        .parquet(folder)
        .agg(
            F.count(F.lit(1)).alias("users"),
            F.sum((F.size("events") == 0).cast("long")).alias("without_items"),
        )
        .first()
    )
    assert counts is not None  # a global aggregate has one row
    users, without_items = int(counts["users"]), int(counts["without_items"] or 0)
    storage.write_json(
        join(folder, "_meta.json"),
        {
            "run_date": run_date.isoformat(),
            "lookback_days": lookback_days,
            "history_length": length,
            "window_start": U.window_start(run_date, lookback_days).isoformat(),
            "users": users,
            **state_plan.to_dict(),
            "clean_partitions": clean_digests(storage, root, depends_on(run_date, lookback_days)),
        },
    )
    log.info("[score] %s of %s: %s users (%s)", WHAT, run_date, f"{users:,}", state_plan.reason)
    return users, without_items
