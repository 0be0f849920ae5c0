"""The rule that picks warm-started or full training, and the category map of a warm start."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from jobs.runtime import warm_start as W
from jobs.train import TrainConfig
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit

NIGHT = dt.date(2026, 11, 21)


def mode(**kw: object) -> tuple[str, str]:
    values: dict = {"full_retrain_date": NIGHT - dt.timedelta(days=3), "full_retrain_every": 7,
                    "shape_differences": [], "new_item_share": 0.05, "max_new_items": 0.2}  # fmt: skip
    values.update(kw)
    return W.training_mode(NIGHT, **values)


def test_a_recent_lineage_with_a_stable_vocabulary_warm_starts() -> None:
    got, reason = mode()
    assert (
        got == W.WARM and "2026-11-18 (3 days ago)" in reason and "5.0% of the vocabulary" in reason
    )


def test_the_full_retrain_schedule_forces_a_full_training() -> None:
    assert mode(full_retrain_date=NIGHT - dt.timedelta(days=6))[0] == W.WARM
    got, reason = mode(full_retrain_date=NIGHT - dt.timedelta(days=7))
    assert got == W.FULL and "7 days before the run date (--full-retrain-every 7)" in reason


def test_a_model_without_lineage_trains_in_full() -> None:
    got, reason = mode(full_retrain_date=None)
    assert got == W.FULL and W.FULL_RETRAIN_TAG in reason


def test_another_shape_trains_in_full() -> None:
    got, reason = mode(shape_differences=["dim 32 -> 64"])
    assert got == W.FULL and "dim 32 -> 64" in reason


def test_a_drifted_vocabulary_trains_in_full() -> None:
    assert mode(new_item_share=0.2)[0] == W.WARM
    got, reason = mode(new_item_share=0.25)
    assert got == W.FULL and "25.0% of tonight's vocabulary is new" in reason


def test_categories_map_to_the_old_category_most_shared_items_had() -> None:
    # new items 2..6 came from old items 4, 2, 3, -, 5; old categories by old item index
    item_source = torch.tensor([0, 1, 4, 2, 3, -1, 5])
    new_category = torch.tensor([0, 0, 2, 2, 2, 3, 4])
    old_category = torch.tensor([0, 0, 3, 3, 2, 4])
    got = W.category_map(item_source, new_category, old_category, size=5)
    # category 2: old items 4, 2, 3 had categories 2, 3, 3 -> 3; category 3: only a new item;
    # category 4: old item 5 had category 4
    assert got.tolist() == [0, 1, 3, -1, 4]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"warm_start": "champion"}, r"warm_start='champion': use models:/NAME@ALIAS"),
        ({"warm_replay": 1.5}, r"warm_replay=1\.5"),
        ({"max_new_items": -0.1}, r"max_new_items=-0\.1"),
        ({"full_retrain_every": 0}, r"full_retrain_every=0"),
    ],
)
def test_bad_warm_start_flags_are_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data_root="/x", run_date=NIGHT, **values).validate()
