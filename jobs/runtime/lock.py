"""One run at a time per data root: a lock file created atomically, removed when the run ends.

The lock is ``<data-root>/_runs/_lock.json`` and names its holder (host, pid, run date, start
time, command). A second ``cartwheel nightly`` or ``backfill`` on the same data root refuses to
start with a message naming the holder. A lock left by a process that died on this host is
taken over with a warning; one from another host can only be cleared by hand or with
``--break-lock``, because this host cannot tell whether that process is still running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psutil

from jobs.runtime import layout
from jobs.runtime.fingerprint import digest
from jobs.runtime.manifest import utc_now
from jobs.runtime.storage import Storage
from pipelines.errors import CartwheelError

log = logging.getLogger("cartwheel")


class LockHeldError(CartwheelError):
    """Another run holds the data root's lock."""

    exit_code = 3


def lock_path(data_root: str) -> str:
    return layout.lock(data_root)


def _holder(storage: Storage, path: str) -> dict[str, Any]:
    try:
        doc = json.loads(storage.read_text(path))
        return doc if isinstance(doc, dict) else {}
    except Exception:  # a lock half-written by a crashed process: still a lock
        return {}


def _dead_here(holder: dict[str, Any]) -> bool:
    """Whether the holder ran on this host and its process is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    pid = holder["pid"]
    if not psutil.pid_exists(pid):
        return True
    try:  # the pid was reused by an unrelated process started after the lock
        started = dt.datetime.fromtimestamp(psutil.Process(pid).create_time(), dt.UTC)
        return started > dt.datetime.fromisoformat(holder["started_at"]) + dt.timedelta(seconds=5)
    except (psutil.Error, KeyError, ValueError):
        return False


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unreadable lock"
    return (
        f"run date {holder.get('run_date', '?')}, pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('started_at', '?')}"
    )


def _take_over(storage: Storage, path: str, stale: dict[str, Any], token: str) -> bool:
    """Remove the stale lock ``stale`` if this contender wins the right to; True if it did.

    Deleting a dead lock and then creating one's own is a race: a second contender that also
    saw the dead lock could delete the first one's fresh lock. So the right to delete one
    particular stale lock is itself taken with an exclusive create (a claim file named after
    that lock's token or content), and the winner checks that the lock is still the stale one
    before deleting it. Losers go back and find the winner's lock.
    """
    name = stale.get("token") or digest(stale)
    claim = f"{path}.takeover-{name}"
    if not storage.create_exclusive(claim, token):
        return False
    try:
        if _holder(storage, path) == stale:  # still the lock we judged stale
            storage.delete(path)
            return True
        return False
    finally:
        storage.delete(claim)


@contextlib.contextmanager
def data_root_lock(
    storage: Storage, data_root: str, run_date: str, *, break_lock: bool = False
) -> Iterator[dict[str, Any]]:
    """Hold the data root's lock for the body; LockHeldError if another run holds it."""
    path = lock_path(data_root)
    token = uuid.uuid4().hex
    me: dict[str, Any] = {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_date": run_date,
        "started_at": utc_now(),
        "command": " ".join(sys.argv),
    }
    for attempt in range(3):
        if storage.create_exclusive(path, json.dumps(me, indent=2) + "\n"):
            break
        holder = _holder(storage, path)
        if attempt < 2 and (break_lock or _dead_here(holder)):
            why = "--break-lock" if break_lock else "its process is gone"
            if _take_over(storage, path, holder, token):
                log.warning("removed the lock %s (%s): %s", path, describe(holder), why)
            continue  # whoever won the take-over may hold the lock now: look again
        raise LockHeldError(
            f"another cartwheel run holds the lock on {data_root} ({describe(holder)}); "
            f"not starting. Wait for it to finish; if it died on another host, delete {path} "
            "or pass --break-lock"
        )
    else:
        raise LockHeldError(f"could not take the lock on {data_root} ({path}): contended")
    try:
        yield me
    finally:
        if _holder(storage, path).get("token") == me["token"]:
            storage.delete(path)
