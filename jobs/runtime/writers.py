"""Writing the raw layout (``raw/events/dt=.../*.json.gz``, ``raw/catalog/``) via staging."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from jobs.runtime import layout
from jobs.runtime.readers import partition_name
from jobs.runtime.storage import Storage, join

RAW_SUFFIX = {"json": ".json.gz", "csv": ".csv.gz"}


def stage_raw(
    storage: Storage,
    staging: str,
    events: DataFrame,
    catalog: DataFrame,
    output_format: str = "json",
) -> None:
    """Write (dt, value) lines as gzip text partitioned by dt, and the catalog, under ``staging``.

    Spark names text output ``*.txt.gz``; files are renamed to the suffix that tells the clean
    step how to parse them.
    """
    staged_events = join(staging, "events")
    events.write.partitionBy("dt").text(staged_events, compression="gzip")
    suffix = RAW_SUFFIX[output_format]
    for f in storage.list_files(staged_events):
        if f.path.endswith(".txt.gz"):
            storage.rename(f.path, f.path[: -len(".txt.gz")] + suffix)
    catalog.coalesce(1).write.parquet(join(staging, "catalog"))


def publish_raw(storage: Storage, staging: str, data_root: str, days: list[dt.date]) -> list[str]:
    """Move staged events (exactly ``days``' partitions) and the catalog into ``raw/``."""
    events_root = layout.raw_events(data_root)
    catalog_root = layout.raw_catalog(data_root)
    storage.publish_partitions(
        join(staging, "events"), events_root, [partition_name(d) for d in days]
    )
    storage.delete(catalog_root)
    storage.rename(join(staging, "catalog"), catalog_root)
    return [events_root, catalog_root]
