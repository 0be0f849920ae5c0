"""cartwheel nightly: one command runs a whole night (clean, label, shard, train, rank, score,
evaluate, publish) for ``--run-date``: the night publishes the ranker's lists, gated against the
best tuned baseline. ``--no-second-stage`` leaves rank out and publishes the two-tower's own
lists, gated against popularity.

* Incremental: clean reads only the days of the window whose raw files are new or changed.
* Resumable: a step whose manifest says it succeeded, with the same config and inputs (a
  fingerprint of both is kept in ``_runs/<date>/nightly.json``), is skipped; after a failure the
  next run starts at the failed step. ``--force`` redoes every step, ``--from-step S`` redoes S
  and everything after it.
* Locked: one run per data root at a time (``_runs/_lock.json``); a second one refuses to start.
* Atomic: score writes into ``_pending/dt=<date>/``; the recommendation tables for the date are
  published into ``recs/`` (and ``recs/_latest.json`` moves) only after evaluate has passed its
  quality gate and promoted the night's model. A failed night leaves ``recs/`` as it was.

Exit codes: 0 the night succeeded, 1 a step failed (the summary names it), 2 bad config,
3 another run holds the lock.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from pyspark.sql import SparkSession

from jobs.night import report
from jobs.night.options import NightlyConfig, NightOptions
from jobs.night.plan import FAILED, SKIPPED, SUCCEEDED, state_path
from jobs.night.run import Night
from jobs.runtime.lock import data_root_lock
from jobs.runtime.manifest import RunResult
from jobs.runtime.step import run_cli
from jobs.runtime.storage import Storage

__all__ = ["Night", "NightOptions", "NightlyConfig", "cli", "main", "summarize"]
log = logging.getLogger("cartwheel")


def main(spark: SparkSession, config: NightlyConfig, *, locked: bool = False) -> RunResult:
    """Run the night for ``config.run_date``; ``locked`` when the caller holds the lock."""
    storage = Storage(spark)
    lock = (
        nullcontext()
        if locked
        else data_root_lock(
            storage, config.data_root, config.run_date.isoformat(), break_lock=config.break_lock
        )
    )
    with lock:
        night = Night(spark, config)
        log.info(
            "[night %s] data root %s; steps %s",
            night.day,
            night.root,
            " -> ".join(s.name for s in night.steps),
        )
        try:
            night.run()
        finally:
            # Also when a check before the first step raised: the state says what happened.
            ok = all(o.status in (SUCCEEDED, SKIPPED) for o in night.outcomes.values())
            doc = night.save(SUCCEEDED if ok else FAILED)
        try:  # the report is for people: a failure to draw it is logged, not fatal
            report.write(spark, storage, night.root, night.day, doc, night.outcomes)
        except Exception as exc:
            log.error("[night %s] could not write the HTML report: %s", night.day, exc)
    results = {n: o.result for n, o in night.outcomes.items() if o.result is not None}
    return RunResult(
        "nightly",
        doc["status"],
        doc,
        state_path(config.data_root, config.run_date),
        {"outcomes": night.outcomes, "results": results},
    )


def summarize(result: RunResult) -> str:
    return "\n".join(report.summary_lines(result))


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("nightly", NightlyConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
