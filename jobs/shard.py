"""cartwheel shard: examples -> shuffled, balanced Parquet shards for Petastorm readers.

Reads ``examples/split=*/`` (and ``examples/_meta.json``, ``vocab/``); writes
``shards/<run-id>/split=<split>/part-*.parquet``: rows shuffled, a file count that is a multiple
of ``--workers``, balanced file sizes, row groups of about ``--row-group-mb``. It also writes
``shards/<run-id>/vocab/`` (a copy, so a shard set is self-contained) and
``shards/<run-id>/_manifest.json``, which lists the files, rows, bytes, row groups, the balance
ratio per split and the schema. A Petastorm ``make_batch_reader(cur_shard=r, shard_count=W)``
over a split's files gives each of the W workers a disjoint slice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout
from jobs.runtime.config import AtLeast1, DatedStepConfig, opt, step_config
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import naming_bad_files
from jobs.runtime.step import run_cli, staging_area
from jobs.runtime.storage import Storage, join, local_path
from pipelines import label as L
from pipelines import schemas as S
from pipelines import shard as SH
from pipelines.errors import ConfigError, InputError

log = logging.getLogger("cartwheel")
MB = 1024 * 1024


@step_config
class ShardConfig(DatedStepConfig):
    """Flags of ``cartwheel shard``."""

    run_id: str | None = opt(
        default=None, help="shard set name under shards/ (default: the run date)"
    )
    workers: AtLeast1 = opt(
        default=2, help="training workers; each split gets a multiple of this many files"
    )
    target_file_mb: AtLeast1 = opt(default=128, help="approximate size of one shard file")
    row_group_mb: AtLeast1 = opt(
        default=32, help="Parquet row group size (the unit Petastorm reads and shards by)"
    )
    seed: int = opt(default=0, help="shuffle seed")

    def validate(self) -> None:
        super().validate()
        if self.run_id is not None and (
            not self.run_id or "/" in self.run_id or self.run_id.startswith(("_", "."))
        ):
            raise ConfigError(
                f"invalid config value run_id={self.run_id!r}: a plain folder name is required"
            )

    @property
    def shard_id(self) -> str:
        return self.run_id or self.run_date.isoformat()


def parquet_footer(path: str) -> tuple[int, int]:
    """(rows, row groups) from a Parquet file's footer, on a local path or a cluster URI."""
    local = local_path(path)
    if local is not None:
        meta = pq.ParquetFile(local).metadata
    else:
        filesystem, inner = pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
        with filesystem.open_input_file(inner) as fh:
            meta = pq.ParquetFile(fh).metadata
    return meta.num_rows, meta.num_row_groups


def describe_split(storage: Storage, folder: str) -> dict[str, Any]:
    """Files (path, rows, bytes, row groups), totals and the max/min rows balance ratio."""
    files: list[dict[str, Any]] = []
    sizes: list[int] = []
    groups_total = 0
    for f in storage.list_files(folder):
        rows, groups = parquet_footer(f.path)
        files.append({"path": f.path, "rows": rows, "bytes": f.size, "row_groups": groups})
        sizes.append(rows)
        groups_total += groups
    return {
        "files": files,
        "rows": sum(sizes),
        "bytes": sum(f["bytes"] for f in files),
        "row_groups": groups_total,
        "balance_ratio": balance_ratio(sizes),
    }


def balance_ratio(sizes: list[int]) -> float | None:
    """max/min rows per file (1.0 is perfect balance); None without files or with an empty one."""
    smallest = min(sizes, default=0)
    return round(max(sizes) / smallest, 4) if smallest > 0 else None


