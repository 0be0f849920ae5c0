"""rank --retune-days: which earlier night's generator tuning a run may take instead of tuning
again, read from that night's rank manifest (hand-written here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from jobs import rank
from jobs.runtime import layout
from jobs.runtime.storage import Storage
from pipelines import baselines as B
from pipelines import evaluation as E

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 21)
METRIC = "recall@20"
GENERATORS = (B.BUY_AGAIN, B.POPULARITY)  # popularity has no grid: nothing to reuse for it


def config(root: Path, **values: Any) -> rank.RankConfig:
    return rank.RankConfig(
        data_root=str(root), run_date=DAY, generators=GENERATORS, exclude="purchased", **values
    )


def defaults(root: Path) -> dict[str, Any]:
    return dataclasses.asdict(config(root).tuning().settings_without_blocks())


def entry(chosen_for: dt.date, grid: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    grid = E.GRIDS[B.BUY_AGAIN] if grid is None else grid
    scores = [0.11, 0.33, 0.22, 0.05][: len(grid)]
    return {
        "chosen": grid[1],
        "tried": [{**p, METRIC: s} for p, s in zip(grid, scores, strict=True)],
        "chosen_for": chosen_for.isoformat(),
    }


def write_manifest(root: Path, day: dt.date, **changes: Any) -> dict[str, Any]:
    """A succeeded rank manifest for ``day`` that tuned buy-again on that day's val split."""
    doc: dict[str, Any] = {
        "step": "rank", "status": "succeeded", "run_date": day.isoformat(),
        "config": {"exclude": "purchased"}, "tuning_defaults": defaults(root),
        "tuning": {"split": "val", "metric": METRIC, "methods": {B.BUY_AGAIN: entry(day)}},
        **changes,
    }  # fmt: skip
    path = Path(layout.manifest(str(root), day, "rank"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return doc


def earlier(root: Path, **values: Any) -> tuple[dict[str, Any], dt.date] | None:
    return rank.earlier_tuning(Storage(None), config(root, **values), defaults(root), METRIC)


def test_the_last_nights_choice_is_taken_within_the_window(tmp_path: Path) -> None:
    doc = write_manifest(tmp_path, DAY - dt.timedelta(days=2))
    found = earlier(tmp_path, retune_days=3)
    assert found is not None
    methods, day = found
    assert day == DAY - dt.timedelta(days=2)
    assert methods == {
        B.BUY_AGAIN: {
            **doc["tuning"]["methods"][B.BUY_AGAIN],
            "from": f"cartwheel rank of {DAY - dt.timedelta(days=2)}",
        }
    }


def test_a_choice_passed_on_keeps_the_date_it_was_made_for(tmp_path: Path) -> None:
    # the night before reused a choice made 3 days before it: 4 days old tonight
    made = DAY - dt.timedelta(days=4)
    write_manifest(
        tmp_path,
        DAY - dt.timedelta(days=1),
        tuning={"metric": METRIC, "methods": {B.BUY_AGAIN: entry(made)}},
    )
    found = earlier(tmp_path, retune_days=4)
    assert found is not None and found[0][B.BUY_AGAIN]["chosen_for"] == made.isoformat()
    assert earlier(tmp_path, retune_days=3) is None  # too old now: tune again


@pytest.mark.parametrize(
    ("changes", "values"),
    [
        ({}, {"retune_days": 0}),  # tune every run
        ({}, {"tune_generators": False}),  # no tuning at all: defaults
        ({"status": "failed"}, {}),
        ({"config": {"exclude": "interacted"}}, {}),  # another exclusion rule
        ({"tuning_defaults": {"recent_days": 99}}, {}),  # other defaults
        ({"tuning_defaults": None}, {}),  # a manifest from before the defaults were recorded
        ({"tuning": {"metric": "ndcg@10", "methods": {}}}, {}),  # another metric
        ({"tuning": {}}, {}),  # that night did not tune
        # another grid than today's (the code changed since): its choice may not be in today's
        (
            {
                "tuning": {
                    "metric": METRIC,
                    "methods": {
                        B.BUY_AGAIN: entry(
                            DAY - dt.timedelta(days=1),
                            [{"buy_again_half_life_days": h} for h in (2.0, 4.0)],
                        )
                    },
                }
            },
            {},
        ),
        # chosen for a later night than this one (a backfill of an earlier date)
        ({"tuning": {"metric": METRIC, "methods": {B.BUY_AGAIN: entry(DAY)}}}, {}),
    ],
)
def test_a_choice_that_does_not_fit_this_run_is_not_taken(
    tmp_path: Path, changes: dict[str, Any], values: dict[str, Any]
) -> None:
    write_manifest(tmp_path, DAY - dt.timedelta(days=1), **changes)
    assert earlier(tmp_path, **values) is None


def test_only_the_latest_earlier_run_counts(tmp_path: Path) -> None:
    write_manifest(tmp_path, DAY - dt.timedelta(days=3))
    write_manifest(tmp_path, DAY - dt.timedelta(days=1), status="failed")
    assert earlier(tmp_path) is None  # the night before failed: no older choice is revived
    assert earlier(tmp_path / "empty") is None  # no earlier run at all
    write_manifest(tmp_path, DAY + dt.timedelta(days=1))  # a later night is not looked at
    write_manifest(tmp_path, DAY - dt.timedelta(days=1))
    found = earlier(tmp_path)
    assert found is not None and found[1] == DAY - dt.timedelta(days=1)


def test_an_unreadable_earlier_manifest_means_tuning_again(tmp_path: Path) -> None:
    write_manifest(tmp_path, DAY - dt.timedelta(days=1))
    path = Path(layout.manifest(str(tmp_path), DAY - dt.timedelta(days=1), "rank"))
    path.write_text('{"status": "succ')  # cut short by a crash
    assert earlier(tmp_path) is None
    assert rank.optional_doc(Storage(None), str(path)) is None
    assert rank.optional_doc(Storage(None), str(tmp_path / "missing.json")) is None
