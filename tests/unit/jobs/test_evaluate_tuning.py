"""evaluate takes the val tuning ``cartwheel rank`` did for its ranker's generators only when it
is the tuning evaluate would do itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from jobs import evaluate
from jobs.runtime.lists import Held
from jobs.runtime.registry import ResolvedRanker
from pipelines import baselines as B

pytestmark = pytest.mark.unit

DAY, VAL_START = dt.date(2026, 11, 21), dt.date(2026, 11, 20)
ALS_CHOICE = {"als_rank": 128, "als_reg": 0.1, "als_alpha": 40.0}


def config(**values: Any) -> evaluate.EvaluateConfig:
    return evaluate.EvaluateConfig(
        data_root="/x", run_date=DAY, exclude="purchased", als_blocks=2, **values
    )


def ranker(**info: Any) -> ResolvedRanker:
    doc = {
        "run_date": DAY.isoformat(), "exclude": "purchased",
        "defaults": dataclasses.asdict(config().settings_without_blocks()),
        "tuning": {"val_start": VAL_START.isoformat(), "metric": "recall@20",
                   "methods": {B.ALS_METHOD: {"chosen": ALS_CHOICE, "tried": [ALS_CHOICE]}}},
        **info,
    }  # fmt: skip
    return ResolvedRanker("models:/r/1", "r", "1", "run", SimpleNamespace(info=doc))


def test_the_rankers_tuning_is_taken_when_it_is_evaluates_own() -> None:
    done = evaluate.ranker_tuning(ranker(), config(), VAL_START)
    assert done == {B.ALS_METHOD: {"chosen": ALS_CHOICE, "tried": [ALS_CHOICE]}}
    # every baseline already chosen: no list is built (no session, no events are needed)
    chosen, report = evaluate.tune_baselines(
        None,
        None,
        config(baselines=(B.ALS_METHOD,), gate_baseline="best"),
        None,
        VAL_START,
        None,
        Held(),
        done=done,  # type: ignore[arg-type]
    )
    assert (chosen[B.ALS_METHOD].als_rank, chosen[B.ALS_METHOD].als_alpha) == (128, 40.0)
    assert chosen[B.ALS_METHOD].als_blocks == 2  # the rest from this evaluation's defaults
    assert report["methods"][B.ALS_METHOD]["from"] == "cartwheel rank"
    assert report["val_start"] == VAL_START.isoformat()


@pytest.mark.parametrize(
    ("info", "values", "val_start"),
    [
        ({"run_date": "2026-11-20"}, {}, VAL_START),  # another night's ranker
        ({}, {}, dt.date(2026, 11, 19)),  # another val split
        ({}, {"promotion_k": 10}, VAL_START),  # another metric
        ({"exclude": "interacted"}, {}, VAL_START),  # another exclusion rule
        ({}, {"als_rank": 16}, VAL_START),  # other defaults
        ({"tuning": {}}, {}, VAL_START),  # rank did not tune
    ],
)
def test_the_rankers_tuning_is_ignored_when_evaluate_would_tune_otherwise(
    info: dict[str, Any], values: dict[str, Any], val_start: dt.date
) -> None:
    assert evaluate.ranker_tuning(ranker(**info), config(**values), val_start) == {}
    assert evaluate.ranker_tuning(None, config(), VAL_START) == {}
