"""The night's last step: the pending recommendation tables into ``recs/``, and the
``recs/_latest.json`` pointer, only when evaluation promoted the night's model."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import SparkSession

from jobs.runtime import layout
from jobs.runtime.config import DatedStepConfig, step_config
from jobs.runtime.manifest import RunResult, StepRun, utc_now
from jobs.runtime.storage import Storage, join
from pipelines.errors import InputError, QualityGateError


@step_config
class PublishConfig(DatedStepConfig):
    """The publish step's (internal) config: which date's pending tables to publish."""


def latest_line(storage: Storage, root: str) -> str:
    """What readers see now, in words."""
    if not storage.exists(layout.latest(root)):
        return "recs/ (nothing published yet)"
    latest = storage.read_json(layout.latest(root))
    return f"the tables of {latest['run_date']} (model v{latest['model_version']})"


def publish(
    spark: SparkSession, root: str, day: dt.date, scored: dict[str, Any], evaluated: dict[str, Any]
) -> RunResult:
    """Move the pending tables of ``day`` into recs/ if ``evaluated`` promoted the scored model."""
    storage = Storage(spark)
    run = StepRun(spark, "publish", PublishConfig(data_root=root, run_date=day))
    with run:
        version = str(scored["model_version"])
        if str(evaluated.get("champion_version")) != version:
            raise QualityGateError(
                f"model v{version} was not promoted ({evaluated['promotion']['reason']}): the "
                f"recommendation tables for {day} are not published; "
                f"{latest_line(storage, root)} stay as they were"
            )
        part = layout.partition(day)
        pending = layout.recs_root(layout.pending(root, day))
        outputs = []
        for table in layout.RECS_TABLES:
            staged = join(pending, table, part)
            if storage.exists(staged):
                storage.publish_partitions(join(pending, table), layout.recs(root, table), [part])
                outputs.append(layout.recs(root, table, day))
            elif not storage.exists(layout.recs(root, table, day)) and any(
                f"/{table}/" in p for p in scored["outputs"]
            ):
                raise InputError(f"the pending table {staged} is missing: rerun score")
        latest = (
            storage.read_json(layout.latest(root)) if storage.exists(layout.latest(root)) else {}
        )
        if latest.get("run_date", "") <= day.isoformat():  # a backfill does not move it back
            storage.write_json(
                layout.latest(root),
                {
                    "run_date": day.isoformat(),
                    "model_name": scored["model_name"],
                    "model_version": version,
                    "published_at": utc_now(),
                    "tables": {
                        t: layout.recs(root, t, day)
                        for t in layout.RECS_TABLES
                        if storage.exists(layout.recs(root, t, day))
                    },
                    "users": scored["rows_out"],
                    # with the second stage, user_topk holds this ranker's lists
                    "ranker": (
                        {"name": scored["ranker"]["name"], "version": scored["ranker"]["version"]}
                        if scored.get("ranker")
                        else None
                    ),
                },
            )
        storage.delete(layout.pending(root, day))
        run.inputs = [pending]
        run.outputs = outputs
        run.record(rows_in=scored["rows_out"], rows_out=scored["rows_out"])
        run.extra = {
            "model_name": scored["model_name"],
            "model_version": version,
            "latest": layout.latest(root),
        }
    return run.result()
