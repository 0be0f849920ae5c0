"""``Night``: run or skip each step of ``night_steps`` in order for one run date, and record the
night's state in ``_runs/<date>/nightly.json`` after every step (a failed or killed night
resumes at its failed step)."""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from typing import Any

from pyspark.sql import SparkSession

from jobs.night.options import NightlyConfig, step_sections
from jobs.night.plan import FAILED, SUCCEEDED, Plan, StepOutcome, state_document
from jobs.night.steps import NightStep, build_config, night_steps
from jobs.runtime import layout
from jobs.runtime.manifest import code_version, describe_failure, utc_now
from jobs.runtime.readers import date_window, explain_failure
from jobs.runtime.storage import Storage, join
from pipelines.errors import CartwheelError, InputError

log = logging.getLogger("cartwheel")


class Night:
    """The steps of one night: configs, plan, outcomes and the state document."""

    spark: SparkSession
    config: NightlyConfig
    sections: dict[str, dict[str, Any]]
    root: str
    day: dt.date
    plan: Plan
    outcomes: dict[str, StepOutcome]

    def __init__(self, spark: SparkSession, config: NightlyConfig) -> None:
        self.spark, self.config, self.storage = spark, config, Storage(spark)
        self.root, self.day = config.data_root, config.run_date
        self.sections = step_sections(config.step_config) if config.step_config else {}
        self.window = date_window(self.day, config.lookback_days)
        self.steps = night_steps(config)
        self.outcomes = {s.name: StepOutcome(s.name) for s in self.steps}
        self.plan = Plan.load(
            self.storage, self.root, self.day, force=config.force, from_step=config.from_step,
            keep_results_across_versions=config.keep_results_across_versions,
        )  # fmt: skip
        self.started, self.started_at = time.monotonic(), utc_now()

    def save(self, status: str) -> dict[str, Any]:
        """Write the night's state (``_runs/<date>/nightly.json``); returns it."""
        return self.plan.save(state_document(self, status))

    def manifest(self, name: str) -> dict[str, Any]:
        result = self.outcomes[name].result
        if result is None:
            raise InputError(f"the night has no {name} result to build on")
        return result.manifest

    def day_paths(self, table: str) -> list[str]:
        """The window's day partitions of a table folder (``layout.raw_events(root)``...)."""
        return [join(table, layout.partition(d)) for d in self.window]

    def run_step(self, index: int, step: NightStep) -> bool:
        """Run or skip one step; False if it failed."""
        outcome = self.outcomes[step.name]
        counter = f"[night {self.day}] {index}/{len(self.steps)} {step.name:<8}"
        began = time.monotonic()
        try:
            config = build_config(step, self)
            outcome.fingerprint = self.plan.fingerprint(config, *step.inputs(self))
            outcome.code_version = code_version()
            if self.plan.keep(outcome):
                log.info("%s skipped: same config and inputs as the run that finished %s",
                         counter, outcome.finished_at)  # fmt: skip
                return True
            log.info("%s starting", counter)
            outcome.result = step.run(self, config)
            outcome.status = SUCCEEDED if outcome.result.succeeded else FAILED
        except Exception as exc:  # a bad input, a bug, a full disk: record it, stop the night
            outcome.status, outcome.error = FAILED, describe_failure(exc, self.root)
            outcome.result = self.plan.failed_manifest(step.name)
            if not isinstance(exc, CartwheelError) and explain_failure(exc) is None:
                log.error("%s crashed:\n%s", counter, traceback.format_exc())  # a bug: the trace
        outcome.duration_s, outcome.finished_at = time.monotonic() - began, utc_now()
        if outcome.status == SUCCEEDED:
            log.info("%s %s", counter, outcome.line())
        else:
            log.error("%s FAILED after %.1fs: %s", counter, outcome.duration_s, outcome.error)
        return outcome.status == SUCCEEDED

    def run(self) -> str:
        """Check every config and the run date's raw day, then the steps until one fails."""
        for step in self.steps:
            build_config(step, self, check=True)  # a bad option fails before any step runs
        raw_day = join(layout.raw_events(self.root), layout.partition(self.day))
        if not self.storage.is_dir(raw_day):
            raise InputError(f"no raw events for the run date {self.day}: {raw_day} is missing")
        for index, step in enumerate(self.steps, start=1):
            ok = self.run_step(index, step)
            last = step is self.steps[-1]
            self.save("running" if ok and not last else (SUCCEEDED if ok else FAILED))
            if not ok:
                return FAILED
        return SUCCEEDED
