"""The night's options (shared by ``nightly`` and ``backfill``) and ``--step-config`` sections."""

from __future__ import annotations

import dataclasses
from typing import Any

from jobs.night.steps import PROFILES, SESSIONS, SHOP, STEP_NAMES, STEPS
from jobs.runtime import warm_start as W
from jobs.runtime.config import (
    AtLeast1,
    DatedStepConfig,
    Fraction,
    NonNegativeFloat,
    Tolerance,
    load_yaml,
    opt,
    step_config,
)
from jobs.runtime.scoring import (
    AUTO_EXCLUDE,
    EXCLUDE_HELP,
    PRECISION_HELP,
    ExcludeRule,
    Precision,
)
from pipelines.errors import ConfigError

# Set by the night itself; a --step-config section may not override them.
MANAGED_KEYS = ("data_root", "run_date", "config", "output_root", "incremental", "restart")
CONFIGURABLE = tuple(s.name for s in STEPS if s.config is not None)


@step_config
class NightOptions:
    """The knobs of a night (shared by ``nightly`` and ``backfill``)."""

    lookback_days: AtLeast1 = opt(
        default=30, help="days of events a night uses: cleaned (incrementally), labelled and scored"
    )
    epochs: AtLeast1 = opt(default=5, help="maximum training epochs")
    warm_start: bool = opt(
        default=True,
        help="steady-state nights start training from the champion model's weights (train "
        "--warm-start) for at most --warm-epochs epochs; a night trains from scratch when there "
        "is no champion, on the --full-retrain-every schedule, or when the vocabulary drifted "
        "(--max-new-items); --no-warm-start: every night from scratch",
    )
    warm_epochs: AtLeast1 = opt(
        default=W.WARM_EPOCHS, help="maximum epochs of a warm-started night"
    )
    full_retrain_every: AtLeast1 = opt(default=W.FULL_RETRAIN_EVERY, help=W.FULL_RETRAIN_EVERY_HELP)
    max_new_items: Fraction = opt(default=W.MAX_NEW_ITEMS, help=W.MAX_NEW_ITEMS_HELP)
    batch_size: AtLeast1 = opt(
        default=256, help="examples per worker per step; a small night uses smaller batches"
    )
    num_proc: AtLeast1 = opt(default=2, help="training processes")
    k: AtLeast1 = opt(default=50, help="recommendations per user and similar items per item")
    exclude: ExcludeRule = opt(
        default=AUTO_EXCLUDE, help=f"{EXCLUDE_HELP} (the same rule for score and evaluate)"
    )
    precision: Precision = opt(
        default="float32", help=f"{PRECISION_HELP} (the same for score and evaluate)"
    )
    gate_min_ratio: NonNegativeFloat = opt(
        default=1.0,
        help="evaluation passes only if the published lists reach this x the gate's baseline on "
        "recall@20: the best tuned baseline with the second stage, popularity without (0: no gate)",
    )
    champion_tolerance: Tolerance = opt(
        default=0.05,
        help="with --no-second-stage the night's model replaces the champion when within this "
        "fraction of it; with the second stage the ranked lists must not fall below the serving "
        "ranker's by more than this (with a paired interval that excludes a tie); otherwise the "
        "night publishes nothing",
    )
    second_stage: bool = opt(
        default=True,
        help="run rank after train: recs/user_topk holds the ranker's lists over its generators' "
        "candidates, and evaluate gates them against the best tuned baseline (--no-second-stage: "
        "the two-tower's own lists, gated against popularity; they lose to tuned baselines)",
    )
    tune_baselines: bool = opt(
        default=True,
        help="evaluate tunes each baseline on the val split before the test comparison "
        "(several fits per baseline: the longest part of a small night; --no-tune-baselines: "
        "the defaults)",
    )
    profile: str = opt(
        default=SHOP,
        help=f"the kind of log: {SHOP} (users with histories across days) or {SESSIONS} (a user "
        "is a session, as in click streams: in-session histories (label --history-cutoff "
        "event), and evaluate judges item_similar on next clicks and gates on them "
        "(--next-click --gate-on next-click)); a --step-config section overrides either",
    )
    step_config: str | None = opt(
        default=None,
        help="YAML file with a section per step (clean, label, shard, train, rank, score, evaluate) "
        "of that step's flags; a section overrides what the night derives",
    )
    force: bool = opt(default=False, help="redo every step, even those whose inputs are unchanged")
    from_step: str | None = opt(default=None, help="redo this step and every later one")
    break_lock: bool = opt(
        default=False, help="remove another run's lock first (only when you know that run is dead)"
    )
    keep_results_across_versions: bool = opt(
        default=False,
        help="skip a finished step even if it ran under another cartwheel version (by default "
        "a new version redoes the night's steps)",
    )

    def validate_night(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(
                f"invalid config value profile={self.profile!r}: one of {', '.join(PROFILES)}"
            )
        if self.from_step is not None and self.from_step not in STEP_NAMES:
            raise ConfigError(
                f"invalid config value from_step={self.from_step!r}: one of {', '.join(STEP_NAMES)}"
            )
        if self.step_config is not None:
            step_sections(self.step_config)  # fails now, naming the file and section

    def night_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(NightOptions)}


@step_config
class NightlyConfig(DatedStepConfig, NightOptions):
    """Flags of ``cartwheel nightly``."""

    def validate(self) -> None:
        DatedStepConfig.validate(self)
        self.validate_night()


def step_sections(path: str) -> dict[str, dict[str, Any]]:
    """The per-step sections of a ``--step-config`` file; ConfigError naming what is wrong."""
    doc = load_yaml(path)
    unknown = sorted(set(doc) - set(CONFIGURABLE))
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(unknown)}; sections are step names: "
            f"{', '.join(CONFIGURABLE)}"
        )
    sections: dict[str, dict[str, Any]] = {}
    for name, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: section {name} must be a mapping of {name} flags")
        values = {str(k).replace("-", "_"): v for k, v in body.items()}
        managed = sorted(set(values) & set(MANAGED_KEYS))
        if managed:
            raise ConfigError(
                f"{path}: section {name} sets {', '.join(managed)}, which the night sets itself"
            )
        sections[name] = values
    return sections
