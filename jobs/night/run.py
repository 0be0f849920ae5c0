"""``Night``: run or skip each step of ``STEPS`` in order for one run date, and record the
night's state in ``_runs/<date>/nightly.json`` after every step (a failed or killed night
resumes at its failed step)."""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from typing import Any

from pyspark.sql import SparkSession

from jobs.night import publish
from jobs.night.options import NightlyConfig, step_sections
from jobs.night.plan import FAILED, SKIPPED, SUCCEEDED, Plan, StepOutcome, state_path
from jobs.night.steps import STEPS, NightStep
from jobs.runtime import layout
from jobs.runtime.config import DatedStepConfig, config_from_values
from jobs.runtime.manifest import RunResult, code_version, describe_failure, manifest_path, utc_now
from jobs.runtime.readers import date_window, explain_failure
from jobs.runtime.storage import Storage, join
from pipelines.errors import CartwheelError, ConfigError, InputError

log = logging.getLogger("cartwheel")


class Night:
    """The steps of one night: configs, plan, outcomes and the state document."""

    config: NightlyConfig
    root: str
    day: dt.date
    plan: Plan
    outcomes: dict[str, StepOutcome]

    def __init__(self, spark: SparkSession, config: NightlyConfig) -> None:
        self.spark, self.config, self.storage = spark, config, Storage(spark)
        self.root, self.day = config.data_root, config.run_date
        self.sections = step_sections(config.step_config) if config.step_config else {}
        self.window = date_window(self.day, config.lookback_days)
        self.outcomes = {s.name: StepOutcome(s.name) for s in STEPS}
        self.plan = Plan.load(
            self.storage, self.root, self.day, force=config.force, from_step=config.from_step,
            keep_results_across_versions=config.keep_results_across_versions,
        )  # fmt: skip
        self.started, self.started_at = time.monotonic(), utc_now()

    def save(self, status: str) -> dict[str, Any]:
        doc = {
            "step": "nightly",
            "status": status,
            "run_date": self.day.isoformat(),
            "config": self.config.to_record(),
            "started_at": self.started_at,
            "finished_at": utc_now(),
            "duration_s": round(time.monotonic() - self.started, 3),
            "steps": {n: o.record() for n, o in self.outcomes.items()},
            "published": self.outcomes["publish"].status in (SUCCEEDED, SKIPPED),
            "recs_latest": layout.latest(self.root),
            "report": layout.reports(self.root, self.day, "night.html"),
        }
        self.storage.write_json(state_path(self.root, self.day), doc)
        return doc

    def step_config(self, step: NightStep, *, check: bool = False) -> DatedStepConfig | None:
        """The step's config: the night's values, then its --step-config section."""
        if step.config is None:
            return None
        section = self.sections.get(step.name, {})
        values = {
            "data_root": self.root,
            "run_date": self.day,
            **step.derive(self, check),
            **section,
        }
        source = f"{self.config.step_config} [{step.name}]" if section else step.name
        try:
            return config_from_values(step.config, values, source=source)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def manifest(self, name: str) -> dict[str, Any]:
        result = self.outcomes[name].result
        if result is None:
            raise InputError(f"the night has no {name} result to build on")
        return result.manifest

    def candidate_uri(self) -> str:
        m = self.manifest("train")
        return f"models:/{m['registered_model']}/{m['model_version']}"

    def day_paths(self, table: str) -> list[str]:
        """The window's day partitions of a table folder (``layout.raw_events(root)``...)."""
        return [join(table, layout.partition(d)) for d in self.window]

    def execute(self, step: NightStep, config: DatedStepConfig | None) -> RunResult:
        if step.run is not None:
            return step.run(self.spark, config)
        return publish.publish(
            self.spark, self.root, self.day, self.manifest("score"), self.manifest("evaluate")
        )

    def run_step(self, index: int, step: NightStep) -> bool:
        """Run or skip one step; False if it failed."""
        outcome = self.outcomes[step.name]
        counter = f"[night {self.day}] {index}/{len(STEPS)} {step.name:<8}"
        began = time.monotonic()
        try:
            config = self.step_config(step)
            outcome.fingerprint = self.plan.fingerprint(config, *step.inputs(self))
            outcome.code_version = code_version()
            earlier = self.plan.skippable(step.name, outcome.fingerprint)
            if earlier is not None:
                outcome.status, outcome.result = SKIPPED, earlier
                outcome.finished_at = earlier.manifest.get("finished_at")
                outcome.code_version = self.plan.recorded_version(step.name)
                log.info("%s skipped: same config and inputs as the run that finished %s",
                         counter, outcome.finished_at)  # fmt: skip
                return True
            log.info("%s starting", counter)
            outcome.result = self.execute(step, config)
            outcome.status = SUCCEEDED if outcome.result.succeeded else FAILED
        except Exception as exc:  # a bad input, a bug, a full disk: record it, stop the night
            outcome.status = FAILED
            outcome.error = describe_failure(exc, self.root)
            outcome.result = self.failed_manifest(step.name)
            if not isinstance(exc, CartwheelError) and explain_failure(exc) is None:
                log.error("%s crashed:\n%s", counter, traceback.format_exc())  # a bug: the trace
        outcome.duration_s, outcome.finished_at = time.monotonic() - began, utc_now()
        if outcome.status == SUCCEEDED:
            log.info("%s %s", counter, outcome.line())
        else:
            log.error("%s FAILED after %.1fs: %s", counter, outcome.duration_s, outcome.error)
        return outcome.status == SUCCEEDED

    def failed_manifest(self, name: str) -> RunResult | None:
        """This failure's manifest, if the step wrote one (not an older run's)."""
        path = manifest_path(self.root, self.day, name)
        manifest = self.storage.read_json(path) if self.storage.exists(path) else {}
        return RunResult(name, FAILED, manifest, path) if manifest.get("status") == FAILED else None

    def run(self) -> str:
        """Check every config and the run date's raw day, then the steps until one fails."""
        for step in STEPS:
            self.step_config(step, check=True)  # a bad option fails before any step runs
        raw_day = join(layout.raw_events(self.root), layout.partition(self.day))
        if not self.storage.is_dir(raw_day):
            raise InputError(f"no raw events for the run date {self.day}: {raw_day} is missing")
        for index, step in enumerate(STEPS, start=1):
            ok = self.run_step(index, step)
            last = step is STEPS[-1]
            self.save("running" if ok and not last else (SUCCEEDED if ok else FAILED))
            if not ok:
                return FAILED
        return SUCCEEDED
