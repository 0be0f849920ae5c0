"""cartwheel generate: synthetic behaviour logs and a catalog, with an exact defect ledger.

Writes ``raw/events/dt=.../*.json.gz`` (or ``*.csv.gz``) for ``--days`` days ending at
``--end-date``, ``raw/catalog/`` (Parquet) and ``_runs/<end-date>/generate.json`` whose
``injected`` object gives the exact count of every defect kind the clean step must find.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from jobs.runtime.config import NonNegative, StepConfig, opt, step_config
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import date_window
from jobs.runtime.session import default_parallelism
from jobs.runtime.step import format_counts, run_cli, staging_area
from jobs.runtime.storage import Storage
from jobs.runtime.writers import publish_raw, stage_raw
from pipelines import clean as C
from pipelines import generate as G

log = logging.getLogger("cartwheel")
ROWS_PER_TASK = 400_000


@step_config
class GenerateConfig(StepConfig, G.GeneratorSpec):
    """Flags of ``cartwheel generate`` (the generator spec plus the data root)."""

    end_date: dt.date = opt(help="last day to generate, YYYY-MM-DD")
    partitions: NonNegative = opt(
        default=0,
        help="Spark partitions for generation (0: one per ~400k rows, at least the cores)",
    )

    def validate(self) -> None:
        StepConfig.validate(self)
        G.GeneratorSpec.validate(self)

    @property
    def manifest_date(self) -> dt.date:
        return self.end_date


def main(spark: SparkSession, config: GenerateConfig) -> RunResult:
    """Generate raw events and the catalog under ``config.data_root``; return the manifest."""
    storage = Storage(spark)
    run = StepRun(spark, "generate", config)
    with run:
        p = G.plan(config)
        partitions = config.partitions or max(
            default_parallelism(spark), math.ceil(config.rows / ROWS_PER_TASK)
        )
        log.info(
            "[generate] ~%s rows over %d days to %s: %d users, %d items, %d categories, %d bot users, %d partitions",
            f"{config.rows:,}",
            config.days,
            config.end_date,
            p.users,
            p.items,
            p.categories,
            p.bot_users,
            partitions,
        )
        days = date_window(config.end_date, config.days)
        records, observation = G.observe_ledger(G.generate_records(spark, p, partitions), days)
        with staging_area(storage, config.data_root, "generate") as staging:
            # one pass: the ledger is counted while the lines are written
            stage_raw(
                storage,
                staging,
                G.render_lines(records, p),
                G.generate_catalog(spark, p),
                config.output_format,
            )
            ledger = G.ledger(observation)
            log.info("[generate] events and catalog written; counting the sessions")
            sessions = int(G.session_count(spark, p, partitions).first()["sessions"])  # type: ignore[index]
            outputs = publish_raw(storage, staging, config.data_root, days)

        raw_rows = ledger.rows
        injected: dict[str, int] = {kind: ledger.by_kind.get(kind, 0) for kind in G.COPY_DEFECTS}
        injected[C.BOT_USER] = ledger.by_kind.get(G.BOT, 0)
        injected.update(ledger.modified)
        run.inputs = []
        run.outputs = outputs
        run.record(rows_in=raw_rows, rows_out=raw_rows)
        run.extra = {
            "raw_rows": raw_rows,
            "natural_rows": ledger.by_kind.get(G.NATURAL, 0),
            "sessions": sessions,
            "injected": injected,
            "rows_by_day": dict(sorted(ledger.by_day.items())),
            "plan": p.to_record(),
            "catalog_items": p.items,
        }
    return run.result()


def summarize(result: RunResult) -> str:
    m: dict[str, Any] = result.manifest
    return (
        f"generated {m['raw_rows']:,} raw rows ({m['natural_rows']:,} natural, {m['sessions']:,} sessions) "
        f"for {m['plan']['start_date']} .. {m['plan']['end_date']}\n"
        f"injected: {format_counts(m['injected'])}\n"
        f"outputs: {', '.join(m['outputs'])}\nmanifest: {result.manifest_path}"
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("generate", GenerateConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
