"""cartwheel backfill: run the nights ``--from`` D1 ``--to`` D2 (inclusive) in date order.

Each night is exactly ``cartwheel nightly --run-date D`` with the same flags (steps already done
for a date are skipped). The data root's lock is held for the whole backfill. The first failed
night stops the backfill: later nights build on it (their models are compared with its champion).
Exit codes as for nightly: 0 every night succeeded, 1 a night failed, 2 bad config, 3 locked.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from jobs import nightly
from jobs.night.options import NightOptions
from jobs.runtime.config import StepConfig, opt, step_config
from jobs.runtime.lock import data_root_lock
from jobs.runtime.manifest import RunResult, manifest_path, utc_now
from jobs.runtime.step import run_cli
from jobs.runtime.storage import Storage
from pipelines.errors import ConfigError

log = logging.getLogger("cartwheel")
MAX_NIGHTS = 366


@step_config
class BackfillConfig(StepConfig, NightOptions):
    """Flags of ``cartwheel backfill``."""

    from_date: dt.date = opt(help="first night, YYYY-MM-DD", aliases=("--from",))
    to_date: dt.date = opt(help="last night, YYYY-MM-DD (inclusive)", aliases=("--to",))

    def validate(self) -> None:
        StepConfig.validate(self)
        self.validate_night()
        if self.to_date < self.from_date:
            raise ConfigError(
                f"invalid dates: --to {self.to_date} is before --from {self.from_date}"
            )
        if len(self.dates) > MAX_NIGHTS:
            raise ConfigError(
                f"invalid dates: {len(self.dates)} nights; a backfill runs at most {MAX_NIGHTS}"
            )

    @property
    def dates(self) -> list[dt.date]:
        n = (self.to_date - self.from_date).days + 1
        return [self.from_date + dt.timedelta(days=i) for i in range(max(0, n))]

    @property
    def manifest_date(self) -> dt.date:
        return self.to_date

    def night(self, day: dt.date) -> nightly.NightlyConfig:
        return nightly.NightlyConfig(
            data_root=self.data_root,
            run_date=day,
            filter_warn_share=self.filter_warn_share,
            **self.night_options(),
        )


def main(spark: SparkSession, config: BackfillConfig) -> RunResult:
    """Run every night of the range in order; stop at the first that fails."""
    storage = Storage(spark)
    nights: list[dict[str, Any]] = []
    started, started_at = time.monotonic(), utc_now()
    label = f"{config.from_date} .. {config.to_date}"
    with data_root_lock(storage, config.data_root, label, break_lock=config.break_lock):
        for n, day in enumerate(config.dates, start=1):
            log.info("[backfill] night %d/%d: %s", n, len(config.dates), day)
            result = nightly.main(spark, config.night(day), locked=True)
            nights.append(
                {
                    "run_date": day.isoformat(),
                    "status": result.status,
                    "duration_s": result.manifest["duration_s"],
                    "failed_step": next(
                        (k for k, s in result.manifest["steps"].items() if s["status"] == "failed"),
                        None,
                    ),
                    "manifest": result.manifest_path,
                }
            )
            if not result.succeeded:
                log.error("[backfill] night %s failed; stopping (later nights build on it)", day)
                break
    status = (
        "succeeded"
        if len(nights) == len(config.dates) and all(x["status"] == "succeeded" for x in nights)
        else "failed"
    )
    doc = {
        "step": "backfill",
        "status": status,
        "from": config.from_date.isoformat(),
        "to": config.to_date.isoformat(),
        "config": config.to_record(),
        "started_at": started_at,
        "finished_at": utc_now(),
        "duration_s": round(time.monotonic() - started, 3),
        "nights": nights,
        "not_run": [d.isoformat() for d in config.dates[len(nights) :]],
    }
    path = manifest_path(config.data_root, config.to_date, "backfill")
    storage.write_json(path, doc)
    return RunResult("backfill", status, doc, path)


def summarize(result: RunResult) -> str:
    doc = result.manifest
    lines = [f"backfill {doc['from']} .. {doc['to']}: {doc['status']} in {doc['duration_s']:.0f}s"]
    for x in doc["nights"]:
        failed = f" at {x['failed_step']}" if x["failed_step"] else ""
        lines.append(f"  {x['run_date']}  {x['status']}{failed}  {x['duration_s']:.0f}s")
    if doc["not_run"]:
        lines.append(f"  not run: {', '.join(doc['not_run'])}")
        lines.append(
            f"rerun the same command to continue from {doc['nights'][-1]['run_date']} "
            "(finished steps are skipped)"
        )
    lines.append(f"manifest: {result.manifest_path}")
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("backfill", BackfillConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
