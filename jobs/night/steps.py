"""The night's steps as data: for each, its config class, what the night gives it, what its
fingerprint covers, and how to run it. ``Night`` walks ``STEPS`` in order; adding a step is
adding an entry here.

``enabled(options)`` says whether the night runs the step at all (``rank`` runs unless
``--no-second-stage``). ``derive(night, check)`` returns the values the night passes to the step's
config (before the step's ``--step-config`` section); with ``check`` it uses placeholders for
what only an upstream step can tell (shard rows, the trained model), so every config is
validated before the first step runs. ``inputs(night)`` returns (paths whose files the step reads, other things it depends
on) for the step's fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs import clean, evaluate, label, rank, score, shard, train
from jobs.night.publish import publish
from jobs.runtime import layout
from jobs.runtime.config import DatedStepConfig, config_from_values
from jobs.runtime.manifest import RunResult
from pipelines import evaluation as E
from pipelines.errors import ConfigError

if TYPE_CHECKING:
    from jobs.night.options import NightOptions
    from jobs.night.run import Night

Inputs = tuple[list[str], dict[str, Any]]


@dataclass(frozen=True)
class NightStep:
    """One step of a night."""

    name: str
    config: type[DatedStepConfig] | None  # None: the night runs it itself (publish)
    run: Callable[[Night, Any], RunResult]
    derive: Callable[[Night, bool], dict[str, Any]]
    inputs: Callable[[Night], Inputs]
    enabled: Callable[[NightOptions], bool] = lambda options: True


def _train_values(night: Night, check: bool) -> dict[str, Any]:
    c = night.config
    rows = (
        16 * c.batch_size * c.num_proc
        if check
        else night.manifest("shard")["splits"]["train"]["rows"]
    )
    return {
        "epochs": c.epochs,
        "warm_start": warm_start_uri(night) if c.warm_start else None,
        "warm_epochs": c.warm_epochs,
        "full_retrain_every": c.full_retrain_every,
        "max_new_items": c.max_new_items,
        # a small night still gets several steps per epoch
        "batch_size": max(train.MIN_BATCH_SIZE, min(c.batch_size, rows // (8 * c.num_proc))),
        "num_proc": c.num_proc,
        "restart": night.plan.redo("train"),
    }


def warm_start_uri(night: Night) -> str:
    """The serving model a warm-started night begins from: the champion alias (of evaluate's
    section, if it sets one) of the registered model (of train's section, if it sets one)."""
    name = night.sections.get("train", {}).get("model_name", train.MODEL_NAME)
    alias = night.sections.get("evaluate", {}).get("champion_alias", evaluate.CHAMPION_ALIAS)
    return f"models:/{name}@{alias}"


def candidate_uri(night: Night) -> str:
    """The model version the night's train step registered."""
    m = night.manifest("train")
    return f"models:/{m['registered_model']}/{m['model_version']}"


def _model(night: Night, check: bool) -> str:
    return "models:/check/1" if check else candidate_uri(night)


def ranker_uri(night: Night) -> str:
    """The ranker version the night's rank step registered."""
    m = night.manifest("rank")
    return f"models:/{m['registered_model']}/{m['model_version']}"


def _ranker(night: Night, check: bool) -> dict[str, Any]:
    """With the second stage: the ranker the lists come from (score) or are measured and gated
    for (evaluate, against the best tuned baseline)."""
    if not night.config.second_stage:
        return {}
    return {"ranker_uri": "models:/check/1" if check else ranker_uri(night)}


def _ranker_input(night: Night) -> dict[str, Any]:
    return {"ranker": ranker_uri(night)} if night.config.second_stage else {}


def _scored_days(night: Night) -> list[str]:
    """The window's clean days and the catalog: what score and evaluate read besides the model."""
    return [*night.day_paths(layout.clean_events(night.root)), layout.raw_catalog(night.root)]


STEPS: tuple[NightStep, ...] = (
    NightStep(
        "clean",
        clean.CleanConfig,
        lambda n, c: clean.main(n.spark, c),
        # forced: clean every day again; otherwise only new or changed days
        lambda n, check: {
            "days": n.config.lookback_days,
            "incremental": not n.plan.redo("clean"),
            "allow_missing_days": True,
        },
        lambda n: (n.day_paths(layout.raw_events(n.root)), {}),
    ),
    NightStep(
        "label",
        label.LabelConfig,
        lambda n, c: label.main(n.spark, c),
        lambda n, check: {"lookback_days": n.config.lookback_days},
        lambda n: (n.day_paths(layout.clean_events(n.root)), {}),
    ),
    NightStep(
        "shard",
        shard.ShardConfig,
        lambda n, c: shard.main(n.spark, c),
        lambda n, check: {"workers": n.config.num_proc},
        lambda n: ([layout.examples(n.root, n.day), layout.vocab(n.root, n.day)], {}),
    ),
    NightStep(
        "train",
        train.TrainConfig,
        lambda n, c: train.main(n.spark, c),
        _train_values,
        lambda n: ([layout.shards(n.root, n.day.isoformat())], {}),
    ),
    NightStep(
        "rank",
        rank.RankConfig,
        lambda n, c: rank.main(n.spark, c),
        lambda n, check: {
            "model_uri": _model(n, check),
            "exclude": n.config.exclude,
            "num_proc": n.config.num_proc,
            "tune_generators": n.config.tune_baselines,
        },
        lambda n: (
            [*_scored_days(n), layout.examples(n.root, n.day)],
            {"model": candidate_uri(n)},
        ),
        enabled=lambda options: options.second_stage,
    ),
    NightStep(
        "score",
        score.ScoreConfig,
        lambda n, c: score.main(n.spark, c),
        lambda n, check: {
            "model_uri": _model(n, check),
            "k": n.config.k,
            "exclude": n.config.exclude,
            "precision": n.config.precision,
            "lookback_days": n.config.lookback_days,
            "output_root": layout.pending(n.root, n.day),
            **_ranker(n, check),
        },
        lambda n: (_scored_days(n), {"model": candidate_uri(n), **_ranker_input(n)}),
    ),
    NightStep(
        "evaluate",
        evaluate.EvaluateConfig,
        lambda n, c: evaluate.main(n.spark, c),
        lambda n, check: {
            "model_uri": _model(n, check),
            "exclude": n.config.exclude,
            "precision": n.config.precision,
            "gate_min_ratio": n.config.gate_min_ratio,
            "champion_tolerance": n.config.champion_tolerance,
            "tune_baselines": n.config.tune_baselines,
            **_ranker(n, check),
            **({"gate_baseline": E.BEST_BASELINE} if n.config.second_stage else {}),
        },
        lambda n: (
            [*_scored_days(n), layout.examples(n.root, n.day)],
            {"model": candidate_uri(n), **_ranker_input(n)},
        ),
    ),
    NightStep(
        "publish",
        None,
        lambda n, c: publish(n.spark, n.root, n.day, n.manifest("score"), n.manifest("evaluate")),
        lambda n, check: {},
        lambda n: ([], {s: n.outcomes[s].fingerprint for s in ("score", "evaluate")}),
    ),
)
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)


