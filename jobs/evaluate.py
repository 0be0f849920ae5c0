"""cartwheel evaluate: the model vs what a Spark user would build instead, on future targets.

For the run date's label window (``examples/dt=D/_meta.json``): the evaluated users are those with a
test-split example; their relevant items are their test targets. Every method ranks K items per
user from what was known *before the test period* (the model scores histories cut at the test
start; the baselines are fit on the window's events before it), with the same candidates (the
model's vocabulary items that are sellable) and the same exclusions (``--exclude``):

  model               the model under evaluation (``--model-uri``, default ...@candidate)
  champion            the model the ``--champion-alias`` points at, when it is another version
  ranked              with ``--ranker-uri``: a ranker ``cartwheel rank`` registered, ordering the
                      candidates its generators (with the settings it was fitted with) propose
                      from the same events, candidates and exclusions (``jobs/runtime/lists.py``)
  champion_ranked     with ``--ranker-uri``: the lists of the ranker the ``--champion-alias``
                      points at, when it is another version (the ranker that serves now)
  popularity, recent_popularity, cooccurrence, item_knn, buy_again, als
                      (see ``pipelines/baselines.py``), each first tuned on the val split
                      (``--tune-baselines``: lists built before the val start for the val users,
                      the best point of its grid in ``pipelines/evaluation.py: GRIDS``)

Metrics (Recall, NDCG, MAP, HitRate at each ``--ks``, and coverage) are computed in Spark, with
95 % Poisson-bootstrap intervals over the users for the promotion metric, recall@20 and ndcg@10
(each method also paired with the model), and written to ``reports/dt=D/metrics.json``, ``reports/dt=D/report.md`` and
``reports/dt=D/recall_at_k.svg``, and logged to MLflow as an evaluation run under the model's
training run. Then the champion alias moves to the evaluated version only if it beats the
current champion on ``--promotion-metric`` at ``--promotion-k``. With the ranked lists judged,
the gate also fails when they lose to the champion ranker's lists by more than
``--champion-tolerance`` with a paired interval that excludes a tie
(``pipelines/evaluation.py: against_champion_ranker``).

Why this entry point is longer than the others: besides reading and writing it holds the order
of an evaluation's Spark work (what is persisted and released, tuning before test lists, the
intervals), which ``pipelines/evaluation.py`` cannot own because it touches files and the
registry; the decisions themselves (grids, gate, promotion, verdicts) live there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout, next_click, registry, scoring
from jobs.runtime.config import (
    AtLeast1,
    DatedStepConfig,
    NonNegative,
    NonNegativeFloat,
    Tolerance,
    opt,
    step_config,
)
from jobs.runtime.lists import Held, ranked_lists, ranked_top, search_grid
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import date_window, read_catalog, read_clean_events
from jobs.runtime.registry import ModelUri
from jobs.runtime.render import metrics_view, recall_svg, render
from jobs.runtime.scoring import (
    AUTO_EXCLUDE,
    EXCLUDE_HELP,
    PRECISION_HELP,
    ExcludeRule,
    Precision,
)
from jobs.runtime.session import default_parallelism
from jobs.runtime.step import run_cli
from jobs.runtime.storage import Storage, join
from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import metrics as Mx
from pipelines import recs as R
from pipelines import schemas as S
from pipelines.errors import ConfigError, InputError, QualityGateError

log = logging.getLogger("cartwheel")
CHAMPION_ALIAS = "champion"
USER_LISTS, NEXT_CLICK = "user-lists", "next-click"


@step_config
class EvaluateConfig(DatedStepConfig):
    """Flags of ``cartwheel evaluate``."""

    model_uri: ModelUri = opt(
        default="models:/cartwheel-two-tower@candidate",
        help="model to evaluate: models:/NAME@ALIAS or /VERSION",
    )
    ranker_uri: ModelUri | None = opt(
        default=None,
        help="a registered ranker (cartwheel rank: models:/cartwheel-ranker@candidate) whose "
        "lists over its generators' candidates are measured as the method 'ranked'",
    )
    champion_alias: str = opt(
        default=CHAMPION_ALIAS, help="alias of the serving model (moved on promotion)"
    )
    ks: tuple[AtLeast1, ...] = opt(default=(10, 20, 50), help="cut-offs K of every metric")
    exclude: ExcludeRule = opt(default=AUTO_EXCLUDE, help=EXCLUDE_HELP)
    precision: Precision = opt(default="float32", help=PRECISION_HELP)
    promotion_metric: str = opt(default="recall", help="recall, ndcg, map or hit_rate")
    promotion_k: AtLeast1 = opt(default=20, help="K of the promotion metric")
    promote: bool = opt(
        default=True, help="move the champion alias when the model wins (--no-promote: report only)"
    )
    baselines: tuple[str, ...] = opt(
        default=(
            B.POPULARITY, B.RECENT_POPULARITY, B.COOCCURRENCE, B.ITEM_KNN, B.BUY_AGAIN,
            B.ALS_METHOD,
        ),
        help="baselines to compute",
    )  # fmt: skip
    tune_baselines: bool = opt(
        default=True,
        help="choose each baseline's settings on the val split (lists built before the val "
        "start, scored on the promotion metric) before measuring it on test; "
        "--no-tune-baselines: the defaults",
    )
    recent_days: AtLeast1 = opt(
        default=2,
        help="days before the test start that recent_popularity counts (the default; tuned on val "
        "unless --no-tune-baselines)",
    )
    als_rank: AtLeast1 = opt(default=32, help="ALS factors (the default; tuned on val likewise)")
    als_iterations: AtLeast1 = opt(default=10, help="ALS iterations")
    als_blocks: NonNegative = opt(
        default=0,
        help="ALS user and item blocks (0: the session's default parallelism; Spark's own "
        "default, 10, makes many idle tasks per iteration on a small cluster)",
    )
    seed: int = opt(default=0, help="seed of ALS and of the bootstrap resamples")
    bootstrap_replicates: NonNegative = opt(
        default=200,
        help="Poisson-bootstrap resamples of the test users behind each 95% interval (the "
        "promotion metric, recall@20 and ndcg@10) and each paired difference to the model; "
        "0: no intervals",
    )
    champion_tolerance: Tolerance = opt(
        default=0.0,
        help="promote when the model's promotion metric is at least (1 - this) x the champion's "
        "(a model trained on fresher data may win a near tie); 0: it must beat the champion. "
        "With --ranker-uri: the gate fails when the ranked lists are below (1 - this) x the "
        "champion ranker's, with a paired interval that excludes a tie",
    )
    gate_baseline: str = opt(
        default=B.POPULARITY,
        help="baseline the model must reach on the promotion metric to pass; best: the "
        "strongest computed baseline",
    )
    gate_min_ratio: NonNegativeFloat = opt(
        default=1.0,
        help="the step fails (and promotes nothing) unless the model's promotion metric is at "
        "least this times the gate baseline's; 0 turns the gate off",
    )
    gate_min_warm_users: NonNegative = opt(
        default=200,
        help="the gate fails when fewer test users than this had item events before the test "
        "start (on cold users every method falls back to popularity: nothing is measured)",
    )

    next_click: bool = opt(
        default=False,
        help="also judge item -> item lists on next clicks: the model's item_similar against "
        "item-kNN, co-occurrence, ALS and popularity neighbours (each tuned on the val days), "
        "on every step of the test days' sessions (HR@K, MRR@K; the report's next-click section)",
    )
    gate_on: str = opt(
        default=USER_LISTS,
        help=f"what the quality gate and the promotion judge: {USER_LISTS} (each test user's "
        f"list) or {NEXT_CLICK} (needs --next-click: the model's item_similar on next clicks, "
        "with gate-min-warm-users counting test queries whose item was seen before the test "
        "days); the sessions profile's choice, where every test user is a new session",
    )

    def validate(self) -> None:
        super().validate()
        if self.gate_on not in (USER_LISTS, NEXT_CLICK):
            raise ConfigError(
                f"invalid config value gate_on={self.gate_on!r}: {USER_LISTS} or {NEXT_CLICK}"
            )
        if self.gate_on == NEXT_CLICK and not self.next_click:
            raise ConfigError("invalid config: gate_on=next-click needs --next-click")
        if self.gate_min_ratio > 0 and self.gate_baseline not in (*self.baselines, E.BEST_BASELINE):
            raise ConfigError(
                f"invalid config value gate_baseline={self.gate_baseline!r}: must be one of the "
                f"computed baselines ({', '.join(self.baselines)}) or {E.BEST_BASELINE}"
            )
        if not self.ks:
            raise ConfigError(f"invalid config value ks={self.ks!r}: give one or more K >= 1")
        if self.promotion_metric not in E.PROMOTION_METRICS:
            raise ConfigError(
                f"invalid config value promotion_metric={self.promotion_metric!r}: recall, ndcg, map or hit_rate"
            )
        if self.promotion_k not in self.ks:
            raise ConfigError(
                f"invalid config value promotion_k={self.promotion_k}: must be one of ks {list(self.ks)}"
            )
        unknown = [b for b in self.baselines if b not in E.BASELINES]
        if unknown:
            raise ConfigError(f"invalid config value baselines: unknown {', '.join(unknown)}")

    @property
    def max_k(self) -> int:
        return max(self.ks)

    def settings(self, spark: SparkSession) -> B.BaselineSettings:
        """The baselines' default settings (tuning starts from these)."""
        return dataclasses.replace(
            self.settings_without_blocks(),
            als_blocks=self.als_blocks or default_parallelism(spark),
        )

    def settings_without_blocks(self) -> B.BaselineSettings:
        """The defaults a config fixes (ALS's blocks come from the session when not set)."""
        return B.BaselineSettings(
            recent_days=self.recent_days, als_rank=self.als_rank,
            als_iterations=self.als_iterations, seed=self.seed, als_blocks=self.als_blocks or 0,
        )  # fmt: skip

    @property
    def rules(self) -> E.Rules:
        return E.Rules(
            promotion_metric=self.promotion_metric, promotion_k=self.promotion_k,
            champion_alias=self.champion_alias, champion_tolerance=self.champion_tolerance,
            gate_baseline=self.gate_baseline, gate_min_ratio=self.gate_min_ratio,
            gate_min_warm_users=self.gate_min_warm_users,
            published=E.RANKED if self.ranker_uri else E.MODEL,
        )  # fmt: skip


