"""cartwheel rank: the second stage's candidate lists, and a ranker fitted on them with Horovod.

For run date D, after label and train. Every generator of ``--generators`` (item-kNN, ALS,
buy-again, co-occurrence, popularity, recent popularity; each with the setting chosen on the val
split exactly as evaluate tunes its baselines, or the one a rank run of the last
``--retune-days`` nights chose that way, so a run of nights tunes once a week) lists its top
``--depth`` items for each user with a target after a cutoff, from the events before it, over
the same candidate items (the two-tower's sellable vocabulary) and exclusion rule as evaluate.
The cutoffs are the val start (the val targets label its lists) and the ``--fit-days`` days
before it (each labelled by that day's train targets, every generator refitted on the events
before it); the fit cutoffs that the night before listed the same way from the same clean
events are taken from its lists (``--carry-lists``), so a run of nights builds one cutoff's.
``pipelines.candidates`` merges each user's lists into one row per (user, item) with its
feature vector.

The lists go to ``ranker/dt=D/split=select/`` (the val-start lists of ``--selection-share`` of
the val users, chosen by a hash of the user) and ``split=fit/`` (every cutoff's lists of the
other users), as a multiple of ``--num-proc`` files of whole lists. ``--num-proc`` workers
(``horovod.spark.run`` over Gloo, or ``TorchDistributor``) each read their own files with
Petastorm and fit ``pipelines.ranker`` with a listwise loss; the epoch with the best recall@K
on the selection lists is kept, logged to MLflow with its feature names, generators and their
settings, and registered as ``--ranker-name`` with alias ``--alias``.

The two-tower is not a generator here: it was trained on the days before the val start, so
at those cutoffs its lists would be in-sample and the ranker would learn to trust it more than
it deserves.

Why this entry point is over 400 lines: besides its flags it holds the order of the step's
Spark work (tuning or an earlier night's choice, lists per cutoff, what is kept and released),
the layout of the list files the workers read, and the MLflow run around the fit, each a
function of its own; the logic (features, network, fitting loop) lives in
``pipelines/candidates.py`` and ``pipelines/ranker.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import evaluate as EV
from jobs.clean import MARKER as CLEAN_MARKER
from jobs.runtime import layout, registry, scoring
from jobs.runtime.config import AtLeast1, DatedStepConfig, NonNegative, opt, step_config
from jobs.runtime.lists import Held, generator_lists
from jobs.runtime.manifest import RunResult, StepRun, code_version
from jobs.runtime.readers import date_window, read_catalog, read_clean_events
from jobs.runtime.registry import ModelUri
from jobs.runtime.scoring import AUTO_EXCLUDE, EXCLUDE_HELP, ExcludeRule
from jobs.runtime.step import format_counts, run_cli, staging_area
from jobs.runtime.storage import Storage, join, local_path, uri
from jobs.runtime.training import (
    LAUNCHERS,
    RankerSpec,
    launch,
    local_threads,
    ranker_horovod_worker,
    ranker_torch_worker,
)
from jobs.shard import describe_split
from pipelines import baselines as B
from pipelines import candidates as C
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import ranker as R
from pipelines import schemas as S
from pipelines import shard as SH
from pipelines.errors import ConfigError, InputError

log = logging.getLogger("cartwheel")
MB = 1024 * 1024
FIT, SELECT = "fit", "select"
GENERATORS: tuple[str, ...] = (
    B.ITEM_KNN, B.ALS_METHOD, B.BUY_AGAIN, B.COOCCURRENCE, B.POPULARITY, B.RECENT_POPULARITY,
)  # fmt: skip
# A list file of about this size (a candidate row: its features and ids).
TARGET_FILE_BYTES = 128 * MB


@step_config
class RankConfig(DatedStepConfig, R.RankerSettings, R.FitSettings):
    """Flags of ``cartwheel rank``."""

    model_uri: ModelUri = opt(
        default="models:/cartwheel-two-tower@candidate",
        help="the two-tower whose sellable vocabulary items are the candidates",
    )
    generators: tuple[str, ...] = opt(
        default=GENERATORS, help="the generators whose lists are candidates"
    )
    depth: AtLeast1 = opt(default=50, help="items each generator proposes per user")
    fit_days: NonNegative = opt(
        default=4,
        help="days before the val start whose lists (labelled by that day's train targets) are "
        "also fitted on",
    )
    selection_share: float = opt(
        default=0.2, help="share of the val users whose val-start lists choose the epoch"
    )
    exclude: ExcludeRule = opt(default=AUTO_EXCLUDE, help=EXCLUDE_HELP)
    tune_generators: bool = opt(
        default=True,
        help="choose each generator's settings on the val split as evaluate tunes its "
        "baselines; --no-tune-generators: the defaults",
    )
    retune_days: NonNegative = opt(
        default=7,
        help="reuse the generator settings that the latest rank run of the N days before the "
        "run date used, when they were chosen on a val split at most N days ago (same "
        "generators, grids, metric, exclusion rule and defaults), instead of tuning again: "
        "nights tune once every N days; 0 tunes every run",
    )
    launcher: str = opt(default="horovod", help=f"worker launcher: {', '.join(LAUNCHERS)}")
    num_proc: AtLeast1 = opt(default=2, help="fitting workers")
    experiment: str = opt(default="cartwheel", help="MLflow experiment")
    ranker_name: str = opt(default="cartwheel-ranker", help="registered model name of the ranker")
    alias: str = opt(default="candidate", help="registry alias given to the new ranker version")
    carry_lists: bool = opt(
        default=True,
        help="take the lists at the fit cutoffs from the night before's rank run where it built "
        "them the same way (generators, settings, depth, exclusion, features, selection users) "
        "from the same clean events, labelled by one day's targets; --no-carry-lists builds "
        "every cutoff",
    )
    reuse_lists: bool = opt(
        default=False,
        help="fit again on the lists this date's last rank run published (with their "
        "generators, settings, depth, cutoffs and exclusion rule), without rebuilding them: "
        "to try network and fitting settings quickly, judged on the same selection lists",
    )

    def validate(self) -> None:
        super().validate()
        self.validate_ranker()
        self.validate_fit()
        unknown = [g for g in self.generators if g not in E.BASELINES]
        if unknown or not self.generators:
            raise ConfigError(
                f"invalid config value generators={list(self.generators)}: give one or more of "
                f"{', '.join(E.BASELINES)}"
                + (
                    " (the two-tower is not a generator: see `cartwheel rank --help`)"
                    if E.MODEL in unknown
                    else ""
                )
            )
        if not 0 < self.selection_share < 1:
            raise ConfigError(
                f"invalid config value selection_share={self.selection_share}: must be in (0, 1)"
            )
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"invalid config value launcher={self.launcher!r}: must be one of {', '.join(LAUNCHERS)}"
            )

    def tuning(self) -> EV.EvaluateConfig:
        """The evaluate config whose val tuning chooses the generators' settings."""
        return EV.EvaluateConfig(
            data_root=self.data_root, run_date=self.run_date, exclude=self.exclude,
            baselines=self.generators, tune_baselines=self.tune_generators,
            gate_baseline=E.BEST_BASELINE,
        )  # fmt: skip


