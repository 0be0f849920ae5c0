"""The data root's lock under contention: a stale lock is taken over by exactly one run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs.runtime.lock import LockHeldError, data_root_lock, lock_path
from jobs.runtime.storage import Storage

pytestmark = pytest.mark.unit

CONTENDERS = 4
ROUNDS = 25


class SlowStorage(Storage):
    """Local storage whose deletes take a moment: widens the window between reading a lock
    and acting on it, where a take-over race lives (fault injection, not a stand-in)."""

    def delete(self, path: str) -> None:
        time.sleep(0.002)
        super().delete(path)


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def stale_lock(root: Path, pid: int, n: int) -> None:
    path = Path(lock_path(str(root)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"token": f"stale-{n}", "host": socket.gethostname(), "pid": pid,
             "run_date": "2026-11-01", "started_at": "2026-11-01T00:00:00+00:00"}
        )
    )  # fmt: skip


def contend_once(storage: Storage, root: Path) -> tuple[int, int]:
    """CONTENDERS threads start together on ``root``; (most holders at once, runs that held)."""
    holding: list[int] = []
    most, held = 0, 0
    guard = threading.Lock()
    barrier = threading.Barrier(CONTENDERS)

    def contend(i: int) -> None:
        nonlocal most, held
        barrier.wait()
        try:
            with data_root_lock(storage, str(root), f"2026-11-{i + 10}"):
                with guard:
                    holding.append(i)
                    most, held = max(most, len(holding)), held + 1
                time.sleep(0.02)
                with guard:
                    holding.remove(i)
        except LockHeldError:
            pass

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return most, held


def test_contenders_for_a_stale_lock_never_hold_it_together(tmp_path: Path) -> None:
    storage = SlowStorage(None)
    pid = dead_pid()
    worst = 0
    for n in range(ROUNDS):
        root = tmp_path / f"round-{n}"
        stale_lock(root, pid, n)
        most, held = contend_once(storage, root)
        worst = max(worst, most)
        assert held >= 1, f"round {n}: nobody took over the stale lock"
        assert not Path(lock_path(str(root))).exists(), "the last holder released the lock"
        assert not list(Path(lock_path(str(root))).parent.glob("*.takeover-*"))
    assert worst == 1, f"{worst} runs held the lock at once"


def test_a_live_lock_is_not_taken_over_by_a_contender_that_saw_a_stale_one(
    tmp_path: Path,
) -> None:
    storage = Storage(None)
    stale_lock(tmp_path, dead_pid(), 0)
    stale = json.loads(Path(lock_path(str(tmp_path))).read_text())
    with data_root_lock(storage, str(tmp_path), "2026-11-02") as me:
        # a late contender acting on what it read before: its take-over must not remove me
        from jobs.runtime.lock import _take_over

        assert not _take_over(storage, lock_path(str(tmp_path)), stale, "late")
        assert json.loads(Path(lock_path(str(tmp_path))).read_text())["token"] == me["token"]