def read_boundaries(storage: Storage, root: str, run_date: dt.date) -> dict[str, dt.date]:
    """The night's split boundaries (window, val and test starts) from its examples' meta."""
    path = layout.examples_meta(root, run_date)
    if not storage.exists(path):
        raise InputError(
            f"no labelled examples for {run_date} at {layout.examples(root, run_date)}: "
            f"run `cartwheel label --run-date {run_date}` first"
        )
    return {k: dt.date.fromisoformat(v) for k, v in storage.read_json(path)["boundaries"].items()}


def read_examples(
    spark: SparkSession, storage: Storage, root: str, run_date: dt.date, split: str
) -> DataFrame:
    """One split of the night's examples; a missing split is named."""
    path = layout.examples_split(root, run_date, split)
    if not storage.exists(path):
        raise InputError(f"no {split} examples at {path}")
    return spark.read.parquet(path)


def read_targets(
    spark: SparkSession, storage: Storage, root: str, run_date: dt.date, split: str
) -> DataFrame:
    """(user_id, item_id): the targets of one split of the night's examples."""
    return read_examples(spark, storage, root, run_date, split).select(
        "user_id", F.col("target_item_id").alias("item_id")
    )


def model_lists(
    spark: SparkSession,
    model: registry.ResolvedModel,
    mask: np.ndarray,
    f: E.EvalFrames,
    exclude: str,
    method: str,
    held: Held,
    precision: str,
) -> DataFrame:
    """A registered model's top-K for the evaluated users from histories cut at the test start;
    ``mask`` marks its candidates (its own sellable vocabulary items)."""
    item_index = model.item_index(spark)
    popularity = scoring.popularity_order(
        R.item_popularity(f.before, item_index, f.test_start), mask, f.k + 10_000
    )
    inputs = R.scoring_inputs(
        f.before, item_index, f.test_start, model.history_length, exclude, users=f.users
    )
    scored, bc = scoring.score_users(
        spark, inputs, scoring.payload(model, mask, popularity, precision), f.k
    )
    held.broadcasts.append(bc)
    lists = S.RANKED_LISTS.select(scored.withColumn("method", F.lit(method)))
    return held.lists(method, lists)