def is_selection_user(share: float, seed: int) -> F.Column:
    """Whether a user's lists choose the epoch (a hash of the user, not a random draw)."""
    return F.pmod(F.xxhash64(F.lit(seed), F.col("user_id")), F.lit(10_000)) < int(share * 10_000)


def cutoff_lists(
    spark: SparkSession,
    storage: Storage,
    config: RankConfig,
    events: DataFrame,
    catalog: DataFrame,
    items: DataFrame,
    chosen: dict[str, B.BaselineSettings],
    defaults: B.BaselineSettings,
    cutoff: dt.date,
    split: str,
    held: Held,
) -> DataFrame:
    """``RANKER_LISTS`` rows (and ``role``: fit or select) of the users with a target of
    ``split`` after ``cutoff`` (for the train split: on the cutoff's own day); each generator
    with its ``chosen`` settings, popularity with ``defaults``."""
    root, day = config.data_root, config.run_date
    targets = EV.read_examples(spark, storage, root, day, split).select(
        "user_id", F.col("target_item_id").alias("item_id"), "target_time"
    )
    if split == L.TRAIN:
        targets = targets.where(F.to_date("target_time") == F.lit(cutoff))
    selection = is_selection_user(config.selection_share, config.seed)
    if split != L.VAL:  # selection users choose the epoch on their val lists only
        targets = targets.where(~selection)
    targets = held.keep(targets.select("user_id", "item_id").distinct())
    users = targets.select("user_id").distinct()
    before = held.keep(events.where(F.col("event_time") < L.day_start(cutoff)))
    f = E.EvalFrames(
        before, users, items, held.keep(E.exclusions_of(before, users, config.exclude)),
        config.depth, cutoff, defaults,
    )  # fmt: skip
    gens = list(config.generators)
    pairs = C.features(
        C.merge(generator_lists(f, gens, chosen, held), gens),
        before, catalog, cutoff, L.DEFAULT_LABEL_WEIGHTS, gens,
    )  # fmt: skip
    relevant = targets.groupBy("user_id").agg(F.count(F.lit(1)).cast("int").alias("relevant"))
    lists = (
        C.labeled(pairs, targets)
        .join(relevant, "user_id", "inner")
        .withColumn("cutoff", F.lit(cutoff))
        .withColumn("group_id", F.xxhash64(F.lit(cutoff.isoformat()), F.col("user_id")))
        .withColumn("role", F.when(selection, F.lit(SELECT)).otherwise(F.lit(FIT)))
    )
    return lists.select(*S.RANKER_LISTS.columns, "role")


