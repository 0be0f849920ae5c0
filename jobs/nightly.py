"""cartwheel nightly: one command runs a whole night (clean, label, shard, train, score,
evaluate, publish) for ``--run-date``.

* Incremental: clean reads only the days of the window whose raw files are new or changed.
* Resumable: a step whose manifest says it succeeded, with the same config and inputs (a
  fingerprint of both is kept in ``_runs/<date>/nightly.json``), is skipped; after a failure the
  next run starts at the failed step. ``--force`` redoes every step, ``--from-step S`` redoes S
  and everything after it.
* Locked: one run per data root at a time (``_runs/_lock.json``); a second one refuses to start.
* Atomic: score writes into ``_pending/dt=<date>/``; the recommendation tables for the date are
  published into ``recs/`` (and ``recs/_latest.json`` moves) only after evaluate has passed its
  quality gate and promoted the night's model. A failed night leaves ``recs/`` as it was.

Exit codes: 0 the night succeeded, 1 a step failed (the summary names it), 2 bad config,
3 another run holds the lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from pyspark.sql import SparkSession

from jobs import clean, evaluate, label, score, shard, train
from jobs.common import run_cli
from jobs.config import DatedStepConfig, StepConfig, config_from_values, load_yaml, opt
from jobs.fingerprint import digest, paths_digest, relative
from jobs.lock import data_root_lock
from jobs.manifest import (
    RunResult,
    StepRun,
    code_version,
    describe_failure,
    manifest_path,
    utc_now,
)
from jobs.readers import date_window, explain_failure, partition_name
from jobs.runtime import layout
from jobs.storage import Storage, join
from pipelines.errors import CartwheelError, ConfigError, InputError, QualityGateError

log = logging.getLogger("cartwheel")

NIGHT_STEPS: tuple[str, ...] = (
    "clean", "label", "shard", "train", "score", "evaluate", "publish",
)  # fmt: skip
STEP_CONFIGS: dict[str, type[DatedStepConfig]] = {
    "clean": clean.CleanConfig,
    "label": label.LabelConfig,
    "shard": shard.ShardConfig,
    "train": train.TrainConfig,
    "score": score.ScoreConfig,
    "evaluate": evaluate.EvaluateConfig,
}
# Set by the night itself; a --step-config section may not override them.
MANAGED_KEYS = ("data_root", "run_date", "config", "output_root", "incremental", "restart")
RECS_TABLES = layout.RECS_TABLES
SUCCEEDED, SKIPPED, FAILED, NOT_RUN = "succeeded", "skipped", "failed", "not run"


@dataclasses.dataclass(frozen=True, kw_only=True)
class NightOptions:
    """The knobs of a night (shared by ``nightly`` and ``backfill``)."""

    lookback_days: int = opt(
        30, help="days of events a night uses: cleaned (incrementally), labelled and scored"
    )
    epochs: int = opt(5, help="maximum training epochs")
    batch_size: int = opt(
        256, help="examples per worker per step; a small night uses smaller batches"
    )
    num_proc: int = opt(2, help="training processes")
    k: int = opt(50, help="recommendations per user and similar items per item")
    gate_min_ratio: float = opt(
        1.0,
        help="evaluation passes only if the model reaches this x popularity on recall@20 "
        "(0: no gate)",
    )
    champion_tolerance: float = opt(
        0.05,
        help="the night's model replaces the champion when within this fraction of it; "
        "otherwise the night fails and publishes nothing",
    )
    step_config: str | None = opt(
        None,
        help="YAML file with a section per step (clean, label, shard, train, score, evaluate) "
        "of that step's flags; a section overrides what the night derives",
    )
    force: bool = opt(False, help="redo every step, even those whose inputs are unchanged")
    from_step: str | None = opt(None, help="redo this step and every later one")
    break_lock: bool = opt(
        False, help="remove another run's lock first (only when you know that run is dead)"
    )
    keep_results_across_versions: bool = opt(
        False,
        help="skip a finished step even if it ran under another cartwheel version (by default "
        "a new version redoes the night's steps)",
    )

    def validate_night(self) -> None:
        for name in ("lookback_days", "epochs", "batch_size", "num_proc", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be >= 1"
                )
        evaluate.check_gate_values(self.gate_min_ratio, self.champion_tolerance)
        if self.from_step is not None and self.from_step not in NIGHT_STEPS:
            raise ConfigError(
                f"invalid config value from_step={self.from_step!r}: one of {', '.join(NIGHT_STEPS)}"
            )
        if self.step_config is not None:
            step_sections(self.step_config)  # fails now, naming the file and section

    def night_options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(NightOptions)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class NightlyConfig(DatedStepConfig, NightOptions):
    """Flags of ``cartwheel nightly``."""

    def validate(self) -> None:
        DatedStepConfig.validate(self)
        self.validate_night()


@dataclasses.dataclass(frozen=True, kw_only=True)
class PublishConfig(DatedStepConfig):
    """The publish step's (internal) config: which date's pending tables to publish."""


def step_sections(path: str) -> dict[str, dict[str, Any]]:
    """The per-step sections of a ``--step-config`` file; ConfigError naming what is wrong."""
    doc = load_yaml(path)
    unknown = sorted(set(doc) - set(STEP_CONFIGS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(unknown)}; sections are step names: "
            f"{', '.join(STEP_CONFIGS)}"
        )
    sections: dict[str, dict[str, Any]] = {}
    for name, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: section {name} must be a mapping of {name} flags")
        values = {str(k).replace("-", "_"): v for k, v in body.items()}
        managed = sorted(set(values) & set(MANAGED_KEYS))
        if managed:
            raise ConfigError(
                f"{path}: section {name} sets {', '.join(managed)}, which the night sets itself"
            )
        sections[name] = values
    return sections


def state_path(data_root: str, day: dt.date) -> str:
    return manifest_path(data_root, day, "nightly")


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
        }


class Night:
    """Plans, runs or skips, and records the steps of one night."""

    def __init__(self, spark: SparkSession, config: NightlyConfig) -> None:
        self.spark = spark
        self.config = config
        self.storage = Storage(spark)
        self.root = config.data_root
        self.day = config.run_date
        self.sections = step_sections(config.step_config) if config.step_config else {}
        self.window = date_window(self.day, config.lookback_days)
        self.outcomes = {name: StepOutcome(name) for name in NIGHT_STEPS}
        self.relabel = False  # set when examples/ holds another date's labels
        self.previous: dict[str, Any] = self._load_state()
        self.started = time.monotonic()
        self.started_at = utc_now()

    # -- state ----------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        path = state_path(self.root, self.day)
        if not self.storage.exists(path):
            return {}
        doc: dict[str, Any] = self.storage.read_json(path)
        return doc.get("steps", {})

    def document(self, status: str) -> dict[str, Any]:
        return {
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

    def save(self, status: str) -> dict[str, Any]:
        doc = self.document(status)
        self.storage.write_json(state_path(self.root, self.day), doc)
        return doc

    # -- step configs ---------------------------------------------------------------------------

    def step_config(self, name: str, derived: dict[str, Any]) -> DatedStepConfig:
        values = {
            "data_root": self.root,
            "run_date": self.day,
            **derived,
            **self.sections.get(name, {}),
        }
        source = f"{self.config.step_config} [{name}]" if name in self.sections else name
        try:
            return config_from_values(STEP_CONFIGS[name], values, source=source)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def derived(self, name: str, *, check: bool = False) -> dict[str, Any]:
        """The values the night gives a step (before its --step-config section); ``check``:
        placeholders for what only an upstream step can tell (shard rows, the model)."""
        c = self.config
        if name == "clean":
            # forced: clean every day again; otherwise only new or changed days
            return {
                "days": c.lookback_days,
                "incremental": not self.redo("clean"),
                "allow_missing_days": True,
            }
        if name == "label":
            return {"lookback_days": c.lookback_days}
        if name == "shard":
            return {"workers": c.num_proc}
        if name == "train":
            shard_rows = (
                16 * c.batch_size * c.num_proc
                if check
                else self.manifest("shard")["splits"]["train"]["rows"]
            )
            # A small night still gets several steps per epoch.
            batch = max(16, min(c.batch_size, shard_rows // (8 * c.num_proc)))
            return {
                "epochs": c.epochs,
                "batch_size": batch,
                "num_proc": c.num_proc,
                "restart": self.redo("train"),
            }
        model = "models:/check/1" if check else self.candidate_uri()
        if name == "score":
            return {
                "model_uri": model,
                "k": c.k,
                "lookback_days": c.lookback_days,
                "output_root": layout.pending(self.root, self.day),
            }
        if name == "evaluate":
            return {
                "model_uri": model,
                "gate_min_ratio": c.gate_min_ratio,
                "champion_tolerance": c.champion_tolerance,
            }
        raise KeyError(name)

    def check_configs(self) -> None:
        """Build and validate every step's config as the night will (with placeholders for
        upstream results): a bad night option or --step-config section fails here, before any
        step runs, instead of minutes later in the step that uses it."""
        for name in STEP_CONFIGS:
            self.step_config(name, self.derived(name, check=True))

    # -- inputs ---------------------------------------------------------------------------------

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
        return [join(table, partition_name(d)) for d in self.window]

    def inputs(self, name: str) -> tuple[list[str], dict[str, Any]]:
        """(paths whose files the step reads, other things it depends on) for its fingerprint."""
        catalog = layout.raw_catalog(self.root)
        if name == "clean":
            return self.day_paths(layout.raw_events(self.root)), {}
        if name == "label":
            return self.day_paths(layout.clean_events(self.root)), {}
        if name == "shard":  # examples/ is shared by every date: chain on label instead
            return [], {"label": self.outcomes["label"].fingerprint}
        if name == "train":
            return [layout.shards(self.root, self.day.isoformat())], {}
        if name == "score":
            return [*self.day_paths(layout.clean_events(self.root)), catalog], {
                "model": self.candidate_uri()
            }
        if name == "evaluate":
            return [*self.day_paths(layout.clean_events(self.root)), catalog], {
                "model": self.candidate_uri(),
                "label": self.outcomes["label"].fingerprint,
            }
        if name == "publish":
            return [], {s: self.outcomes[s].fingerprint for s in ("score", "evaluate")}
        raise KeyError(name)

    def fingerprint(self, name: str, config: StepConfig | None) -> str:
        paths, extra = self.inputs(name)
        record = config.to_record() if config else {}
        # how a step goes about its work when forced, not what it computes
        record.pop("restart", None)
        record.pop("incremental", None)
        # where the data root lives is not what a step computes: a moved root keeps its state
        record.pop("data_root", None)
        record = {k: relative(v, self.root) if isinstance(v, str) else v for k, v in record.items()}
        return digest(
            {
                "config": record,
                "inputs": paths_digest(self.storage, paths, self.root),
                "extra": extra,
            }
        )

    # -- skipping -------------------------------------------------------------------------------

    def redo(self, name: str) -> bool:
        c = self.config
        if c.force or (name == "label" and self.relabel):
            return True
        return c.from_step is not None and NIGHT_STEPS.index(name) >= NIGHT_STEPS.index(c.from_step)

    def skippable(self, name: str, fingerprint: str) -> RunResult | None:
        """The earlier result of ``name`` if it succeeded with this fingerprint and still holds."""
        before = self.previous.get(name) or {}
        if self.redo(name) or before.get("fingerprint") != fingerprint:
            return None
        if (
            not self.config.keep_results_across_versions
            and before.get("code_version") != code_version()
        ):
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
        if name == "score" and not self._scores_available(manifest):
            return None
        return RunResult(name, SUCCEEDED, manifest, path)

    def _scores_available(self, manifest: dict[str, Any]) -> bool:
        """Pending scores still there, or already published by this night's publish step."""
        if all(self.storage.exists(p) for p in manifest["outputs"]):
            return True
        published = self.previous.get("publish") or {}
        return published.get("status") in (SUCCEEDED, SKIPPED) and all(
            self.storage.exists(layout.recs(self.root, t, self.day))
            for t in RECS_TABLES
            if any(f"/{t}/" in p for p in manifest["outputs"])
        )

    # -- running --------------------------------------------------------------------------------

    def runner(self, name: str) -> Callable[[StepConfig | None], RunResult]:
        mains: dict[str, Callable[[SparkSession, Any], RunResult]] = {
            "clean": clean.main,
            "label": label.main,
            "shard": shard.main,
            "train": train.main,
            "score": score.main,
            "evaluate": evaluate.main,
        }
        if name == "publish":
            return lambda _config: self.publish()
        return lambda config: mains[name](self.spark, config)

    def run_step(self, index: int, name: str) -> bool:
        """Run or skip one step; False if it failed."""
        outcome = self.outcomes[name]
        counter = f"[night {self.day}] {index}/{len(NIGHT_STEPS)} {name:<8}"
        began = time.monotonic()
        try:
            config = None if name == "publish" else self.step_config(name, self.derived(name))
            outcome.fingerprint = self.fingerprint(name, config)
            outcome.code_version = code_version()
            earlier = self.skippable(name, outcome.fingerprint)
            if earlier is not None:
                outcome.status, outcome.result = SKIPPED, earlier
                outcome.finished_at = earlier.manifest.get("finished_at")
                # the results kept are the earlier version's
                outcome.code_version = (self.previous.get(name) or {}).get("code_version")
                log.info(
                    "%s skipped: same config and inputs as the run that finished %s",
                    counter,
                    outcome.finished_at,
                )
                return True
            if name in ("shard", "evaluate"):
                self.ensure_examples()
            log.info("%s starting", counter)
            result = self.runner(name)(config)
            outcome.result = result
            outcome.status = SUCCEEDED if result.succeeded else FAILED
        except CartwheelError as exc:
            outcome.status, outcome.error = FAILED, describe_failure(exc)
            outcome.result = self._failed_manifest(name)
        except Exception as exc:  # a bug, a bad file, a full disk: record it, stop the night
            outcome.status, outcome.error = FAILED, describe_failure(exc, self.root)
            outcome.result = self._failed_manifest(name)
            if explain_failure(exc) is None:  # a bug: the trace is what a developer needs
                log.error("%s crashed:\n%s", counter, traceback.format_exc())
        outcome.duration_s = time.monotonic() - began
        outcome.finished_at = utc_now()
        if outcome.status == SUCCEEDED:
            log.info("%s %s", counter, step_line(outcome))
        else:
            log.error("%s FAILED after %.1fs: %s", counter, outcome.duration_s, outcome.error)
        return outcome.status == SUCCEEDED

    def ensure_examples(self) -> None:
        """examples/ holds one date's labels (the latest labelled). A step that reads it for an
        earlier night (a backfill after a later night, a resumed evaluate) labels that night again."""
        meta = layout.examples_meta(self.root)
        if self.storage.exists(meta) and self.storage.read_json(meta).get("run_date") == str(
            self.day
        ):
            return
        log.info(
            "[night %s] examples/ holds another date's labels: labelling %s again",
            self.day,
            self.day,
        )
        self.relabel = True
        try:
            if not self.run_step(NIGHT_STEPS.index("label") + 1, "label"):
                raise InputError(
                    f"could not label {self.day} again: {self.outcomes['label'].error}"
                )
        finally:
            self.relabel = False

    def _failed_manifest(self, name: str) -> RunResult | None:
        path = manifest_path(self.root, self.day, name)
        if not self.storage.exists(path):
            return None
        manifest = self.storage.read_json(path)
        if manifest.get("status") != FAILED:  # an older run's manifest, not this failure's
            return None
        return RunResult(name, FAILED, manifest, path)

    def run(self) -> str:
        self.check_configs()
        raw_day = join(layout.raw_events(self.root), partition_name(self.day))
        if not self.storage.is_dir(raw_day):
            raise InputError(f"no raw events for the run date {self.day}: {raw_day} is missing")
        status = SUCCEEDED
        for index, name in enumerate(NIGHT_STEPS, start=1):
            ok = self.run_step(index, name)
            self.save(
                "running" if ok and name != NIGHT_STEPS[-1] else (SUCCEEDED if ok else FAILED)
            )
            if not ok:
                status = FAILED
                break
        return status

    # -- publish --------------------------------------------------------------------------------

    def publish(self) -> RunResult:
        """Move the pending recommendation tables into recs/ if evaluation passed."""
        config = PublishConfig(data_root=self.root, run_date=self.day)
        run = StepRun(self.spark, "publish", config)
        with run:
            ev = self.manifest("evaluate")
            scored = self.manifest("score")
            version = str(scored["model_version"])
            if str(ev.get("champion_version")) != version:
                raise QualityGateError(
                    f"model v{version} was not promoted ({ev['promotion']['reason']}): the "
                    f"recommendation tables for {self.day} are not published; "
                    f"{self.latest_line()} stay as they were"
                )
            part = partition_name(self.day)
            pending = layout.recs_root(layout.pending(self.root, self.day))
            outputs = []
            for table in RECS_TABLES:
                staged = join(pending, table, part)
                if self.storage.exists(staged):
                    target = layout.recs(self.root, table)
                    self.storage.publish_partitions(join(pending, table), target, [part])
                    outputs.append(join(target, part))
                elif not self.storage.exists(layout.recs(self.root, table, self.day)) and any(
                    f"/{table}/" in p for p in scored["outputs"]
                ):
                    raise InputError(f"the pending table {staged} is missing: rerun score")
            latest = (
                self.storage.read_json(layout.latest(self.root))
                if self.storage.exists(layout.latest(self.root))
                else {}
            )
            if latest.get("run_date", "") <= self.day.isoformat():
                self.storage.write_json(
                    layout.latest(self.root),
                    {
                        "run_date": self.day.isoformat(),
                        "model_name": scored["model_name"],
                        "model_version": version,
                        "published_at": utc_now(),
                        "tables": {
                            t: layout.recs(self.root, t, self.day)
                            for t in RECS_TABLES
                            if self.storage.exists(layout.recs(self.root, t, self.day))
                        },
                        "users": scored["rows_out"],
                    },
                )
            self.storage.delete(layout.pending(self.root, self.day))
            run.inputs = [pending]
            run.outputs = outputs
            run.record(rows_in=scored["rows_out"], rows_out=scored["rows_out"])
            run.extra = {
                "model_name": scored["model_name"],
                "model_version": version,
                "latest": layout.latest(self.root),
            }
        return run.result()

    def latest_line(self) -> str:
        if not self.storage.exists(layout.latest(self.root)):
            return "recs/ (nothing published yet)"
        latest = self.storage.read_json(layout.latest(self.root))
        return f"the tables of {latest['run_date']} (model v{latest['model_version']})"


