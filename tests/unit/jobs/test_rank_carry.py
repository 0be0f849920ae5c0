"""rank --carry-lists: which of tonight's fit cutoffs take the night before's lists, from that
night's lists document (hand-written here) and the clean days' fingerprints now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from jobs.clean import MARKER as CLEAN_MARKER
from jobs.rank import carried_cutoffs, clean_fingerprints
from jobs.runtime import layout
from jobs.runtime.storage import Storage

pytestmark = pytest.mark.unit

# The night before (run date 11-20): val 11-19, test 11-20; cutoffs 11-19 (val) and 11-18..11-16.
# Tonight (run date 11-21): val 11-20; fit cutoffs 11-19..11-17.
TONIGHT = [dt.date(2026, 11, 19), dt.date(2026, 11, 18), dt.date(2026, 11, 17)]
BASIS: dict[str, Any] = {
    "generators": ["buy_again", "popularity"],
    "settings": {"buy_again": {"buy_again_half_life_days": 7.0}, "popularity": {}},
    "depth": 50,
    "exclude": "purchased",
    "features": ["buy_again_rr", "buy_again_in"],
    "defaults": {"recent_days": 2},
    "selection": {"share": 0.2, "seed": 0},
}
CLEAN = {f"2026-11-{d}": [f"raw-{d}", "rules"] for d in range(14, 21)}


def earlier(**changes: Any) -> dict[str, Any]:
    return {
        **BASIS,
        "cutoffs": ["2026-11-19", "2026-11-18", "2026-11-17", "2026-11-16"],
        "val_start": "2026-11-19",
        "test_start": "2026-11-20",
        "clean_days": CLEAN,
        **changes,
    }


def test_every_cutoff_built_alike_the_night_before_is_carried() -> None:
    # 11-19 was the val start there, with a one-day val split: labelled by that day's targets
    assert carried_cutoffs(earlier(), BASIS, TONIGHT, CLEAN) == TONIGHT


def test_a_val_start_labelled_by_several_days_is_built_again() -> None:
    two_day_val = earlier(val_start="2026-11-19", test_start="2026-11-21")
    assert carried_cutoffs(two_day_val, BASIS, TONIGHT, CLEAN) == TONIGHT[1:]


def test_only_cutoffs_the_night_before_built_are_carried() -> None:
    fewer = earlier(cutoffs=["2026-11-19", "2026-11-18"])
    assert carried_cutoffs(fewer, BASIS, TONIGHT, CLEAN) == TONIGHT[:2]


@pytest.mark.parametrize(
    "changes",
    [
        {"generators": ["buy_again"]},
        {"settings": {"buy_again": {"buy_again_half_life_days": 30.0}, "popularity": {}}},
        {"depth": 20},
        {"exclude": "interacted"},
        {"features": ["buy_again_rr"]},
        {"defaults": {"recent_days": 3}},
        {"selection": {"share": 0.2, "seed": 1}},  # other selection users
        {"selection": None},  # a document from before the selection was recorded
        {"clean_days": {}},  # ... or the clean days
    ],
)
def test_lists_built_another_way_are_not_carried(changes: dict[str, Any]) -> None:
    assert carried_cutoffs(earlier(**changes), BASIS, TONIGHT, CLEAN) == []


@pytest.mark.parametrize(
    "day",
    ["2026-11-14", "2026-11-20"],  # before every cutoff; after them (late events live there too)
)
def test_a_clean_day_cleaned_again_since_stops_the_carry(day: str) -> None:
    now = {**CLEAN, day: ["raw-new", "rules"]}
    assert carried_cutoffs(earlier(), BASIS, TONIGHT, now) == []
    gone = {d: fp for d, fp in CLEAN.items() if d != day}  # a partition removed since
    assert carried_cutoffs(earlier(), BASIS, TONIGHT, gone) == []


def test_clean_fingerprints_come_from_each_days_marker(tmp_path: Path) -> None:
    root = str(tmp_path)
    for day, text in (("2026-11-18", '{"raw_fingerprint": "abc", "rules": "r1"}'),
                      ("2026-11-19", '{"raw_fing')):  # fmt: skip
        folder = Path(layout.clean_events(root), layout.partition(day))
        folder.mkdir(parents=True)
        (folder / CLEAN_MARKER).write_text(text)
    got = clean_fingerprints(Storage(None), root, ["2026-11-18", "2026-11-19", "2026-11-20"])
    # an unreadable marker and a missing day both count as changed: nothing is carried
    assert got == {"2026-11-18": ["abc", "r1"], "2026-11-19": None, "2026-11-20": None}
    assert carried_cutoffs(earlier(), BASIS, TONIGHT, {**CLEAN, "2026-11-19": None}) == []