def optional_doc(storage: Storage, path: str) -> dict[str, Any] | None:
    """An earlier run's JSON document that this run may reuse, or None when it is missing or
    unreadable (then the run does the work itself, and says why for an unreadable one)."""
    if not storage.exists(path):
        return None
    try:
        doc = storage.read_json(path)
    except (OSError, ValueError) as exc:
        log.warning("[rank] %s is unreadable (%s): not reused", path, exc)
        return None
    return doc if isinstance(doc, dict) else None


def reusable_choice(entry: Any, grid: list[dict[str, Any]], metric: str) -> bool:
    """Whether a tuning record's entry for one generator ({chosen, tried, chosen_for}) chose
    one of ``grid``'s points after trying exactly ``grid`` on ``metric``."""
    if not isinstance(entry, dict) or not {"chosen", "tried", "chosen_for"} <= set(entry):
        return False
    tried = [{k: v for k, v in point.items() if k != metric} for point in entry["tried"]]
    return tried == grid and entry["chosen"] in grid


def earlier_tuning(
    storage: Storage, config: RankConfig, defaults: dict[str, Any], metric: str
) -> tuple[dict[str, Any], dt.date] | None:
    """(generator -> {chosen, tried, chosen_for, from}, the run date it is taken from): the val
    tuning of the latest rank run in the ``retune_days`` days before the run date, when it fits
    this run (it succeeded with the same exclusion rule, tuning ``defaults`` and ``metric``, and
    every generator with a grid was chosen over today's grid, on the val split of a run date
    at most ``retune_days`` days back); None when there is no such run, or it does not fit."""
    grids = {g: E.GRIDS[g] for g in config.generators if g in E.GRIDS}
    if not config.tune_generators or config.retune_days == 0 or not grids:
        return None
    for back in range(1, config.retune_days + 1):
        day = config.run_date - dt.timedelta(days=back)
        path = layout.manifest(config.data_root, day, "rank")
        if not storage.exists(path):
            continue
        m = optional_doc(storage, path) or {}
        tuning = m.get("tuning") or {}
        methods = tuning.get("methods", {})
        fits = (
            m.get("status") == "succeeded"
            and m.get("config", {}).get("exclude") == config.exclude
            and m.get("tuning_defaults") == defaults
            and tuning.get("metric") == metric
            and all(reusable_choice(methods.get(g), grid, metric) for g, grid in grids.items())
        )
        if not fits:
            return None  # the latest run decides: an older one is no fresher
        chosen_for = [dt.date.fromisoformat(methods[g]["chosen_for"]) for g in grids]
        if not all(0 < (config.run_date - d).days <= config.retune_days for d in chosen_for):
            return None  # chosen too long ago (or for a later night): time to tune again
        return {g: {**methods[g], "from": f"cartwheel rank of {day}"} for g in grids}, day
    return None