def step_line(outcome: StepOutcome) -> str:
    """``succeeded in 12.3s: 1,000 in, 990 out, ...`` for a step's progress line."""
    m = outcome.result.manifest if outcome.result else {}
    parts = [f"{m.get('rows_in', 0):,} in", f"{m.get('rows_out', 0):,} out"]
    if m.get("rows_quarantined"):
        parts.append(f"{m['rows_quarantined']:,} quarantined")
    filtered = sum((m.get("rows_filtered") or {}).values())
    if filtered:
        parts.append(f"{filtered:,} filtered")
    return f"{outcome.status} in {outcome.duration_s:.1f}s: {', '.join(parts)}"


def main(spark: SparkSession, config: NightlyConfig, *, locked: bool = False) -> RunResult:
    """Run the night for ``config.run_date``; ``locked`` when the caller holds the lock."""
    storage = Storage(spark)
    lock = (
        nullcontext()
        if locked
        else data_root_lock(
            storage, config.data_root, config.run_date.isoformat(), break_lock=config.break_lock
        )
    )
    with lock:
        night = Night(spark, config)
        log.info(
            "[night %s] data root %s; steps %s", night.day, night.root, " -> ".join(NIGHT_STEPS)
        )
        try:
            status = night.run()
        finally:
            # Also when a check before the first step raised: the state says what happened.
            status = (
                SUCCEEDED
                if all(o.status in (SUCCEEDED, SKIPPED) for o in night.outcomes.values())
                else FAILED
            )
            doc = night.save(status)
        write_report(spark, storage, night, doc)
    results = {n: o.result for n, o in night.outcomes.items() if o.result is not None}
    return RunResult(
        "nightly",
        status,
        doc,
        state_path(config.data_root, config.run_date),
        {"outcomes": night.outcomes, "results": results},
    )