def all_lists(
    spark: SparkSession,
    config: EvaluateConfig,
    model: registry.ResolvedModel,
    mask: np.ndarray,
    champion: tuple[registry.ResolvedModel, np.ndarray] | None,
    f: E.EvalFrames,
    catalog: DataFrame,
    settings: dict[str, B.BaselineSettings],
    held: Held,
    ranker: registry.ResolvedRanker | None = None,
    champion_ranker: registry.ResolvedRanker | None = None,
) -> tuple[list[DataFrame], dict[str, str], list[str]]:
    """Every method's lists: the model (``mask``: its candidates), the ranker's, the champion
    (``champion``: the other version the alias points at, with its candidates), the champion
    ranker's (likewise) and each baseline of ``config.baselines`` with its ``settings`` (tuned
    on val; the defaults where absent); (lists, labels, the baselines taken from the ranker's
    generator lists instead of built again). A champion ranker this code cannot score (other features) is left out."""
    parts = [model_lists(spark, model, mask, f, config.exclude, E.MODEL, held, config.precision)]
    labels = {E.MODEL: f"model v{model.version}"}
    reused: dict[str, DataFrame] = {}
    taken: list[str] = []
    if ranker is not None:
        ranked, reused = ranked_lists(ranker.model, f, catalog, held, settings)
        parts.append(ranked)
        labels[E.RANKED] = f"ranker v{ranker.version}"
        taken = [name for name in config.baselines if name in reused]
        if taken:
            log.info(
                "[evaluate] %s: the first %d rows of the ranker's generator lists",
                ", ".join(taken), f.k,
            )  # fmt: skip
    if champion_ranker is not None:
        serving = champion_ranker_lists(champion_ranker, f, catalog, held)
        if serving is not None:
            parts.append(serving)
            labels[E.CHAMPION_RANKED] = f"champion ranker v{champion_ranker.version}"
    if champion is not None:
        previous, own = champion
        parts.append(
            model_lists(spark, previous, own, f, config.exclude, E.CHAMPION, held, config.precision)
        )
        labels[E.CHAMPION] = f"champion v{previous.version}"
    # every list's fallback, and the popularity baseline
    if B.POPULARITY in reused:
        popular = reused[B.POPULARITY]
    else:
        popular = held.lists(B.POPULARITY, E.popularity_lists(f))
    for name in config.baselines:
        if name == B.POPULARITY:
            parts.append(popular)
        elif name in reused:
            parts.append(reused[name])
        else:
            chosen = dataclasses.replace(f, settings=settings.get(name, f.settings))
            parts.append(held.lists(name, E.BASELINES[name](chosen, popular)))
    return parts, labels, taken


