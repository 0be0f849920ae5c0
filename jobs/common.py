"""What every job's ``cli`` shares: logging, config parsing, the session, exit codes, staging."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from pyspark.sql import SparkSession

from jobs.config import StepConfig, parse_config
from jobs.manifest import RunResult
from jobs.session import get_spark
from jobs.storage import Storage, join
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
    spark = get_spark(f"cartwheel-{step}")
    try:
        result = main(spark, config)
    except CartwheelError as exc:
        print(f"cartwheel {step}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(summarize(result))
    return 0 if result.succeeded else 1


@contextlib.contextmanager
def staging_area(storage: Storage, data_root: str, step: str) -> Iterator[str]:
    """A fresh ``_staging/<step>/<id>/`` folder under the data root, removed afterwards.

    Outputs are written here first and renamed into place only after every check passed, so a
    failed step publishes nothing and a reader never sees a half-written table.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = join(data_root, "_staging", f"{step}-{stamp}-{uuid.uuid4().hex[:8]}")
    try:
        yield path
    finally:
        storage.delete(path)


def format_counts(counts: dict[str, int]) -> str:
    """``a=1, b=2`` or ``none``."""
    return ", ".join(f"{k}={v:,}" for k, v in counts.items() if v) or "none"