def write_report(spark: SparkSession, storage: Storage, night: Night, doc: dict[str, Any]) -> None:
    """The night's HTML report; a failure to draw it is logged, not fatal."""
    from jobs import night_report  # matplotlib is imported only when a report is drawn

    try:
        night_report.write(spark, storage, night.root, night.day, doc, night.outcomes)
    except Exception as exc:
        log.error("[night %s] could not write the HTML report: %s", night.day, exc)


def summary_lines(result: RunResult) -> list[str]:
    """One line per step and the verdict: what a scheduler's log should show."""
    doc = result.manifest
    lines = [
        f"night {doc['run_date']} on {doc['config']['data_root']}",
        f"  {'step':<9}{'status':<10}{'seconds':>9}{'rows in':>13}{'rows out':>13}"
        f"{'quarantined':>13}{'filtered':>11}",
    ]
    for name, s in doc["steps"].items():
        counts = (
            f"{s['rows_in'] or 0:>13,}{s['rows_out'] or 0:>13,}{s['rows_quarantined'] or 0:>13,}"
            f"{s['rows_filtered'] or 0:>11,}"
            if s["status"] in (SUCCEEDED, SKIPPED)
            else ""
        )
        lines.append(f"  {name:<9}{s['status']:<10}{s['duration_s']:>9.1f}{counts}")
        if s["error"]:
            lines.append(f"           {s['error']}")
    verdict = (
        f"night {doc['run_date']} SUCCEEDED in {doc['duration_s']:.0f}s: recommendations "
        f"published under {join(doc['config']['data_root'], 'recs')}"
        if result.succeeded
        else f"night {doc['run_date']} FAILED in {doc['duration_s']:.0f}s: nothing new published; "
        "fix the cause and run the same command again (finished steps are skipped)"
    )
    lines += [verdict, f"report: {doc['report']}", f"manifest: {result.manifest_path}"]
    return lines


def summarize(result: RunResult) -> str:
    return "\n".join(summary_lines(result))


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("nightly", NightlyConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
