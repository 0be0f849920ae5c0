"""cartwheel label: clean events -> next-item training examples, split by time.

Reads ``clean/events/`` for the ``--lookback-days`` ending at ``--run-date``; writes
``examples/split=train|val|test/`` (Parquet), ``examples/_meta.json`` (history length, split
boundaries, vocabulary sizes), ``vocab/items/`` and ``vocab/categories/`` (index tables with
counts) and ``_runs/<run-date>/label.json``. Every clean event is a target, in some history
only, or filtered with a reason; the manifest counts each.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from jobs.runtime import layout
from jobs.runtime.config import DatedStepConfig, step_config
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import (
    clean_events_bytes,
    date_window,
    naming_bad_files,
    read_clean_events,
)
from jobs.runtime.session import shuffle_sized_for
from jobs.runtime.step import format_counts, run_cli, staging_area
from jobs.runtime.storage import Storage, join
from pipelines import label as L
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")
# Vocabularies up to this many items are broadcast to the tasks (~100 MB at 2M items).
BROADCAST_VOCAB_MAX = 2_000_000
NO_HISTORY_HINT = (
    "with --history-cutoff day (the default) a target's history holds only the user's events of "
    "earlier days, so a log where each user is one session (one day) leaves none: for session "
    "data use --history-cutoff event"
)


@step_config
class LabelConfig(DatedStepConfig, L.LabelRules):
    """Flags of ``cartwheel label``: the window and the labelling rules."""

    def validate(self) -> None:
        DatedStepConfig.validate(self)
        L.LabelRules.validate(self)


def main(spark: SparkSession, config: LabelConfig) -> RunResult:
    """Label the window ending at ``config.run_date`` and publish examples + vocabularies."""
    storage = Storage(spark)
    run = StepRun(spark, "label", config)
    root = config.data_root
    bounds = config.boundaries(config.run_date)
    with run:
        days = date_window(config.run_date, config.lookback_days)
        # Not persisted: the vocabulary and the labelling pass each scan the few columns they
        # need from the Parquet, which costs less than building a cache of the whole window.
        events = read_clean_events(spark, storage, root, days)
        with shuffle_sized_for(spark, clean_events_bytes(storage, root, days), "label"):
            items = per_item = None
            try:
                with naming_bad_files("clean events"):  # the first action opens every file
                    rows_in = events.count()
                if rows_in == 0:
                    raise InputError(
                        f"no clean events in {days[0]} .. {days[-1]} under {layout.clean_events(root)}"
                    )
                run.inputs = [layout.clean_events(root)]
                log.info(
                    "[label] %s clean events in %s .. %s; building the vocabulary",
                    f"{rows_in:,}",
                    days[0],
                    days[-1],
                )
                # the per-item counts once (build_vocab reads them several times), then the table
                per_item = L.item_counts(events, config, config.run_date).persist(
                    StorageLevel.MEMORY_AND_DISK
                )
                items = L.build_vocab(per_item).persist(StorageLevel.MEMORY_AND_DISK)
                n_items = items.count()
                if n_items == 0:
                    raise InputError(
                        f"the vocabulary has no items: no catalog item was seen {config.min_item_count}+ times "
                        f"in the train period {bounds['window_start']} .. {bounds['val_start']} (exclusive)"
                    )
                categories = L.vocab_categories(items)
                n_categories = categories.count()
                # One pass: the examples are written while the same pass counts every event's
                # disposition (an observation), so the labelled window is neither cached nor
                # computed twice. The checks run on the counts before anything is published.
                labeled, observation = L.observe_dispositions(
                    L.label_events(
                        events,
                        items,
                        config,
                        config.run_date,
                        broadcast_vocab=n_items <= BROADCAST_VOCAB_MAX,
                    )
                )
                part = layout.partition(config.run_date)
                with staging_area(storage, root, "label") as staging:
                    staged_examples = join(staging, "examples", part)
                    log.info("[label] labelling and writing the examples")
                    L.examples(labeled, config.history_length).write.partitionBy("split").parquet(
                        staged_examples
                    )
                    counts = L.disposition_counts(observation)
                    per_split = {
                        s: sum(
                            c["rows"]
                            for c in counts
                            if c["disposition"] == L.TARGET and c["split"] == s
                        )
                        for s in L.SPLITS
                    }
                    totals = disposition_totals(counts)
                    if per_split[L.TRAIN] == 0:
                        removed = {r: totals[r] for r in L.FILTER_REASONS if totals.get(r)}
                        raise InputError(
                            f"no training examples: no target event ({', '.join(config.target_types)}) before "
                            f"{bounds['val_start']} has an in-vocabulary item and a history (of "
                            f"{rows_in:,} clean events, filtered: {format_counts(removed)})"
                            + (
                                f"; {NO_HISTORY_HINT}"
                                if totals.get(L.NO_HISTORY) and config.history_cutoff == "day"
                                else ""
                            )
                        )
                    log.info("[label] examples per split: %s", format_counts(per_split))
                    meta = {
                        "run_date": config.run_date.isoformat(),
                        "history_length": config.history_length,
                        "boundaries": {k: v.isoformat() for k, v in bounds.items()},
                        "num_items": n_items + L.FIRST_INDEX,
                        "num_categories": n_categories + L.FIRST_INDEX,
                        "num_event_types": max(L.TYPE_INDEX.values()) + 1,
                        "padding_index": L.PAD,
                        "oov_index": L.OOV,
                        "type_index": L.TYPE_INDEX,
                        "examples": per_split,
                    }
                    # the target counts from the written examples (two small columns)
                    written = spark.read.parquet(staged_examples)
                    L.with_target_counts(items, written).orderBy("item_idx").coalesce(
                        1
                    ).write.parquet(join(staging, "vocab", part, "items"))
                    categories.coalesce(1).write.parquet(join(staging, "vocab", part, "categories"))
                    storage.write_json(join(staged_examples, "_meta.json"), meta)
                    # only this run date's folders change: other nights' examples stay as they were
                    storage.publish_partitions(
                        join(staging, "examples"), layout.examples_root(root), [part]
                    )
                    storage.publish_partitions(
                        join(staging, "vocab"), layout.vocab_root(root), [part]
                    )
            finally:
                for frame in (items, per_item):
                    if frame is not None:
                        frame.unpersist()

        run.outputs = [layout.examples(root, config.run_date), layout.vocab(root, config.run_date)]
        run.record(
            rows_in=rows_in,
            rows_out=totals.get(L.TARGET, 0),
            filtered={r: totals.get(r, 0) for r in L.FILTER_REASONS},
            consumed={L.HISTORY_ONLY: totals.get(L.HISTORY_ONLY, 0)},
            hints={L.NO_HISTORY: NO_HISTORY_HINT} if config.history_cutoff == "day" else {},
        )
        run.extra = {"examples": per_split, **{k: v for k, v in meta.items() if k != "examples"}}
    return run.result()


def disposition_totals(counts: list[dict[str, Any]]) -> dict[str, int]:
    """Rows per disposition (target, history only, each filter reason) over days and splits."""
    totals: dict[str, int] = {}
    for c in counts:
        totals[c["disposition"]] = totals.get(c["disposition"], 0) + c["rows"]
    return totals


def summarize(result: RunResult) -> str:
    m: dict[str, Any] = result.manifest
    return (
        f"labelled {m['rows_in']:,} clean events: {m['rows_out']:,} examples "
        f"({format_counts(m['examples'])}), {m['rows_consumed'].get(L.HISTORY_ONLY, 0):,} used in histories only\n"
        f"filtered: {format_counts(m['rows_filtered'])}\n"
        f"vocabulary: {m['num_items']:,} item indices, {m['num_categories']:,} category indices; "
        f"history length {m['history_length']}\n"
        f"splits: train < {m['boundaries']['val_start']} <= val < {m['boundaries']['test_start']} <= test <= {m['run_date']}\n"
        f"manifest: {result.manifest_path}"
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("label", LabelConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