def champion_ranker_lists(
    champion_ranker: registry.ResolvedRanker, f: E.EvalFrames, catalog: DataFrame, held: Held
) -> DataFrame | None:
    """The champion ranker's top ``f.k`` as ``RANKED_LISTS`` rows of ``champion_ranked``, or
    None when this code cannot score it (it was fitted on other features; the caller warns)."""
    try:
        top, _ = ranked_top(champion_ranker.model, f, catalog, held)
    except InputError as exc:
        log.info("[evaluate] the champion ranker's lists are left out: %s", exc)
        return None
    lists = S.RANKED_LISTS.select(top.withColumn("method", F.lit(E.CHAMPION_RANKED)))
    return held.lists(E.CHAMPION_RANKED, lists)


def ranker_tuning(
    ranker: registry.ResolvedRanker | None, config: EvaluateConfig, val_start: dt.date
) -> dict[str, Any]:
    """The val tuning ``cartwheel rank`` did for the ranker's generators, when it is the tuning
    this evaluation would do (the same run date, val start, metric, exclusion rule and
    defaults): method -> {chosen, tried}; else {}."""
    info = ranker.model.info if ranker is not None else {}
    tuning = info.get("tuning") or {}
    same = (
        info.get("run_date") == config.run_date.isoformat()
        and tuning.get("val_start") == val_start.isoformat()
        and tuning.get("metric") == config.rules.key
        and info.get("exclude") == config.exclude
        and info.get("defaults") == dataclasses.asdict(config.settings_without_blocks())
    )
    return dict(tuning.get("methods", {})) if same else {}