def item_events_before(events: DataFrame, cutoff: dt.date) -> bool:
    """Whether any item event precedes ``cutoff`` (one row at most reaches the driver)."""
    before = events.where(
        (F.col("event_time") < L.day_start(cutoff)) & F.col("item_id").isNotNull()
    )
    return bool(before.limit(1).count())


def list_cutoffs(
    events: DataFrame, val_start: dt.date, fit_days: int
) -> tuple[list[tuple[dt.date, str]], list[str]]:
    """([(cutoff, split)] to build lists at: the val start, then the ``fit_days`` days before
    it; [the cutoffs skipped]). A cutoff before the log's first item event has nothing to list
    from (ALS, for one, refuses an empty input), so it is skipped; too few lists left is
    ``build_lists``'s error."""
    wanted = [(val_start, L.VAL)] + [
        (val_start - dt.timedelta(days=n), L.TRAIN) for n in range(1, fit_days + 1)
    ]
    kept = [(cut, split) for cut, split in wanted if item_events_before(events, cut)]
    return kept, [cut.isoformat() for cut, split in wanted if (cut, split) not in kept]


def clean_fingerprints(storage: Storage, root: str, days: Sequence[str]) -> dict[str, Any]:
    """Day -> what its clean partition was made from (the raw files' fingerprint and the rules,
    from its ``_cleaned.json``; None for a day without one)."""
    out: dict[str, Any] = {}
    for day in days:
        marker = optional_doc(
            storage, join(layout.clean_events(root), layout.partition(day), CLEAN_MARKER)
        )
        out[day] = [marker.get("raw_fingerprint"), marker.get("rules")] if marker else None
    return out


def carried_cutoffs(
    earlier: dict[str, Any],
    basis: dict[str, Any],
    wanted: Sequence[dt.date],
    clean_now: dict[str, Any],
) -> list[dt.date]:
    """Of ``wanted`` (tonight's fit cutoffs, labelled by that day's train targets), those whose
    lists an earlier night's lists document (``earlier``) holds as tonight would build them:
    on the same ``basis`` (generators, settings, depth, exclusion rule, features, selection
    users), at a cutoff that was a train cutoff there, or its val start when its val split was
    that one day, from the same clean events (every clean day it read has the fingerprint
    ``clean_now`` gives: nothing was cleaned again since)."""
    if any(earlier.get(k) != v for k, v in basis.items()) or not earlier.get("clean_days"):
        return []
    if any(clean_now.get(day) != fp for day, fp in earlier["clean_days"].items()):
        return []
    val_start = earlier["val_start"]
    one_day_val = dt.date.fromisoformat(earlier["test_start"]) - dt.date.fromisoformat(
        val_start
    ) == dt.timedelta(days=1)
    alike = {c for c in earlier["cutoffs"] if c != val_start or one_day_val}
    return [cut for cut in wanted if cut.isoformat() in alike]


