"""Run manifests: ``_runs/<run-date>/<step>.json`` under the data root, written last.

A manifest records what a step read and wrote and accounts for every row:
``rows_in == rows_out + rows_quarantined + sum(rows_filtered.values())``. ``StepRun`` is the
context manager every job wraps its work in: it times the step, and on exit writes the manifest
with ``status: succeeded`` or, if the step raised, ``status: failed`` and the error.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from jobs.runtime import layout
from jobs.runtime.config import StepConfig
from jobs.runtime.readers import explain_failure
from jobs.runtime.storage import Storage
from pipelines.errors import CartwheelError

log = logging.getLogger("cartwheel")

# The folder that holds jobs/, pipelines/ and udfs/: a checkout, site-packages or a --py-files zip.
CODE_ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``cartwheel <version>`` plus the git commit (and ``-dirty``) when run from a checkout."""
    try:
        version = metadata.version("cartwheel")
    except metadata.PackageNotFoundError:
        version = "unknown"
    repo = CODE_ROOT
    if (repo / ".git").exists():
        try:
            sha = _git(repo, "rev-parse", "--short=12", "HEAD")
            dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
            return f"{version}+g{sha}{'-dirty' if dirty else ''}"
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def describe_failure(exc: BaseException, data_root: str | None = None) -> str:
    """What a manifest, a night's summary and a log line say of a failure: one line naming the
    path and the cause when one can be found, else the exception's type and message."""
    explained = explain_failure(exc, data_root)
    if explained is not None and not isinstance(exc, CartwheelError):
        return f"{type(exc).__name__}: {explained}"
    return f"{type(exc).__name__}: {exc}"


def manifest_path(data_root: str, run_date: dt.date, step: str) -> str:
    """Where ``step``'s manifest for ``run_date`` lives under ``data_root``."""
    return layout.manifest(data_root, run_date, step)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunResult:
    """What a job's ``main`` returns: its manifest, plus step-specific details for callers."""

    step: str
    status: str
    manifest: dict[str, Any]
    manifest_path: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class StepRun:
    """Times a step and writes its manifest last, whether the step succeeded or failed."""

    def __init__(self, spark: Any, step: str, config: StepConfig) -> None:
        self.step = step
        self.config = config
        self.storage = Storage(spark)
        self.path = manifest_path(config.data_root, config.manifest_date, step)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.rows_in = 0
        self.rows_out = 0
        self.rows_quarantined: dict[str, int] = {}
        self.rows_filtered: dict[str, int] = {}
        self.rows_consumed: dict[str, int] = {}
        self.extra: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.manifest: dict[str, Any] = {}
        sc = spark.sparkContext
        self.spark_info = {"master": sc.master, "app_id": sc.applicationId}
        self._started = time.monotonic()
        self._started_at = utc_now()

    def __enter__(self) -> StepRun:
        log.info(
            "[%s] started for %s (data root %s)",
            self.step,
            self.config.manifest_date,
            self.config.data_root,
        )
        return self

    def record(
        self,
        *,
        rows_in: int,
        rows_out: int,
        quarantined: dict[str, int] | None = None,
        filtered: dict[str, int] | None = None,
        consumed: dict[str, int] | None = None,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """Record the step's row accounting; raises if the rows do not add up.

        ``consumed`` counts input rows that were used but not emitted as rows of their own (an
        event that only appears inside other examples' histories), by how they were used. A
        reason that removed more than ``filter_warn_share`` of the input is a warning, followed
        by ``hints[reason]`` when the step knows what usually causes it.
        """
        self.rows_in, self.rows_out = rows_in, rows_out
        self.rows_quarantined = dict(sorted((quarantined or {}).items()))
        self.rows_filtered = dict(sorted((filtered or {}).items()))
        self.rows_consumed = dict(sorted((consumed or {}).items()))
        accounted = (
            rows_out
            + sum(self.rows_quarantined.values())
            + sum(self.rows_filtered.values())
            + sum(self.rows_consumed.values())
        )
        if accounted != rows_in:
            raise CartwheelError(
                f"{self.step}: row accounting does not add up: {rows_in} in, {rows_out} out, "
                f"{sum(self.rows_quarantined.values())} quarantined, "
                f"{sum(self.rows_filtered.values())} filtered, "
                f"{sum(self.rows_consumed.values())} consumed"
            )
        self._warn_on_large_shares(hints or {})

    def warn(self, message: str) -> None:
        """A finding the step's user must see although the step succeeds: logged as a warning
        now, listed under ``warnings`` in the manifest (and so in the night's report)."""
        log.warning("[%s] WARNING: %s", self.step, message)
        self.warnings.append(message)

    def _warn_on_large_shares(self, hints: Mapping[str, str]) -> None:
        limit = self.config.filter_warn_share
        if self.rows_in == 0 or limit >= 1:
            return
        removed = [("quarantined", self.rows_quarantined), ("filtered", self.rows_filtered)]
        for verb, counts in removed:
            for reason, rows in counts.items():
                if rows > limit * self.rows_in:
                    hint = f"; {hints[reason]}" if reason in hints else ""
                    self.warn(
                        f"{verb} {rows:,} of {self.rows_in:,} input rows ({rows / self.rows_in:.1%}) "
                        f"as {reason}, over the filter_warn_share of {limit:.0%}{hint}"
                    )

    def _document(self, status: str, error: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "step": self.step,
            "status": status,
            "run_date": self.config.manifest_date.isoformat(),
            "config": self.config.to_record(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": sum(self.rows_quarantined.values()),
            "rows_quarantined_by_reason": self.rows_quarantined,
            "rows_filtered": self.rows_filtered,
            "rows_consumed": self.rows_consumed,
            "started_at": self._started_at,
            "finished_at": utc_now(),
            "duration_s": round(time.monotonic() - self._started, 3),
            "code_version": code_version(),
            # where the code ran from: the checkout, site-packages, or a --py-files zip
            "code_path": str(CODE_ROOT),
            "spark": self.spark_info,
            "warnings": self.warnings,
        }
        if error is not None:
            doc["error"] = error
        doc.update(self.extra)
        return doc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = "succeeded" if exc is None else "failed"
        error = None if exc is None else describe_failure(exc, self.config.data_root)
        self.manifest = self._document(status, error)
        try:
            self.storage.write_json(self.path, self.manifest)
        except Exception as write_exc:  # the step's own error matters more than the manifest's
            log.error("[%s] could not write manifest %s: %s", self.step, self.path, write_exc)
            # Never leave an earlier run's manifest standing (it may say "succeeded"); deleting
            # it may also free the space the new one needs.
            try:
                self.storage.delete(self.path)
                self.storage.write_json(self.path, self.manifest)
            except Exception as retry_exc:
                log.error("[%s] no manifest for this run: %s", self.step, retry_exc)
                if exc is None:
                    raise write_exc from None
        log.info(
            "[%s] %s in %.1fs: %d in, %d out, %d quarantined, %d filtered; manifest %s",
            self.step,
            status,
            self.manifest["duration_s"],
            self.rows_in,
            self.rows_out,
            self.manifest["rows_quarantined"],
            sum(self.rows_filtered.values()),
            self.path,
        )

    def result(self, **details: Any) -> RunResult:
        return RunResult(self.step, self.manifest["status"], self.manifest, self.path, details)