def tune_baselines(
    spark: SparkSession,
    storage: Storage,
    config: EvaluateConfig,
    events: DataFrame,
    val_start: dt.date,
    candidates: DataFrame,
    held: Held,
    done: dict[str, Any] | None = None,
) -> tuple[dict[str, B.BaselineSettings], dict[str, Any]]:
    """Each baseline's settings, chosen on the val split: lists built from the events before the
    val start for the val users (same candidates and exclusion rule as on test), scored on the
    promotion metric; (settings per method, what was tried and chosen, and ``chosen_for``: the
    run date whose val split chose it). A method in ``done`` (method -> {chosen, tried,
    chosen_for, and optionally ``from``: where the choice was made}) takes that choice without
    new fits."""
    grids = {name: E.GRIDS[name] for name in config.baselines if name in E.GRIDS}
    if not config.tune_baselines or not grids:
        return {}, {}
    defaults, done = config.settings(spark), done or {}
    chosen: dict[str, B.BaselineSettings] = {}
    report: dict[str, Any] = {}
    for name in [n for n in grids if n in done]:
        chosen[name] = E.tuned(defaults, done[name]["chosen"])
        report[name] = {"from": "cartwheel rank", **done[name]}
        grids.pop(name)
    for source in sorted({r["from"] for r in report.values()}):
        names = [n for n, r in report.items() if r["from"] == source]
        log.info(
            "[%s] %s: settings chosen on val by %s, reused", held.step, ", ".join(names), source
        )
    if not grids:
        return chosen, {"split": "val", "val_start": val_start.isoformat(),
                        "metric": config.rules.key, "methods": report}  # fmt: skip
    val = read_targets(spark, storage, config.data_root, config.run_date, L.VAL)
    relevant = held.keep(val.distinct())
    users = held.keep(val.select("user_id").distinct())
    before = held.keep(events.where(F.col("event_time") < L.day_start(val_start)))
    f = E.EvalFrames(
        before, users, candidates, held.keep(E.exclusions_of(before, users, config.exclude)),
        config.promotion_k, val_start, defaults,
    )  # fmt: skip
    popular = held.lists(f"{B.POPULARITY} (val)", E.popularity_lists(f))

    def lists_at(name: str, point: dict[str, Any]) -> DataFrame:
        return E.BASELINES[name](
            dataclasses.replace(f, settings=E.tuned(f.settings, point)), popular
        )

    def per_user(lists: DataFrame) -> DataFrame:
        return Mx.per_user_metrics(lists, relevant, [f.k])

    for name, grid in grids.items():
        best, tried = search_grid(
            f"[{held.step}] tuning", name, grid, lists_at, per_user,
            config.promotion_metric, config.rules.key,
        )  # fmt: skip
        chosen[name] = E.tuned(f.settings, best)
        report[name] = {
            "chosen": best,
            "tried": [{**p, config.rules.key: s} for p, s in tried],
            "chosen_for": config.run_date.isoformat(),
        }
    return chosen, {
        "split": "val",
        "val_start": val_start.isoformat(),
        "metric": config.rules.key,
        "methods": report,
    }


def measure(
    parts: list[DataFrame],
    relevant: DataFrame,
    f: E.EvalFrames,
    config: EvaluateConfig,
    n_candidates: int,
    held: Held,
    ranked: bool = False,
) -> tuple[E.Table, dict[str, Any]]:
    """(metrics table, bootstrap intervals and counts of cold users, relevant and unreachable
    pairs; with ``ranked``, also every method's paired difference to the ranked lists)."""
    lists = functools.reduce(DataFrame.unionByName, parts)
    log.info("[evaluate] computing metrics for %d methods", len(parts))
    # one row per method, user and K, read by the means and by every bootstrap resample
    per_user = held.keep(Mx.per_user_metrics(lists, relevant, config.ks))
    rows = [
        r.asDict()
        for r in Mx.ranking_metrics(lists, relevant, config.ks, n_candidates, per_user).collect()
    ]
    intervals: dict[str, Any] = {}
    vs_ranked: dict[str, Any] = {}
    if config.bootstrap_replicates:
        wanted = E.interval_targets(config.rules, config.ks)
        log.info(
            "[evaluate] %d bootstrap resamples of the users for %s",
            config.bootstrap_replicates,
            wanted,
        )
        found = Mx.bootstrap(per_user, wanted, E.MODEL, config.bootstrap_replicates, config.seed)
        intervals = E.intervals_table([r.asDict() for r in found.collect()])
        if ranked:  # every method paired with the ranked lists too, on the same resamples
            found = Mx.bootstrap(
                per_user, wanted, E.RANKED, config.bootstrap_replicates, config.seed
            )
            vs_ranked = E.paired_table([r.asDict() for r in found.collect()], E.RANKED)
    with_history = f.before.where(F.col("item_id").isNotNull()).select("user_id").distinct()
    unreachable = (
        relevant.join(f.exclusions, ["user_id", "item_id"], "left_semi")
        .unionByName(relevant.join(f.candidates, "item_id", "left_anti"))
        .distinct()
    )
    return E.metrics_table(rows), {
        "intervals": intervals,
        **({"intervals_vs_ranked": vs_ranked} if ranked else {}),
        "bootstrap_replicates": config.bootstrap_replicates,
        "cold_users": f.users.join(with_history, "user_id", "left_anti").count(),
        "relevant_pairs": relevant.count(),
        "unreachable_pairs": unreachable.count(),
    }


