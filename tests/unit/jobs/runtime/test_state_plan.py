"""Whether a night advances yesterday's user history state or rebuilds it, and why."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from jobs.runtime import layout
from jobs.runtime import user_state as US
from jobs.runtime.storage import Storage
from pipelines.errors import InputError

pytestmark = pytest.mark.unit

NIGHT = dt.date(2026, 11, 21)
YESTERDAY = NIGHT - dt.timedelta(days=1)
LOOKBACK, LENGTH = 3, 5


def data_root(tmp_path: Path) -> tuple[Storage, str]:
    """A root with clean partitions for the week before NIGHT and yesterday's state meta."""
    storage, root = Storage(None), str(tmp_path / "data")
    for n in range(7):
        day = NIGHT - dt.timedelta(days=n)
        folder = Path(layout.clean_events(root), layout.partition(day))
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x" * (n + 1))
    state = Path(layout.user_history(root, YESTERDAY))
    state.mkdir(parents=True)
    meta = {
        "lookback_days": LOOKBACK,
        "history_length": LENGTH,
        "clean_partitions": US.clean_digests(storage, root, US.depends_on(YESTERDAY, LOOKBACK)),
    }
    (state / "_meta.json").write_text(json.dumps(meta))
    return storage, root


def test_an_unchanged_window_advances_yesterdays_state(tmp_path: Path) -> None:
    storage, root = data_root(tmp_path)
    got = US.plan(storage, root, NIGHT, LOOKBACK, LENGTH)
    assert (got.built, got.previous) == (US.INCREMENTAL, layout.user_history(root, YESTERDAY))


def test_a_missing_state_is_rebuilt_with_the_reason(tmp_path: Path) -> None:
    storage, root = data_root(tmp_path)
    got = US.plan(storage, root, NIGHT + dt.timedelta(days=1), LOOKBACK, LENGTH)
    assert got.built == US.REBUILT and got.previous is None
    assert got.reason.startswith(f"no user history state of {NIGHT} at ")


def test_a_state_of_another_window_or_length_is_rebuilt(tmp_path: Path) -> None:
    storage, root = data_root(tmp_path)
    for lookback, length in ((LOOKBACK + 1, LENGTH), (LOOKBACK, LENGTH + 1)):
        got = US.plan(storage, root, NIGHT, lookback, length)
        assert got.built == US.REBUILT
        assert f"built for --lookback-days {LOOKBACK} and history length {LENGTH}" in got.reason


def test_a_recleaned_day_the_state_holds_forces_a_rebuild_naming_it(tmp_path: Path) -> None:
    storage, root = data_root(tmp_path)
    # the window's first day's partition before it (W-1) still holds events the state keeps
    late = NIGHT - dt.timedelta(days=LOOKBACK)
    (Path(layout.clean_events(root), layout.partition(late)) / "part-1.parquet").write_bytes(b"y")
    got = US.plan(storage, root, NIGHT, LOOKBACK, LENGTH)
    assert got.built == US.REBUILT
    assert got.reason.endswith(f"clean/events/{layout.partition(late)}")
    # a partition older than anything the state keeps may change freely
    older = Path(layout.clean_events(root), layout.partition(late - dt.timedelta(days=1)))
    (older / "part-1.parquet").write_bytes(b"y")
    (Path(layout.clean_events(root), layout.partition(late)) / "part-1.parquet").unlink()
    assert US.plan(storage, root, NIGHT, LOOKBACK, LENGTH).built == US.INCREMENTAL


def test_an_unreadable_state_meta_is_named(tmp_path: Path) -> None:
    storage, root = data_root(tmp_path)
    meta = Path(layout.user_history(root, YESTERDAY), "_meta.json")
    meta.write_text("{not json")
    with pytest.raises(InputError, match=rf"user history state: {meta}"):
        US.plan(storage, root, NIGHT, LOOKBACK, LENGTH)