def night_steps(options: NightOptions) -> tuple[NightStep, ...]:
    """The steps a night with these options runs, in order."""
    return tuple(s for s in STEPS if s.enabled(options))


# --profile: step flags for a kind of log, under what a --step-config section sets
SHOP, SESSIONS = "shop", "sessions"
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    SHOP: {},
    # a user is a session (click streams): histories end at the event before the target, and
    # the gate judges item_similar on next clicks, since every test user is a new session
    SESSIONS: {
        "label": {"history_cutoff": "event"},
        "evaluate": {"next_click": True, "gate_on": evaluate.NEXT_CLICK},
    },
}


def build_config(step: NightStep, night: Night, *, check: bool = False) -> DatedStepConfig | None:
    """The step's config: the night's values (``derive``), then its ``--profile``'s flags, then
    its --step-config section."""
    if step.config is None:
        return None
    section = night.sections.get(step.name, {})
    values = {
        "data_root": night.root,
        "run_date": night.day,
        "filter_warn_share": night.config.filter_warn_share,
        **step.derive(night, check),
        **PROFILES[night.config.profile].get(step.name, {}),
        **section,
    }
    source = f"{night.config.step_config} [{step.name}]" if section else step.name
    try:
        return config_from_values(step.config, values, source=source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


BY_NAME: dict[str, NightStep] = {s.name: s for s in STEPS}