def write_reports(
    storage: Storage, report_dir: str, doc: dict[str, Any], model: registry.ResolvedModel
) -> None:
    """metrics.json, report.md and recall_at_k.svg, also logged to an MLflow evaluation run."""
    view = metrics_view(doc["metrics"], doc["labels"])
    files = {
        "report.md": render("evaluation.md.j2", doc=doc, view=view),
        "recall_at_k.svg": recall_svg(doc["metrics"], doc["labels"], doc["run_date"]),
    }
    doc["mlflow_run_id"] = registry.log_evaluation(
        doc, model, {"metrics.json": json.dumps(doc, indent=2) + "\n", **files}
    )
    files["metrics.json"] = json.dumps(doc, indent=2) + "\n"
    for name, text in files.items():
        storage.write_text(join(report_dir, name), text)


def main(spark: SparkSession, config: EvaluateConfig) -> RunResult:
    """Evaluate the model and the baselines on the test period; maybe promote the model."""
    storage, run = Storage(spark), StepRun(spark, "evaluate", config)
    root, day = config.data_root, config.run_date
    with run:
        config = run.config = scoring.with_resolved_exclude(storage, config)
        b = read_boundaries(storage, root, day)
        test, test_path = (
            read_targets(spark, storage, root, day, L.TEST),
            layout.examples_split(root, day, L.TEST),
        )
        events = read_clean_events(
            spark, storage, root, date_window(day, (day - b["window_start"]).days + 1)
        )
        catalog = read_catalog(spark, storage, root)
        registry.configure_tracking(root)
        model = registry.resolve(config.model_uri)
        champion_version = registry.alias_version(model.name, config.champion_alias)
        ranker = registry.resolve_ranker(config.ranker_uri) if config.ranker_uri else None
        champion_ranker = None
        if ranker is not None:
            serving = registry.alias_version(ranker.name, config.champion_alias)
            if serving is not None and serving != ranker.version:
                champion_ranker = registry.resolve_ranker(f"models:/{ranker.name}/{serving}")
        held = Held()
        try:
            users = held.keep(test.select("user_id").distinct())
            n_users = users.count()
            if n_users == 0:
                raise InputError(f"the test split at {test_path} has no examples")
            before = held.keep(events.where(F.col("event_time") < L.day_start(b["test_start"])))
            # every method ranks the same candidates: the model's sellable vocabulary items
            mask, counts = scoring.sellable_candidates(spark, model, catalog)
            f = E.EvalFrames(
                before, users, held.keep(scoring.candidate_items(spark, model, mask)),
                held.keep(E.exclusions_of(before, users, config.exclude)),
                config.max_k, b["test_start"], config.settings(spark),
            )  # fmt: skip
            settings, tuning = tune_baselines(
                spark, storage, config, events, b["val_start"], f.candidates, held,
                done=ranker_tuning(ranker, config, b["val_start"]),
            )  # fmt: skip
            champion = None
            if champion_version is not None and champion_version != model.version:
                previous = registry.resolve(f"models:/{model.name}/{champion_version}")
                champion = (previous, scoring.sellable_candidates(spark, previous, catalog)[0])
            parts, labels, taken = all_lists(
                spark, config, model, mask, champion, f, catalog, settings, held, ranker,
                champion_ranker,
            )  # fmt: skip
            if champion_ranker is not None and E.CHAMPION_RANKED not in labels:
                run.warn(
                    f"the champion ranker v{champion_ranker.version} was fitted on other features "
                    "than this cartwheel computes: tonight's ranked lists were not compared with "
                    "its lists"
                )
            table, stats = measure(
                parts, held.keep(test.distinct()), f, config, counts["candidate_items"], held,
                ranked=ranker is not None,
            )  # fmt: skip
            clicks: dict[str, Any] | None = None
            if config.next_click:
                models = {E.MODEL: (model, mask), **({E.CHAMPION: champion} if champion else {})}
                click_table, clicks = next_click.measure(
                    spark, config, models, events, f.before, b, f.candidates,
                    counts["candidate_items"], held,
                )  # fmt: skip
        finally:
            held.release()
        if config.gate_on == NEXT_CLICK and clicks is not None:
            # item_similar is the two-tower's: the gate judges the model's neighbours, in hit
            # rates and reciprocal ranks (the reasons say HR and MRR)
            rules = dataclasses.replace(
                config.rules, published=E.MODEL,
                metric_name={"recall": "HR", "map": "MRR"}.get(config.promotion_metric),
            )  # fmt: skip
            gate, decision = E.decide(
                rules, click_table, model.version, champion_version, clicks["queries"],
                clicks["cold_queries"], unit="test queries (session steps)",
            )  # fmt: skip
            gate = {**gate, "on": NEXT_CLICK}
        else:
            gate, decision = E.decide(
                config.rules, table, model.version, champion_version, n_users,
                stats["cold_users"], stats.get("intervals_vs_ranked"),
            )  # fmt: skip
        applied = bool(decision["promote"] and config.promote)
        doc: dict[str, Any] = {
            "run_date": day.isoformat(), "test_start": b["test_start"].isoformat(),
            "window_start": b["window_start"].isoformat(),
            "model": {"name": model.name, "version": model.version, "uri": model.uri, "run_id": model.run_id},
            "champion_version_before": champion_version, "ks": sorted(set(config.ks)),
            "exclude": config.exclude, "users": n_users, **stats,
            "candidate_items": counts["candidate_items"], "labels": labels,
            "handling": {m: E.HANDLING[m] for m in table}, "metrics": table, "gate": gate,
            "promotion": decision, "tuning": tuning,
            **({"next_click": clicks} if clicks is not None else {}),
        }  # fmt: skip
        report_dir = layout.reports(root, day)
        write_reports(storage, report_dir, doc, model)
        if applied:
            promote(model, config.champion_alias)
        # the lists the gate passed are the ranker's: it serves beside the champion two-tower
        ranker_serves = bool(
            gate["passed"] and config.promote and (applied or champion_version == model.version)
        )
        if ranker is not None and ranker_serves:
            promote(ranker, config.champion_alias)
        run.inputs = [test_path, layout.clean_events(root), layout.raw_catalog(root), config.model_uri]  # fmt: skip
        run.outputs = [report_dir]
        run.record(rows_in=n_users, rows_out=n_users)
        run.extra = {
            "report": report_dir, "metrics": table, "gate": gate,
            "promotion": {**decision, "applied": applied},
            "champion_version": model.version if applied else champion_version,
            "cold_users": stats["cold_users"], "unreachable_pairs": stats["unreachable_pairs"],
            "labels": labels, "mlflow_run_id": doc["mlflow_run_id"],
            "next_click": None if clicks is None else {
                k: clicks[k] for k in ("queries", "cold_queries", "sessions", "metrics")
            },
            "ranker": None if ranker is None else {
                "name": ranker.name, "version": ranker.version, "uri": ranker.uri,
                "champion": ranker_serves, "baselines_from_its_lists": taken,
            },
        }  # fmt: skip
        if not gate["passed"]:
            judged = (
                f"the item_similar lists of model {model.name} v{model.version}"
                if gate.get("on") == NEXT_CLICK
                else f"model {model.name} v{model.version}" if ranker is None
                else f"the lists of ranker {ranker.name} v{ranker.version} (over model {model.name} v{model.version})"
            )  # fmt: skip
            raise QualityGateError(
                f"{judged} failed the quality gate: {gate['reason']} (report: {report_dir}/report.md)"
            )
    return run.result()


def promote(model: registry.ResolvedModel | registry.ResolvedRanker, alias: str) -> None:
    """Move ``alias`` (the champion) to the evaluated model (or ranker) version."""
    registry.move_alias(model.name, alias, model.version)
    log.info("[evaluate] %s@%s -> version %s", model.name, alias, model.version)


def metrics_lines(m: dict[str, Any]) -> list[str]:
    """The metrics table (every method at every K) and the promotion decision, as text."""
    text = render("metrics.txt.j2", m=m, view=metrics_view(m["metrics"], m["labels"]))
    return text.rstrip("\n").split("\n")


def summarize(result: RunResult) -> str:
    m: dict[str, Any] = result.manifest
    return "\n".join(
        [*metrics_lines(m), f"report: {m['report']}/report.md", f"manifest: {result.manifest_path}"]
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("evaluate", EvaluateConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
