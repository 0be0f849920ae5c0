"""The night's plan: a fingerprint per step (its config, the files it reads, and what it builds
on), and the rule that keeps a finished step or redoes it.

A step is skipped when the night's state (``_runs/<date>/nightly.json``) records it finished
with the same fingerprint under the same cartwheel version, and its manifest and outputs are
still there. ``--force`` redoes every step, ``--from-step S`` redoes S and every later one, and
a new code version redoes every step unless ``--keep-results-across-versions``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any

from jobs.night.steps import STEP_NAMES
from jobs.runtime import layout
from jobs.runtime.config import StepConfig
from jobs.runtime.fingerprint import digest, paths_digest, relative
from jobs.runtime.manifest import RunResult, code_version, manifest_path, utc_now
from jobs.runtime.storage import Storage

log = logging.getLogger("cartwheel")
SUCCEEDED, SKIPPED, FAILED, NOT_RUN = "succeeded", "skipped", "failed", "not run"
# How a step goes about its work when forced, and where the data root lives: not what it computes.
NOT_FINGERPRINTED = ("restart", "incremental", "data_root")


def state_path(data_root: str, day: dt.date) -> str:
    return manifest_path(data_root, day, "nightly")


def state_document(night: Any, status: str) -> dict[str, Any]:
    """The night's state (``_runs/<date>/nightly.json``): config, timing, every step's outcome."""
    return {
        "step": "nightly",
        "status": status,
        "run_date": night.day.isoformat(),
        "config": night.config.to_record(),
        "started_at": night.started_at,
        "finished_at": utc_now(),
        "duration_s": round(time.monotonic() - night.started, 3),
        "steps": {n: o.record() for n, o in night.outcomes.items()},
        "published": night.outcomes["publish"].status in (SUCCEEDED, SKIPPED),
        "recs_latest": layout.latest(night.root),
        "report": layout.reports(night.root, night.day, "night.html"),
    }


@dataclasses.dataclass
class StepOutcome:
    """One step of a night: what happened, how long it took, and its manifest."""

    name: str
    status: str = NOT_RUN
    duration_s: float = 0.0
    fingerprint: str | None = None
    code_version: str | None = None
    result: RunResult | None = None
    error: str | None = None
    finished_at: str | None = None

    def record(self) -> dict[str, Any]:
        m = self.result.manifest if self.result else {}
        return {
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "finished_at": self.finished_at,
            "manifest": self.result.manifest_path if self.result else None,
            "rows_in": m.get("rows_in"),
            "rows_out": m.get("rows_out"),
            "rows_quarantined": m.get("rows_quarantined"),
            "rows_filtered": sum((m.get("rows_filtered") or {}).values()),
            "error": self.error,
            "warnings": list(m.get("warnings") or []),
        }

    def line(self) -> str:
        """``succeeded in 12.3s: 1,000 in, 990 out, ...`` for a step's progress line."""
        m = self.result.manifest if self.result else {}
        parts = [f"{m.get('rows_in', 0):,} in", f"{m.get('rows_out', 0):,} out"]
        if m.get("rows_quarantined"):
            parts.append(f"{m['rows_quarantined']:,} quarantined")
        filtered = sum((m.get("rows_filtered") or {}).values())
        if filtered:
            parts.append(f"{filtered:,} filtered")
        return f"{self.status} in {self.duration_s:.1f}s: {', '.join(parts)}"


@dataclasses.dataclass
class Plan:
    """Skip or redo, for the steps of one night on one data root."""

    storage: Storage
    root: str
    day: dt.date
    force: bool = False
    from_step: str | None = None
    keep_results_across_versions: bool = False
    previous: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, storage: Storage, root: str, day: dt.date, **rules: Any) -> Plan:
        """The plan for ``day``, with the steps its earlier runs recorded."""
        path = state_path(root, day)
        previous = storage.read_json(path).get("steps", {}) if storage.exists(path) else {}
        return cls(storage, root, day, previous=previous, **rules)

    def fingerprint(
        self, config: StepConfig | None, paths: list[str], extra: dict[str, Any]
    ) -> str:
        record = {
            k: relative(v, self.root) if isinstance(v, str) else v
            for k, v in (config.to_record() if config else {}).items()
            if k not in NOT_FINGERPRINTED
        }
        return digest(
            {
                "config": record,
                "inputs": paths_digest(self.storage, paths, self.root),
                "extra": extra,
            }
        )

    def redo(self, name: str) -> bool:
        if self.force:
            return True
        return self.from_step is not None and STEP_NAMES.index(name) >= STEP_NAMES.index(
            self.from_step
        )

    def skippable(self, name: str, fingerprint: str) -> RunResult | None:
        """The earlier result of ``name`` if it succeeded with this fingerprint and still holds."""
        before = self.previous.get(name) or {}
        if self.redo(name) or before.get("fingerprint") != fingerprint:
            return None
        if not self.keep_results_across_versions and before.get("code_version") != code_version():
            log.info(
                "[night %s] %s ran under cartwheel %s, this is %s: redoing it "
                "(--keep-results-across-versions keeps it)",
                self.day,
                name,
                before.get("code_version") or "an unrecorded version",
                code_version(),
            )
            return None
        if before.get("status") not in (SUCCEEDED, SKIPPED):
            return None
        path = manifest_path(self.root, self.day, name)
        if not self.storage.exists(path):
            return None
        manifest = self.storage.read_json(path)
        if manifest.get("status") != SUCCEEDED:
            return None
        if name == "score" and not self.scores_available(manifest):
            return None
        return RunResult(name, SUCCEEDED, manifest, path)

    def keep(self, outcome: StepOutcome) -> bool:
        """Mark ``outcome`` skipped, with the earlier run's result and code version, if that
        run may be kept (``skippable``); False if the step must run."""
        earlier = self.skippable(outcome.name, outcome.fingerprint or "")
        if earlier is None:
            return False
        outcome.status, outcome.result = SKIPPED, earlier
        outcome.finished_at = earlier.manifest.get("finished_at")
        outcome.code_version = (self.previous.get(outcome.name) or {}).get("code_version")
        return True

    def failed_manifest(self, name: str) -> RunResult | None:
        """This failure's manifest, if the step wrote one (not an older run's)."""
        path = manifest_path(self.root, self.day, name)
        manifest = self.storage.read_json(path) if self.storage.exists(path) else {}
        return RunResult(name, FAILED, manifest, path) if manifest.get("status") == FAILED else None

    def save(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.storage.write_json(state_path(self.root, self.day), doc)
        return doc

    def scores_available(self, manifest: dict[str, Any]) -> bool:
        """Pending scores still there, or already published by this night's publish step."""
        if all(self.storage.exists(p) for p in manifest["outputs"]):
            return True
        published = self.previous.get("publish") or {}
        return published.get("status") in (SUCCEEDED, SKIPPED) and all(
            self.storage.exists(layout.recs(self.root, t, self.day))
            for t in layout.RECS_TABLES
            if any(f"/{t}/" in p for p in manifest["outputs"])
        )