def main(spark: SparkSession, config: ShardConfig) -> RunResult:
    """Shard every split of ``examples/`` into ``shards/<run-id>/``."""
    storage = Storage(spark)
    run = StepRun(spark, "shard", config)
    root = config.data_root
    examples_root = layout.examples(root, config.run_date)
    target = layout.shards(root, config.shard_id)
    with run:
        meta_path = join(examples_root, "_meta.json")
        if not storage.exists(meta_path):
            raise InputError(
                f"no labelled examples for {config.run_date} at {examples_root} (missing _meta.json): "
                f"run `cartwheel label --run-date {config.run_date}` first"
            )
        meta = storage.read_json(meta_path)
        run.inputs = [examples_root, layout.vocab(root, config.run_date)]
        with naming_bad_files("examples"):
            examples = spark.read.schema(S.EXAMPLES.schema).parquet(examples_root)
            rows = {
                r["split"]: int(r["count"]) for r in examples.groupBy("split").count().collect()
            }
        for split in L.SPLITS:
            if rows.get(split, 0) < config.workers:
                raise InputError(
                    f"split {split} has {rows.get(split, 0)} examples, fewer than the {config.workers} workers "
                    f"(in {examples_root}/split={split})"
                )
        splits: dict[str, Any] = {}
        with staging_area(storage, root, "shard") as staging:
            out = join(staging, "shards")
            for split in L.SPLITS:
                files = SH.file_count(
                    rows[split], config.workers, config.target_file_mb * MB, meta["history_length"]
                )
                log.info("[shard] %s: %s examples into %d files", split, f"{rows[split]:,}", files)
                part = examples.where(F.col("split") == split).drop("split")
                (
                    SH.shard_split(part, files, rows[split], config.seed)
                    .write.option("parquet.block.size", config.row_group_mb * MB)
                    .parquet(join(out, f"split={split}"))
                )
                splits[split] = describe_split(storage, join(out, f"split={split}"))
                if len(splits[split]["files"]) != files or splits[split]["rows"] != rows[split]:
                    raise InputError(
                        f"split {split}: wrote {len(splits[split]['files'])} files with {splits[split]['rows']} rows, "
                        f"expected {files} files with {rows[split]} rows"
                    )
            spark.read.parquet(layout.vocab(root, config.run_date, "items")).coalesce(
                1
            ).write.parquet(join(out, "vocab", "items"))
            spark.read.parquet(layout.vocab(root, config.run_date, "categories")).coalesce(
                1
            ).write.parquet(join(out, "vocab", "categories"))
            shard_manifest = {
                "run_id": config.shard_id,
                "run_date": config.run_date.isoformat(),
                "workers": config.workers,
                "row_group_mb": config.row_group_mb,
                "seed": config.seed,
                "history_length": meta["history_length"],
                "padding": "hist_* arrays hold exactly history_length values: the hist_len most recent "
                "events first, then padding_index (0)",
                "vocab": {
                    k: meta[k]
                    for k in (
                        "num_items",
                        "num_categories",
                        "num_event_types",
                        "padding_index",
                        "oov_index",
                        "type_index",
                    )
                },
                "boundaries": meta["boundaries"],
                "schema": S.SHARDS.fields(),
                "splits": splits,
            }
            # paths as they will be after publishing
            staged_prefix = out
            for info in splits.values():
                for f in info["files"]:
                    f["path"] = (
                        target + f["path"][f["path"].index(staged_prefix) + len(staged_prefix) :]
                    )
            storage.write_json(join(out, "_manifest.json"), shard_manifest)
            storage.delete(target)
            storage.rename(out, target)

        total = sum(rows[s] for s in L.SPLITS)
        run.outputs = [target]
        run.record(rows_in=total, rows_out=sum(splits[s]["rows"] for s in L.SPLITS))
        run.extra = {
            "run_id": config.shard_id,
            "shard_manifest": join(target, "_manifest.json"),
            "splits": {
                s: {k: v for k, v in splits[s].items() if k != "files"}
                | {"files": len(splits[s]["files"])}
                for s in L.SPLITS
            },
        }
    return run.result()


def summarize(result: RunResult) -> str:
    m = result.manifest
    lines = [
        f"sharded {m['rows_in']:,} examples into {m['config']['data_root']}/shards/{m['run_id']}/"
    ]
    for split, info in m["splits"].items():
        lines.append(
            f"  {split:<5} {info['rows']:>10,} rows  {info['files']:>3} files  {info['row_groups']:>3} row groups  "
            f"{info['bytes'] / 1e6:8.1f} MB  balance max/min {info['balance_ratio']}"
        )
    lines.append(f"shard manifest: {m['shard_manifest']}\nmanifest: {result.manifest_path}")
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("shard", ShardConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
