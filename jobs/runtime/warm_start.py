"""Warm start or full training: the rule, and a registered model's weights carried into tonight's
vocabulary.

A steady-state night starts training from the serving model (``train --warm-start
models:/NAME@champion``) for at most ``--warm-epochs`` epochs, instead of from random weights
for ``--epochs``. It trains from scratch instead when there is no model to start from, when the
model's shape differs from the configured one, when the lineage's last full training is
``--full-retrain-every`` days old or more, or when more than ``--max-new-items`` of tonight's
vocabulary is new to the model (the catalog drifted). Every registered version carries the
tags ``cartwheel.training`` (full or warm) and ``cartwheel.full_retrain_date`` (the run date of
the full training its weights descend from), so the rule needs nothing but the registry.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from jobs.runtime import registry
from jobs.runtime.training import item_tables
from pipelines import model as M
from pipelines.common import FIRST_INDEX
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")

FULL, WARM = "full", "warm"
TRAINING_TAG = "cartwheel.training"
FULL_RETRAIN_TAG = "cartwheel.full_retrain_date"

# The rule's defaults and their help, declared once for train's flags and the night's.
WARM_EPOCHS = 2
FULL_RETRAIN_EVERY = 7
FULL_RETRAIN_EVERY_HELP = (
    "train from scratch when the model's last full training is this many days before the run "
    "date or more"
)
MAX_NEW_ITEMS = 0.2
MAX_NEW_ITEMS_HELP = (
    "train from scratch when more than this share of tonight's vocabulary is new to the model"
)


@dataclass
class Training:
    """How tonight trains: ``mode`` (full or warm) and why; for a warm start the version it
    starts from and what was carried."""

    mode: str
    reason: str
    full_retrain_date: str  # ISO date of the full training these weights descend from
    source: str | None = None  # models:/NAME/VERSION a warm start begins from
    carried: dict[str, int] | None = None  # M.WarmStart's counts
    new_item_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def full_training_due(
    run_date: dt.date, full_retrain_date: dt.date | None, full_retrain_every: int
) -> str | None:
    """Why the lineage is due a full training (no lineage tag, or its last full training is
    ``full_retrain_every`` days old or more), or None: a rule that reads only the registry."""
    if full_retrain_date is None:
        return f"the model to start from has no {FULL_RETRAIN_TAG} tag"
    age = (run_date - full_retrain_date).days
    if age >= full_retrain_every:
        return (
            f"its last full training ({full_retrain_date}) is {age} days before the run date "
            f"(--full-retrain-every {full_retrain_every})"
        )
    return None


def training_mode(
    run_date: dt.date,
    *,
    full_retrain_date: dt.date | None,
    full_retrain_every: int,
    shape_differences: list[str],
    new_item_share: float,
    max_new_items: float,
) -> tuple[str, str]:
    """(FULL or WARM, the reason) for a night that has a model to start from."""
    due = full_training_due(run_date, full_retrain_date, full_retrain_every)
    if due is not None:
        return FULL, due
    assert full_retrain_date is not None
    age = (run_date - full_retrain_date).days
    if shape_differences:
        return FULL, f"its shape differs from the configured one: {', '.join(shape_differences)}"
    if new_item_share > max_new_items:
        return FULL, (
            f"{new_item_share:.1%} of tonight's vocabulary is new to it (--max-new-items {max_new_items:.0%})"
        )
    return WARM, (
        f"last full training {full_retrain_date} ({age} day{'' if age == 1 else 's'} ago), "
        f"{new_item_share:.1%} of the vocabulary new"
    )


def category_map(
    item_source: torch.Tensor, new_category: torch.Tensor, old_category: torch.Tensor, size: int
) -> torch.Tensor:
    """For each new category index, the old category index most of the items in both
    vocabularies had (-1 for a category none of them has); PAD and OOV map to themselves."""
    shared = torch.nonzero(item_source >= FIRST_INDEX).squeeze(1)
    pairs = pd.DataFrame(
        {
            "new": new_category[shared].numpy(),
            "old": old_category[item_source[shared]].numpy(),
        }
    )
    pairs = pairs[(pairs["new"] >= FIRST_INDEX) & (pairs["old"] >= FIRST_INDEX)]
    out = torch.full((size,), -1, dtype=torch.long)
    out[: min(FIRST_INDEX, size)] = torch.arange(min(FIRST_INDEX, size))
    if len(pairs):
        top = pairs.groupby(["new", "old"]).size().rename("n").reset_index()
        top = top.sort_values(["new", "n", "old"], ascending=[True, False, True]).drop_duplicates(
            "new"
        )
        out[torch.as_tensor(top["new"].to_numpy())] = torch.as_tensor(top["old"].to_numpy())
    return out


def _shape_differences(old: M.ModelConfig, new: M.ModelConfig) -> list[str]:
    keys = [*new.shape(), "history_length", "num_event_types"]
    return [
        f"{k} {getattr(old, k)} -> {getattr(new, k)}"
        for k in keys
        if getattr(old, k) != getattr(new, k)
    ]


def plan(
    uri: str | None,
    run_date: dt.date,
    model_config: M.ModelConfig,
    vocab_items: str,
    *,
    full_retrain_every: int,
    max_new_items: float,
    weights_path: str,
    seed: int,
) -> Training:
    """Tonight's training: full, or a warm start from ``uri`` whose weights (carried into
    tonight's vocabulary) are written to ``weights_path``."""
    today = run_date.isoformat()
    if uri is None:
        return Training(FULL, "no --warm-start model", today)
    try:
        name, version = registry.registered_version(uri, "warm_start", "")
    except InputError as exc:
        log.info("[train] %s: training from scratch", exc)
        return Training(FULL, f"no model to start from at {uri}", today)
    tags = version.tags or {}
    source = f"models:/{name}/{version.version}"
    lineage = tags.get(FULL_RETRAIN_TAG)
    lineage_date = dt.date.fromisoformat(lineage) if lineage else None
    # A night the schedule sends to full training needs nothing more than the tags: the model
    # itself (pyfunc and item table) is loaded only when a warm start is still possible.
    due = full_training_due(run_date, lineage_date, full_retrain_every)
    if due is not None:
        return Training(FULL, due, today)
    champion = registry.resolve(source)
    old = champion.tower.model
    vocab = pd.read_parquet(vocab_items, columns=["item_idx", "item_id"])
    new_ids = np.full(model_config.num_items, "", dtype=object)
    new_ids[vocab["item_idx"].to_numpy()] = vocab["item_id"].to_numpy()
    new_category, _ = item_tables(vocab_items, model_config.num_items)
    item_source = M.index_map(list(new_ids), list(champion.item_ids))
    real = model_config.num_items - FIRST_INDEX
    new_share = float((item_source[FIRST_INDEX:] < 0).sum()) / max(1, real)
    mode, reason = training_mode(
        run_date,
        full_retrain_date=lineage_date,
        full_retrain_every=full_retrain_every,
        shape_differences=_shape_differences(old.config, model_config),
        new_item_share=new_share,
        max_new_items=max_new_items,
    )
    if mode == FULL:
        return Training(FULL, reason, today, source=None, new_item_share=new_share)
    torch.manual_seed(seed)  # the fresh rows (new items) start as a full training's would
    model = M.TwoTower(model_config, new_category)
    carried = M.carry_weights(
        old,
        model,
        item_source,
        category_map(item_source, new_category, old.item_category, model_config.num_categories),
    )
    torch.save({k: v.detach().clone() for k, v in model.named_parameters()}, weights_path)
    return Training(
        WARM,
        reason,
        str(lineage),
        source=source,
        carried=asdict(carried),
        new_item_share=new_share,
    )


def tag_version(name: str, version: str, training: Training) -> None:
    """Record on the registered version how it was trained (what tomorrow's rule reads)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_model_version_tag(name, version, TRAINING_TAG, training.mode)
    client.set_model_version_tag(name, version, FULL_RETRAIN_TAG, training.full_retrain_date)