def carried_lists(
    spark: SparkSession,
    storage: Storage,
    config: RankConfig,
    basis: dict[str, Any],
    wanted: Sequence[dt.date],
) -> tuple[DataFrame | None, dict[str, Any]]:
    """(the night before's fit lists at the cutoffs ``carried_cutoffs`` allows, with ``role``
    fit, or None; {from, cutoffs} for the manifest, empty when nothing is carried)."""
    if not config.carry_lists or not wanted:
        return None, {}
    before = config.run_date - dt.timedelta(days=1)
    earlier = optional_doc(storage, join(layout.ranker_lists(config.data_root, before), LISTS_DOC))
    if earlier is None:
        return None, {}
    clean_now = clean_fingerprints(storage, config.data_root, list(earlier.get("clean_days", {})))
    cuts = carried_cutoffs(earlier, basis, wanted, clean_now)
    if not cuts:
        return None, {}
    rows = spark.read.parquet(layout.ranker_lists(config.data_root, before, FIT)).where(
        F.col("cutoff").isin(cuts)
    )
    log.info(
        "[rank] the lists at %s are the night before's (%s): same generators, settings and "
        "clean events",
        ", ".join(c.isoformat() for c in cuts), before,
    )  # fmt: skip
    return rows.select(*S.RANKER_LISTS.columns, F.lit(FIT).alias("role")), {
        "from": before.isoformat(),
        "cutoffs": [c.isoformat() for c in cuts],
    }


