"""What every job's ``cli`` shares: logging, config parsing, the session, exit codes, staging."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import psutil
from pyspark.sql import SparkSession

from jobs.runtime import layout
from jobs.runtime.config import StepConfig, parse_config
from jobs.runtime.manifest import RunResult
from jobs.runtime.readers import explain_failure
from jobs.runtime.session import get_spark
from jobs.runtime.storage import Storage, join, local_path
from pipelines.errors import CartwheelError, ConfigError

C = TypeVar("C", bound=StepConfig)
log = logging.getLogger("cartwheel")


def setup_logging() -> None:
    """One progress line per event on stderr: ``HH:MM:SS message``."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def run_cli(
    step: str,
    config_cls: type[C],
    main: Callable[[SparkSession, C], RunResult],
    summarize: Callable[[RunResult], str],
    argv: Sequence[str] | None,
    description: str,
) -> int:
    """Parse flags, build the session, run ``main``; exit 0 on success, 1 on failure, 2 on bad config."""
    setup_logging()
    try:
        config = parse_config(config_cls, argv, prog=f"cartwheel {step}", description=description)
    except ConfigError as exc:
        print(f"cartwheel {step}: error: {exc}", file=sys.stderr)
        return 2
    root = local_path(str(getattr(config, "data_root", "") or ""))
    if root and os.path.exists(root) and not os.path.isdir(root):
        print(f"cartwheel {step}: error: data root {root} is a file, not a folder", file=sys.stderr)
        return 1
    spark = get_spark(f"cartwheel-{step}")
    try:
        result = main(spark, config)
    except CartwheelError as exc:
        print(f"cartwheel {step}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        # A bad file, a full or read-only disk, a file in place of the data root: one line
        # naming the path and the cause instead of a Java stack trace.
        explained = explain_failure(exc, getattr(config, "data_root", None))
        if explained is None:
            raise
        log.debug("cartwheel %s failed", step, exc_info=True)
        print(f"cartwheel {step}: error: {explained}", file=sys.stderr)
        return 1
    print(summarize(result))
    for warning in result.manifest.get("warnings", []):
        print(f"warning: {warning}")
    return 0 if result.succeeded else 1


STALE_STAGING_HOURS = 24


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _stale_staging(name: str, step: str, now: dt.datetime) -> bool:
    """Whether ``_staging/<name>`` is an abandoned folder of ``step``: its process (on this host)
    is gone, or it is older than STALE_STAGING_HOURS (any host)."""
    m = re.fullmatch(
        rf"{re.escape(step)}-(\d{{8}}T\d{{6}})-(?:([0-9a-f]{{8}})-(\d+)-)?[0-9a-f]{{8}}", name
    )
    if m is None:
        return False
    stamp = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    if now - stamp > dt.timedelta(hours=STALE_STAGING_HOURS):
        return True
    return m.group(2) == _host_tag() and not psutil.pid_exists(int(m.group(3)))


@contextlib.contextmanager
def staging_area(storage: Storage, data_root: str, step: str) -> Iterator[str]:
    """A fresh ``_staging/<step>-<time>-<host>-<pid>-<id>/`` folder under the data root, removed
    afterwards.

    Outputs are written here first and renamed into place only after every check passed, so a
    failed step publishes nothing and a reader never sees a half-written table. A run that was
    killed cannot remove its folder; the next successful run of the same step removes it.
    """
    now = dt.datetime.now(dt.UTC)
    parent = layout.staging(data_root)
    name = f"{step}-{now:%Y%m%dT%H%M%S}-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = join(parent, name)
    try:
        yield path
    finally:
        storage.delete(path)
    for other, is_dir in storage.list_dir(parent):
        if is_dir and _stale_staging(other, step, now):
            log.info(
                "[%s] removing %s, left by a run that did not finish", step, join(parent, other)
            )
            storage.delete(join(parent, other))


def format_counts(counts: dict[str, int]) -> str:
    """``a=1, b=2`` or ``none``."""
    return ", ".join(f"{k}={v:,}" for k, v in counts.items() if v) or "none"
