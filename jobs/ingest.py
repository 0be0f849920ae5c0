"""cartwheel ingest: a public dataset -> the raw layout that generate writes.

``--format online-retail --input online_retail.parquet`` (UCI Online Retail),
``--format taobao --input UserBehavior.csv`` (Taobao UserBehavior, header-less CSV),
``--format movielens --input ml-latest-small/`` (a folder with ratings.csv and movies.csv).
Writes ``raw/events/dt=.../*.json.gz`` (replacing the days the dataset covers), ``raw/catalog/``
and ``_runs/<run-date>/ingest.json``. Every source row becomes one raw line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout
from jobs.runtime.config import StepConfig, normalise_uri, opt, step_config
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import naming_bad_files, read_parquet_table
from jobs.runtime.step import run_cli, staging_area
from jobs.runtime.storage import Storage, join
from jobs.runtime.writers import publish_raw, stage_raw
from pipelines import ingest as I
from pipelines.errors import ConfigError, InputError

log = logging.getLogger("cartwheel")


@step_config
class IngestConfig(StepConfig):
    """Flags of ``cartwheel ingest``."""

    format: str = opt(help=f"dataset format: {', '.join(I.FORMATS)}")
    input: str = opt(help="dataset file or folder (see the step's description)")
    run_date: dt.date | None = opt(
        default=None,
        help="ingest date; rows with unreadable or later times are filed under it (default: today, UTC)",
    )

    def validate(self) -> None:
        super().validate()
        if self.format not in I.FORMATS:
            raise ConfigError(
                f"invalid config value format={self.format!r}: must be one of {', '.join(I.FORMATS)}"
            )
        if not self.input:
            raise ConfigError("input: must not be empty")

    @property
    def manifest_date(self) -> dt.date:
        return self.run_date or dt.datetime.now(dt.UTC).date()


def _text_lines(spark: SparkSession, storage: Storage, path: str) -> DataFrame:
    if not storage.exists(path):
        raise InputError(f"input not found: {path}")
    files = storage.list_files(path)
    if not files or sum(f.size for f in files) == 0:
        raise InputError(f"input is empty: {path}")
    # Strip a CR left by CRLF files so the last CSV field parses.
    return spark.read.text(path).select(F.regexp_replace("value", "\r$", "").alias("value"))


def _movielens_paths(storage: Storage, path: str) -> tuple[str, str]:
    folder = path if storage.is_dir(path) else path.rsplit("/", 1)[0]
    ratings, movies = join(folder, "ratings.csv"), join(folder, "movies.csv")
    for p in (ratings, movies):
        if not storage.exists(p):
            raise InputError(f"MovieLens input needs {os.path.basename(p)}: not found at {p}")
    return ratings, movies


def _read_source(
    spark: SparkSession, storage: Storage, config: IngestConfig, run_date: dt.date
) -> tuple[DataFrame, DataFrame, dict[str, int]]:
    """(events (dt, value), catalog, source figures) for the configured format."""
    source = normalise_uri(config.input)
    figures: dict[str, int] = {}
    if config.format == I.ONLINE_RETAIL:
        src = read_parquet_table(
            spark, storage, source, I.ONLINE_RETAIL_SCHEMA, "Online Retail input"
        )
        with naming_bad_files("Online Retail input"):
            figures["mojibake_descriptions"] = int(src.agg(I.mojibake_titles()).first()[0])  # type: ignore[index]
        return I.online_retail_events(src, run_date), I.online_retail_catalog(src), figures
    if config.format == I.TAOBAO:
        lines = _text_lines(spark, storage, source)
        return I.taobao_events(lines, run_date), I.taobao_catalog(lines), figures
    ratings_path, movies_path = _movielens_paths(storage, source)
    lines = _text_lines(spark, storage, ratings_path)
    is_header = F.col("value") == I.MOVIELENS_RATINGS_HEADER
    figures["header_lines"] = lines.where(is_header).count()
    if figures["header_lines"] == 0:
        raise InputError(
            f"{ratings_path} has the wrong columns: expected the header {I.MOVIELENS_RATINGS_HEADER!r}"
        )
    movies = (
        spark.read.schema(I.MOVIELENS_MOVIES_SCHEMA)
        .option("header", True)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .csv(movies_path)
    )
    return (
        I.movielens_events(lines.where(~is_header), run_date),
        I.movielens_catalog(movies),
        figures,
    )


def main(spark: SparkSession, config: IngestConfig) -> RunResult:
    """Convert ``config.input`` to the raw layout under ``config.data_root``."""
    storage = Storage(spark)
    run = StepRun(spark, "ingest", config)
    run_date = config.manifest_date
    with run:
        run.inputs = [normalise_uri(config.input)]
        events, catalog, figures = _read_source(spark, storage, config, run_date)
        events = events.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            with naming_bad_files(f"{config.format} input"):
                per_day = {r["dt"]: int(r["count"]) for r in events.groupBy("dt").count().collect()}
            if not per_day:
                raise InputError(f"input has no rows: {config.input}")
            days = sorted(per_day)
            rows = sum(per_day.values())
            log.info(
                "[ingest] %s rows over %d day(s) %s .. %s",
                f"{rows:,}",
                len(days),
                days[0],
                days[-1],
            )
            with staging_area(storage, config.data_root, "ingest") as staging:
                stage_raw(storage, staging, events, catalog)
                catalog_items = spark.read.parquet(join(staging, "catalog")).count()
                run.outputs = publish_raw(storage, staging, config.data_root, days)
            exclude, why = I.SOURCE_EXCLUDE[config.format]
            source_doc = {
                "format": config.format,
                "input": config.input,
                "exclude": exclude,
                "why": why,
            }
            storage.write_json(layout.raw_source(config.data_root), source_doc)
            run.outputs.append(layout.raw_source(config.data_root))
        finally:
            events.unpersist()
        run.record(rows_in=rows, rows_out=rows)
        run.extra = {
            "format": config.format,
            "days": len(days),
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
            "catalog_items": catalog_items,
            "exclude": exclude,
            **figures,
        }
    return run.result()


def summarize(result: RunResult) -> str:
    m = result.manifest
    return (
        f"ingested {m['rows_in']:,} {m['format']} rows into {m['days']:,} day partition(s) "
        f"{m['first_day']} .. {m['last_day']}; catalog of {m['catalog_items']:,} items\n"
        f"score and evaluate will hide items by the rule '{m['exclude']}' (--exclude auto)\n"
        f"next: cartwheel clean --data-root {m['config']['data_root']} --run-date {m['last_day']} "
        f"--days <N> --allow-missing-days\nmanifest: {result.manifest_path}"
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("ingest", IngestConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