def list_files(rows: int, lists: int, dim: int, workers: int) -> int:
    """Files of a split: a multiple of ``workers``, about ``TARGET_FILE_BYTES`` each, never more
    files than lists."""
    per_worker = -(-rows * (4 * dim + 80) // (TARGET_FILE_BYTES * workers))
    return workers * max(1, min(per_worker, lists // workers))


def build_lists(
    spark: SparkSession,
    storage: Storage,
    config: RankConfig,
    boundaries: dict[str, dt.date],
    catalog: DataFrame,
    items: DataFrame,
    held: Held,
) -> dict[str, Any]:
    """Tune the generators on val, build the lists at every cutoff and count them per role:
    {lists (kept), stats (role -> rows, lists, positives, lists_with_a_target), settings (per
    generator), tuning, cutoffs}. Too few lists for the workers is an InputError."""
    root, day = config.data_root, config.run_date
    events = read_clean_events(
        spark, storage, root, date_window(day, (day - boundaries["window_start"]).days + 1)
    )
    tuning_config = config.tuning()
    defaults = tuning_config.settings(spark)
    recorded_defaults = dataclasses.asdict(tuning_config.settings_without_blocks())
    val_start = boundaries["val_start"]
    earlier = earlier_tuning(storage, config, recorded_defaults, tuning_config.rules.key)
    chosen, tuning = EV.tune_baselines(
        spark, storage, tuning_config, events, val_start, items, held,
        done=earlier[0] if earlier else None,
    )  # fmt: skip
    if earlier:
        tuning["reused_from"] = earlier[1].isoformat()
    chosen = {g: chosen.get(g, defaults) for g in config.generators}
    cutoffs, skipped = list_cutoffs(events, val_start, config.fit_days)  # main warns of skipped
    basis = {
        "generators": list(config.generators),
        "settings": {g: dataclasses.asdict(chosen[g]) for g in config.generators},
        "depth": config.depth, "exclude": config.exclude,
        "features": C.feature_names(config.generators), "defaults": recorded_defaults,
        "selection": {"share": config.selection_share, "seed": config.seed},
    }  # fmt: skip
    carried, carry = carried_lists(
        spark, storage, config, basis, [cut for cut, split in cutoffs if split == L.TRAIN]
    )
    frames = [
        cutoff_lists(
            spark, storage, config, events, catalog, items, chosen, defaults, cut, split, held
        )
        for cut, split in cutoffs
        if cut.isoformat() not in carry.get("cutoffs", [])
    ] + ([carried] if carried is not None else [])  # fmt: skip
    lists = held.keep(functools.reduce(DataFrame.unionByName, frames))
    counted = lists.groupBy("role").agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("group_id").alias("lists"),
        F.sum("label").cast("long").alias("positives"),
        F.countDistinct(F.when(F.col("label") > 0, F.col("group_id"))).alias("lists_with_a_target"),
    )
    stats = {
        r["role"]: {k: v for k, v in r.asDict().items() if k != "role"} for r in counted.collect()
    }
    for role in (FIT, SELECT):
        found = stats.get(role, {}).get("lists", 0)
        if found < config.num_proc:
            raise InputError(
                f"the ranker's {role} split has {found} lists, fewer than the {config.num_proc} "
                f"workers (val users and train targets of the {config.fit_days} days before "
                f"{val_start} in {layout.examples(root, day)})"
            )
    log.info(
        "[rank] lists: %s", "; ".join(f"{r}: {format_counts(s)}" for r, s in sorted(stats.items()))
    )
    window = [  # every clean day the generators read (the test days' too: late events)
        (boundaries["window_start"] + dt.timedelta(days=n)).isoformat()
        for n in range((day - boundaries["window_start"]).days + 1)
    ]
    return {
        "lists": lists, "stats": stats, "tuning": tuning, **basis,
        "cutoffs": [c.isoformat() for c, _ in cutoffs], "cutoffs_skipped": skipped,
        "cutoffs_carried": carry,
        # what a later night compares before it carries these lists (carried_cutoffs)
        "val_start": val_start.isoformat(), "test_start": boundaries["test_start"].isoformat(),
        "clean_days": clean_fingerprints(storage, root, window),
    }  # fmt: skip


LISTS_DOC = "_lists.json"  # beside the split folders: what the lists were built with


def reused_lists(
    storage: Storage, config: RankConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """(what ``build_lists`` returns, without the frame; each split's files, rows and bytes;
    the URIs the workers read) of the lists this date's last rank run published. InputError
    when there are none, or when they do not fit this config's generators or workers."""
    folder = layout.ranker_lists(config.data_root, config.run_date)
    doc_path = join(folder, LISTS_DOC)
    if not storage.exists(doc_path):
        raise InputError(
            f"--reuse-lists: no published ranker lists for {config.run_date} ({doc_path} is "
            "missing): run `cartwheel rank` without --reuse-lists first"
        )
    built: dict[str, Any] = storage.read_json(doc_path)
    if built["generators"] != list(config.generators) or built["features"] != C.feature_names(
        config.generators
    ):
        raise InputError(
            f"--reuse-lists: the lists in {folder} were built for the generators "
            f"{', '.join(built['generators'])} (features {', '.join(built['features'])}), not "
            f"{', '.join(config.generators)} with this cartwheel's features: rebuild them"
        )
    described, files = {}, {}
    for role in (FIT, SELECT):
        described[role] = describe_split(storage, join(folder, f"split={role}"))
        files[role] = [uri(f["path"]) for f in described[role]["files"]]
        if not files[role] or len(files[role]) % config.num_proc:
            raise InputError(
                f"--reuse-lists: {join(folder, f'split={role}')} holds {len(files[role])} files, "
                f"not a multiple of the {config.num_proc} workers: rebuild the lists with "
                f"--num-proc {config.num_proc}"
            )
    log.info("[rank] reusing the lists of %s (cutoffs %s)", folder, ", ".join(built["cutoffs"]))
    return built, described, files


def write_lists(
    storage: Storage, config: RankConfig, built: dict[str, Any], dim: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Write each role's lists as files of whole lists, and ``LISTS_DOC`` (what they were built
    with), via staging and publish the run date's partition; (each split's files, rows and
    bytes; the URIs the workers read, per role)."""
    root, day = config.data_root, config.run_date
    lists, stats = built["lists"], built["stats"]
    target, part_name = layout.ranker_lists(root, day), layout.partition(day)
    described: dict[str, Any] = {}
    files: dict[str, list[str]] = {}
    with staging_area(storage, root, "rank") as staging:
        staged = join(staging, "ranker", part_name)
        for role in (FIT, SELECT):
            s = stats[role]
            count = list_files(s["rows"], s["lists"], dim, config.num_proc)
            out = join(staged, f"split={role}")
            rows = S.RANKER_LISTS.select(lists.where(F.col("role") == role))
            (
                SH.deal_lists(rows, count, s["lists"], config.seed)
                .write.option("parquet.block.size", 32 * MB)
                .parquet(out)
            )
            described[role] = describe_split(storage, out)
            if len(described[role]["files"]) != count or described[role]["rows"] != s["rows"]:
                raise InputError(
                    f"the ranker's {role} split: wrote {len(described[role]['files'])} files "
                    f"of {described[role]['rows']} rows, expected {count} of {s['rows']}"
                )
            # the paths the workers read: where the files are once published
            files[role] = [
                uri(f["path"].replace(staged, target, 1)) for f in described[role]["files"]
            ]
        storage.write_json(
            join(staged, LISTS_DOC), {k: v for k, v in built.items() if k != "lists"}
        )
        storage.publish_partitions(join(staging, "ranker"), layout.ranker_root(root), [part_name])
    return described, files


def fit_and_register(
    spark: SparkSession,
    config: RankConfig,
    files: dict[str, list[str]],
    info: dict[str, Any],
    tuning: dict[str, Any],
    work: str,
) -> dict[str, Any]:
    """Fit the ranker with ``config.num_proc`` workers inside an MLflow run, log and register
    it; the workers' outcome with ``mlflow_run_id``, ``ranker_uri`` and ``model_version``."""
    import mlflow

    root, names = config.data_root, info["feature_names"]
    tracking_uri = registry.default_tracking_uri(root)
    mlflow.set_tracking_uri(tracking_uri)
    active = mlflow.start_run(
        experiment_id=registry.experiment_id(mlflow, config.experiment, root),
        run_name=f"rank-{config.run_date.isoformat()}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
    )
    try:
        mlflow.log_params({f"config.{k}": v for k, v in config.to_record().items()})
        mlflow.set_tags({"cartwheel.step": "rank", "cartwheel.code_version": code_version(),
                         "cartwheel.two_tower": info["two_tower"]})  # fmt: skip
        mlflow.log_dict({"features": names, "generators": info["generator_settings"],
                         "tuning": tuning}, "ranker/candidates.json")  # fmt: skip
        spec = RankerSpec(
            files=files, dim=len(names),
            ranker={f.name: getattr(config, f.name) for f in dataclasses.fields(R.RankerSettings)},
            fit=dataclasses.asdict(config.fit_settings()),
            output=os.path.join(work, "ranker.pt"), error_dir=os.path.join(work, "_errors"),
            tracking_uri=tracking_uri, mlflow_run_id=active.info.run_id,
            threads=local_threads(spark, config.num_proc),
        )  # fmt: skip
        log.info(
            "[rank] fitting a %s ranker on %s features with %d %s workers",
            config.kind, len(names), config.num_proc, config.launcher,
        )  # fmt: skip
        outcome = launch(
            config.launcher, config.num_proc, spec, ranker_horovod_worker, ranker_torch_worker
        )
        ranker = R.Ranker(len(names), R.RankerSettings(**spec.ranker))
        ranker.load_state_dict(torch.load(spec.output, map_location="cpu")["state"])
        mlflow.log_metrics({
            f"ranker.best_selection_recall_at_{config.selection_k}": outcome["best_selection_recall"],
            "ranker.best_epoch": outcome["best_epoch"],
        })  # fmt: skip
        ranker_uri, version = registry.log_ranker(
            mlflow, ranker, info, config.ranker_name, config.alias
        )
        mlflow.end_run()
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    return {**outcome, "mlflow_run_id": active.info.run_id, "ranker_uri": ranker_uri,
            "model_version": version}  # fmt: skip


def main(spark: SparkSession, config: RankConfig) -> RunResult:
    """Build the night's candidate lists, fit the ranker on them, log and register it."""
    storage, run = Storage(spark), StepRun(spark, "rank", config)
    root, day = config.data_root, config.run_date
    work = local_path(layout.ranker_work(root, day))
    if work is None:
        raise ConfigError(f"rank needs a local (or mounted) data root for its workers: {root}")
    with run:
        config = run.config = scoring.with_resolved_exclude(storage, config)
        b = EV.read_boundaries(storage, root, day)
        catalog = read_catalog(spark, storage, root)
        registry.configure_tracking(root)
        model = registry.resolve(config.model_uri)
        mask, counts = scoring.sellable_candidates(spark, model, catalog)
        names = C.feature_names(config.generators)
        if config.reuse_lists:
            built, described, files = reused_lists(storage, config)
        else:
            held = Held("rank")
            try:
                items = held.keep(scoring.candidate_items(spark, model, mask))
                built = build_lists(spark, storage, config, b, catalog, items, held)
                described, files = write_lists(storage, config, built, len(names))
            finally:
                held.release()
        stats = built["stats"]
        if built.get("cutoffs_skipped"):
            run.warn(
                f"no item events before the cutoff(s) {', '.join(built['cutoffs_skipped'])} in "
                f"the window: the ranker was fitted on the lists at {', '.join(built['cutoffs'])} "
                "only (a longer log, or fewer --fit-days, avoids this)"
            )
        info = {
            "feature_names": names, "generators": built["generators"],
            "generator_settings": built["settings"], "depth": built["depth"],
            "exclude": built["exclude"], "two_tower": model.uri, "run_date": day.isoformat(),
            # evaluate reuses this val tuning when it would tune with the same defaults
            "tuning": built["tuning"], "defaults": built.get("defaults"),
        }  # fmt: skip
        fitted = fit_and_register(spark, config, files, info, built["tuning"], work)
        k = config.selection_k
        run.inputs = (
            [layout.ranker_lists(root, day)]
            if config.reuse_lists
            else [layout.examples(root, day), layout.clean_events(root), config.model_uri]
        )
        run.outputs = [
            layout.ranker_lists(root, day), fitted["ranker_uri"],
            f"models:/{config.ranker_name}@{config.alias}",
        ]  # fmt: skip
        run.record(
            rows_in=sum(stats[r]["rows"] for r in (FIT, SELECT)),
            rows_out=sum(described[r]["rows"] for r in (FIT, SELECT)),
        )
        run.extra = {
            "lists": {r: {**stats[r], "files": len(files[r])} for r in (FIT, SELECT)},
            "cutoffs": built["cutoffs"], "cutoffs_skipped": built.get("cutoffs_skipped", []),
            "cutoffs_carried": built.get("cutoffs_carried", {}),
            "features": names,
            "generator_settings": built["settings"], "tuning": built["tuning"],
            # what a later night compares before it reuses this tuning (--retune-days)
            "tuning_defaults": built.get("defaults"),
            "candidate_items": counts["candidate_items"],
            "mlflow_run_id": fitted["mlflow_run_id"], "ranker_uri": fitted["ranker_uri"],
            "registered_model": config.ranker_name, "model_version": fitted["model_version"],
            "alias": config.alias, "reused_lists": config.reuse_lists,
            "best_epoch": fitted["best_epoch"],
            f"best_selection_recall_at_{k}": fitted["best_selection_recall"],
            "stopped_early": fitted["stopped_early"], "fitted_on": fitted["fit"],
            "epochs": fitted["history"],
        }  # fmt: skip
    return run.result()


def summarize(result: RunResult) -> str:
    m = result.manifest
    k = m["config"]["selection_k"]
    lines = [
        f"ranked candidates of {', '.join(m['config']['generators'])} at cutoffs {', '.join(m['cutoffs'])}"
    ]
    if m.get("cutoffs_carried"):
        c = m["cutoffs_carried"]
        lines.append(f"  lists at {', '.join(c['cutoffs'])} carried from the night of {c['from']}")
    for role, s in m["lists"].items():
        lines.append(
            f"  {role:<6} {s['lists']:>8,} lists  {s['rows']:>10,} candidates  "
            f"{s['lists_with_a_target']:>8,} lists with a target among them  {s['files']} files"
        )
    for e in m["epochs"]:
        lines.append(
            f"  epoch {e['epoch']}: loss {e['loss']:.4f}  selection recall@{k} "
            f"{e[f'selection_recall_at_{k}']:.4f}"
        )
    lines += [
        f"best epoch {m['best_epoch']}: selection recall@{k} {m[f'best_selection_recall_at_{k}']:.4f}",
        f"ranker: {m['ranker_uri']}  (models:/{m['registered_model']}@{m['alias']})",
        f"manifest: {result.manifest_path}",
    ]
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("rank", RankConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
