"""The night's options (shared by ``nightly`` and ``backfill``) and ``--step-config`` sections."""

from __future__ import annotations

import dataclasses
from typing import Any

from jobs.night.steps import STEP_NAMES, STEPS
from jobs.runtime.config import DatedStepConfig, load_yaml, opt
from pipelines.errors import ConfigError
from pipelines.evaluation import check_gate_values

# Set by the night itself; a --step-config section may not override them.
MANAGED_KEYS = ("data_root", "run_date", "config", "output_root", "incremental", "restart")
CONFIGURABLE = tuple(s.name for s in STEPS if s.config is not None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NightOptions:
    """The knobs of a night (shared by ``nightly`` and ``backfill``)."""

    lookback_days: int = opt(
        30, help="days of events a night uses: cleaned (incrementally), labelled and scored"
    )
    epochs: int = opt(5, help="maximum training epochs")
    batch_size: int = opt(
        256, help="examples per worker per step; a small night uses smaller batches"
    )
    num_proc: int = opt(2, help="training processes")
    k: int = opt(50, help="recommendations per user and similar items per item")
    gate_min_ratio: float = opt(
        1.0,
        help="evaluation passes only if the model reaches this x popularity on recall@20 "
        "(0: no gate)",
    )
    champion_tolerance: float = opt(
        0.05,
        help="the night's model replaces the champion when within this fraction of it; "
        "otherwise the night fails and publishes nothing",
    )
    step_config: str | None = opt(
        None,
        help="YAML file with a section per step (clean, label, shard, train, score, evaluate) "
        "of that step's flags; a section overrides what the night derives",
    )
    force: bool = opt(False, help="redo every step, even those whose inputs are unchanged")
    from_step: str | None = opt(None, help="redo this step and every later one")
    break_lock: bool = opt(
        False, help="remove another run's lock first (only when you know that run is dead)"
    )
    keep_results_across_versions: bool = opt(
        False,
        help="skip a finished step even if it ran under another cartwheel version (by default "
        "a new version redoes the night's steps)",
    )

    def validate_night(self) -> None:
        for name in ("lookback_days", "epochs", "batch_size", "num_proc", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be >= 1"
                )
        check_gate_values(self.gate_min_ratio, self.champion_tolerance)
        if self.from_step is not None and self.from_step not in STEP_NAMES:
            raise ConfigError(
                f"invalid config value from_step={self.from_step!r}: one of {', '.join(STEP_NAMES)}"
            )
        if self.step_config is not None:
            step_sections(self.step_config)  # fails now, naming the file and section

    def night_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(NightOptions)}


@dataclasses.dataclass(frozen=True, kw_only=True)
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
