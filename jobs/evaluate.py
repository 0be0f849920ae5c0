"""cartwheel evaluate: the model vs what a Spark user would build instead, on future targets.

For the run date's label window (``examples/_meta.json``): the evaluated users are those with a
test-split example; their relevant items are their test targets. Every method ranks K items per
user from what was known *before the test period* (the model scores histories cut at the test
start; the baselines are fit on the window's events before it), with the same candidates (the
model's vocabulary items that are sellable) and the same exclusions (``--exclude``):

  model               the model under evaluation (``--model-uri``, default ...@candidate)
  champion            the model the ``--champion-alias`` points at, when it is another version
  popularity, recent_popularity, cooccurrence, als   (see ``pipelines/baselines.py``)

Metrics (Recall, NDCG, MAP, HitRate at each ``--ks``, and coverage) are computed in Spark and
written to ``reports/dt=D/metrics.json``, ``reports/dt=D/report.md`` and
``reports/dt=D/recall_at_k.svg``, and logged to MLflow as an evaluation run under the model's
training run. Then the champion alias moves to the evaluated version only if it beats the
current champion on ``--promotion-metric`` at ``--promotion-k``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import models
from jobs.common import run_cli
from jobs.config import DatedStepConfig, opt
from jobs.manifest import RunResult, StepRun
from jobs.readers import date_window, read_catalog, read_clean_events
from jobs.runtime import layout
from jobs.storage import Storage, join
from pipelines import baselines as B
from pipelines import label as L
from pipelines import metrics as Mx
from pipelines import recs as R
from pipelines.errors import ConfigError, InputError, QualityGateError

log = logging.getLogger("cartwheel")
MODEL, CHAMPION = "model", "champion"
HANDLING = {
    MODEL: "cold users (no item event before the test start) get the popularity list",
    CHAMPION: "as model",
    B.POPULARITY: "the same list for every user (cold users included)",
    B.RECENT_POPULARITY: "the same list for every user (cold users included)",
    B.COOCCURRENCE: "users without recent items, and short lists, are filled from the popularity list",
    B.ALS_METHOD: "users ALS never saw, and short lists, are filled from the popularity list",
}


def check_gate_values(gate_min_ratio: float, champion_tolerance: float) -> None:
    """ConfigError unless the gate ratio is >= 0 and the champion tolerance in [0, 1) (shared by
    evaluate and the night's options, which are checked before Spark starts)."""
    if not 0 <= champion_tolerance < 1:
        raise ConfigError(
            f"invalid config value champion_tolerance={champion_tolerance}: must be in [0, 1)"
        )
    if gate_min_ratio < 0:
        raise ConfigError(f"invalid config value gate_min_ratio={gate_min_ratio}: must be >= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateConfig(DatedStepConfig):
    """Flags of ``cartwheel evaluate``."""

    model_uri: str = opt(
        "models:/cartwheel-two-tower@candidate",
        help="model to evaluate: models:/NAME@ALIAS or /VERSION",
    )
    champion_alias: str = opt("champion", help="alias of the serving model (moved on promotion)")
    ks: tuple[int, ...] = opt((10, 20, 50), help="cut-offs K of every metric")
    exclude: str = opt("purchased", help="items hidden from a user: purchased, interacted or none")
    promotion_metric: str = opt("recall", help="recall, ndcg, map or hit_rate")
    promotion_k: int = opt(20, help="K of the promotion metric")
    promote: bool = opt(
        True, help="move the champion alias when the model wins (--no-promote: report only)"
    )
    baselines: tuple[str, ...] = opt(
        (B.POPULARITY, B.RECENT_POPULARITY, B.COOCCURRENCE, B.ALS_METHOD),
        help="baselines to compute",
    )
    recent_days: int = opt(2, help="days before the test start that recent_popularity counts")
    als_rank: int = opt(32, help="ALS factors")
    als_iterations: int = opt(10, help="ALS iterations")
    seed: int = opt(0, help="seed of ALS")
    champion_tolerance: float = opt(
        0.0,
        help="promote when the model's promotion metric is at least (1 - this) x the champion's "
        "(a model trained on fresher data may win a near tie); 0: it must beat the champion",
    )
    gate_baseline: str = opt(
        B.POPULARITY, help="baseline the model must reach on the promotion metric to pass"
    )
    gate_min_ratio: float = opt(
        1.0,
        help="the step fails (and promotes nothing) unless the model's promotion metric is at "
        "least this times the gate baseline's; 0 turns the gate off",
    )

    def validate(self) -> None:
        super().validate()
        check_gate_values(self.gate_min_ratio, self.champion_tolerance)
        if self.gate_min_ratio > 0 and self.gate_baseline not in self.baselines:
            raise ConfigError(
                f"invalid config value gate_baseline={self.gate_baseline!r}: must be one of the "
                f"computed baselines ({', '.join(self.baselines)})"
            )
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"invalid config value ks={self.ks!r}: give one or more K >= 1")
        if self.promotion_metric not in ("recall", "ndcg", "map", "hit_rate"):
            raise ConfigError(
                f"invalid config value promotion_metric={self.promotion_metric!r}: recall, ndcg, map or hit_rate"
            )
        if self.promotion_k not in self.ks:
            raise ConfigError(
                f"invalid config value promotion_k={self.promotion_k}: must be one of ks {list(self.ks)}"
            )
        if self.exclude not in R.EXCLUDE_RULES:
            raise ConfigError(
                f"invalid config value exclude={self.exclude!r}: must be one of {', '.join(R.EXCLUDE_RULES)}"
            )
        unknown = [b for b in self.baselines if b not in HANDLING or b in (MODEL, CHAMPION)]
        if unknown:
            raise ConfigError(f"invalid config value baselines: unknown {', '.join(unknown)}")
        for name in ("recent_days", "als_rank", "als_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)}: must be >= 1"
                )
        if not models.MODEL_URI.match(self.model_uri):
            raise ConfigError(
                f"invalid config value model_uri={self.model_uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION"
            )

    @property
    def max_k(self) -> int:
        return max(self.ks)

    @property
    def promotion_key(self) -> str:
        return f"{self.promotion_metric}@{self.promotion_k}"


def read_meta(storage: Storage, root: str, run_date: dt.date) -> dict[str, Any]:
    path = layout.examples_meta(root)
    if not storage.exists(path):
        raise InputError(
            f"no labelled examples at {layout.examples(root)}: run `cartwheel label` first"
        )
    meta: dict[str, Any] = storage.read_json(path)
    if meta["run_date"] != run_date.isoformat():
        raise InputError(
            f"the examples under {layout.examples(root)} were labelled for {meta['run_date']}, not {run_date}: "
            f"run `cartwheel label --run-date {run_date}` first"
        )
    return meta


def model_lists(
    spark: SparkSession,
    model: models.ResolvedModel,
    events: DataFrame,
    users: DataFrame,
    catalog: DataFrame,
    test_start: dt.date,
    config: EvaluateConfig,
    method: str,
) -> tuple[DataFrame, Any, tuple[dict[str, int], Any]]:
    """The model's top-K for the evaluated users from histories cut at the test start."""
    item_index = model.item_index(spark)
    candidates, counts = models.sellable_candidates(spark, model, catalog)
    popularity = models.popularity_order(
        R.item_popularity(events, item_index, test_start), candidates, config.max_k + 10_000
    )
    inputs = R.scoring_inputs(
        events, item_index, test_start, model.history_length, config.exclude, users=users
    )
    scored, bc = models.score_users(
        spark, inputs, models.payload(model, candidates, popularity), config.max_k
    )
    lists = scored.select(F.lit(method).alias("method"), "user_id", "item_id", "rank")
    return lists, bc, (counts, candidates)


def exclusions_of(events: DataFrame, users: DataFrame, rule: str) -> DataFrame:
    """(user_id, item_id) pairs the rule hides, from events before the test start."""
    hidden = R.EXCLUDE_RULES[rule]
    return (
        events.where(F.col("event_type").isin(*hidden) & F.col("item_id").isNotNull())
        .join(users, on="user_id", how="left_semi")
        .select("user_id", "item_id")
        .distinct()
    )


def promotion(
    config: EvaluateConfig,
    table: dict[str, dict[str, dict[str, float]]],
    model: models.ResolvedModel,
    champion_version: str | None,
) -> dict[str, Any]:
    """Whether the evaluated version should become the champion, and why."""
    key = config.promotion_key
    ours = table[MODEL][str(config.promotion_k)][config.promotion_metric]
    if champion_version is None:
        return {
            "promote": True,
            "reason": f"no model had the alias '{config.champion_alias}' yet",
            "metric": key,
            "model": ours,
        }
    if champion_version == model.version:
        return {
            "promote": False,
            "reason": f"version {model.version} already is the champion",
            "metric": key,
            "model": ours,
        }
    theirs = table[CHAMPION][str(config.promotion_k)][config.promotion_metric]
    if ours > theirs:
        reason = f"{key} {ours:.4f} beats the champion (v{champion_version}) at {theirs:.4f}"
        return {"promote": True, "reason": reason, "metric": key, "model": ours, "champion": theirs}
    tolerance = config.champion_tolerance
    if tolerance > 0 and ours >= (1 - tolerance) * theirs:
        reason = (
            f"{key} {ours:.4f} is within {tolerance:.0%} of the champion (v{champion_version}) "
            f"at {theirs:.4f}; the model trained on fresher data takes over"
        )
        return {"promote": True, "reason": reason, "metric": key, "model": ours, "champion": theirs}
    within = f" or come within {tolerance:.0%} of" if tolerance > 0 else ""
    reason = f"{key} {ours:.4f} does not beat{within} the champion (v{champion_version}) at {theirs:.4f}; v{champion_version} keeps serving"
    return {"promote": False, "reason": reason, "metric": key, "model": ours, "champion": theirs}


def quality_gate(
    config: EvaluateConfig, table: dict[str, dict[str, dict[str, float]]]
) -> dict[str, Any]:
    """Whether the model reached ``gate_min_ratio`` x the gate baseline on the promotion metric."""
    key = config.promotion_key
    if config.gate_min_ratio == 0:
        return {"passed": True, "reason": "no quality gate (gate_min_ratio 0)", "metric": key}
    k, metric = str(config.promotion_k), config.promotion_metric
    ours, theirs = table[MODEL][k][metric], table[config.gate_baseline][k][metric]
    need = config.gate_min_ratio * theirs
    passed = ours >= need and ours > 0
    relation = ">=" if passed else "<"
    return {
        "passed": passed,
        "reason": f"{key} {ours:.4f} {relation} {config.gate_min_ratio:g} x "
        f"{config.gate_baseline} {theirs:.4f}",
        "metric": key,
        "model": ours,
        "baseline": config.gate_baseline,
        "baseline_value": theirs,
        "min_ratio": config.gate_min_ratio,
    }


def metrics_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """method -> str(k) -> metric -> value."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        table.setdefault(r["method"], {})[str(r["k"])] = {m: float(r[m]) for m in Mx.METRICS}
        table[r["method"]][str(r["k"])]["users"] = int(r["users"])
    return table


def method_order(table: dict[str, Any]) -> list[str]:
    first = [m for m in (MODEL, CHAMPION) if m in table]
    return first + sorted(m for m in table if m not in first)


def report_markdown(doc: dict[str, Any]) -> str:
    table = doc["metrics"]
    ks = [str(k) for k in doc["ks"]]
    lines = [
        f"# cartwheel evaluation, {doc['run_date']}",
        "",
        f"Model: {doc['model']['name']} version {doc['model']['version']} ({doc['model']['uri']}). "
        f"Test period {doc['test_start']} .. {doc['run_date']}: {doc['users']:,} users with "
        f"{doc['relevant_pairs']:,} relevant (user, item) pairs; lists built from what was known "
        f"before {doc['test_start']}; {doc['candidate_items']:,} candidate items; exclusion rule "
        f"'{doc['exclude']}' for every method.",
        "",
        "| method | "
        + " | ".join(f"Recall@{k} | NDCG@{k}" for k in ks)
        + f" | MAP@{ks[-1]} | HitRate@{ks[-1]} | Coverage@{ks[-1]} |",
        "|---|" + "---|---|" * len(ks) + "---|---|---|",
    ]
    for m in method_order(table):
        cells = [f"{table[m][k]['recall']:.4f} | {table[m][k]['ndcg']:.4f}" for k in ks]
        last = table[m][ks[-1]]
        lines.append(
            f"| {doc['labels'].get(m, m)} | "
            + " | ".join(cells)
            + f" | {last['map']:.4f} | {last['hit_rate']:.4f} | {last['coverage']:.4f} |"
        )
    lines += [
        "",
        f"Users with no history before the test start: {doc['cold_users']:,} of {doc['users']:,}. How each method handled them:",
        "",
        *[f"- {doc['labels'].get(m, m)}: {HANDLING[m]}" for m in method_order(table)],
        "",
        f"Relevant pairs no method can recommend (hidden by the exclusion rule or not a candidate): {doc['unreachable_pairs']:,}.",
        "",
        f"Quality gate: {'passed' if doc['gate']['passed'] else 'FAILED'} ({doc['gate']['reason']}).",
        "",
        f"Promotion ({doc['promotion']['metric']}): {'promoted' if doc['promotion']['promote'] else 'not promoted'}: {doc['promotion']['reason']}.",
        "",
    ]
    return "\n".join(lines)


def recall_plot_svg(doc: dict[str, Any]) -> str:
    # A bare Figure, not pyplot: no backend is chosen, so a notebook's inline plots keep working.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for m in method_order(doc["metrics"]):
        ks = sorted(int(k) for k in doc["metrics"][m])
        ax.plot(
            ks,
            [doc["metrics"][m][str(k)]["recall"] for k in ks],
            marker="o",
            label=doc["labels"].get(m, m),
        )
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title(f"Recall@K on the test period ending {doc['run_date']}")
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def log_to_mlflow(doc: dict[str, Any], model: models.ResolvedModel, files: dict[str, str]) -> str:
    """An evaluation run nested under the model's training run; returns its id."""
    import mlflow

    parent = mlflow.get_run(model.run_id)
    with mlflow.start_run(
        experiment_id=parent.info.experiment_id,
        run_name=f"evaluate-{doc['run_date']}-v{model.version}",
        tags={"mlflow.parentRunId": model.run_id, "cartwheel.step": "evaluate"},
    ) as run:
        mlflow.log_params(
            {"run_date": doc["run_date"], "model_version": model.version, "exclude": doc["exclude"]}
        )
        mlflow.log_metrics(
            {
                f"{m}.{metric}_at_{k}": v
                for m, per_k in doc["metrics"].items()
                for k, values in per_k.items()
                for metric, v in values.items()
                if metric != "users"
            }
        )
        for name, text in files.items():
            mlflow.log_text(text, f"report/{name}")
        return str(run.info.run_id)


def main(spark: SparkSession, config: EvaluateConfig) -> RunResult:
    """Evaluate the model and the baselines on the test period; maybe promote the model."""
    from mlflow import MlflowClient

    storage = Storage(spark)
    run = StepRun(spark, "evaluate", config)
    root, day = config.data_root, config.run_date
    with run:
        meta = read_meta(storage, root, day)
        b = meta["boundaries"]
        window_start = dt.date.fromisoformat(b["window_start"])
        test_start = dt.date.fromisoformat(b["test_start"])
        days = date_window(day, (day - window_start).days + 1)
        examples_path = layout.examples_split(root, "test")
        if not storage.exists(examples_path):
            raise InputError(f"no test examples at {examples_path}")
        test = spark.read.parquet(examples_path).select(
            "user_id", F.col("target_item_id").alias("item_id")
        )
        all_events = read_clean_events(spark, storage, root, days)
        before = all_events.where(F.col("event_time") < L.day_start(test_start))
        before = before.persist(StorageLevel.MEMORY_AND_DISK)
        catalog = read_catalog(spark, storage, root)
        models.configure_tracking(root)
        model = models.resolve(config.model_uri)
        champion_version = models.alias_version(model.name, config.champion_alias)
        broadcasts: list[Any] = []
        cached: list[DataFrame] = []

        def keep(frame: DataFrame) -> DataFrame:
            cached.append(frame.persist(StorageLevel.MEMORY_AND_DISK))
            return frame

        def method_lists(name: str, frame: DataFrame) -> DataFrame:
            """Materialise one method's lists once (the metrics read them several times)."""
            started = time.monotonic()
            rows = keep(frame).count()
            log.info(
                "[evaluate] %s: %s list rows in %.1fs",
                name,
                f"{rows:,}",
                time.monotonic() - started,
            )
            return frame

        try:
            users = keep(test.select("user_id").distinct())
            relevant = keep(test.distinct())
            n_users = users.count()
            if n_users == 0:
                raise InputError(f"the test split at {examples_path} has no examples")
            exclusions = keep(exclusions_of(before, users, config.exclude))
            lists, bc, (counts, mask) = model_lists(
                spark, model, before, users, catalog, test_start, config, MODEL
            )
            broadcasts.append(bc)
            parts = [method_lists(MODEL, lists)]
            labels = {MODEL: f"model v{model.version}"}
            if champion_version is not None and champion_version != model.version:
                champion = models.resolve(f"models:/{model.name}/{champion_version}")
                c_lists, c_bc, _ = model_lists(
                    spark, champion, before, users, catalog, test_start, config, CHAMPION
                )
                broadcasts.append(c_bc)
                parts.append(method_lists(CHAMPION, c_lists))
                labels[CHAMPION] = f"champion v{champion_version}"
            candidates = keep(models.candidate_items(spark, model, mask))
            k = config.max_k
            settings = B.BaselineSettings(
                recent_days=config.recent_days, als_rank=config.als_rank,
                als_iterations=config.als_iterations, seed=config.seed,
            )  # fmt: skip
            popular = method_lists(
                B.POPULARITY,
                B.global_list(
                    B.item_counts(before), users, candidates, exclusions, k, B.POPULARITY
                ),
            )
            if B.POPULARITY in config.baselines:
                parts.append(popular)
            if B.RECENT_POPULARITY in config.baselines:
                since = test_start - dt.timedelta(days=config.recent_days)
                recent = B.item_counts(before, since)
                parts.append(
                    method_lists(
                        B.RECENT_POPULARITY,
                        B.global_list(
                            recent, users, candidates, exclusions, k, B.RECENT_POPULARITY
                        ),
                    )
                )
            if B.COOCCURRENCE in config.baselines:
                co = B.cooccurrence_lists(before, users, candidates, exclusions, k, settings)
                parts.append(
                    method_lists(B.COOCCURRENCE, B.fill_up(co, popular, k, B.COOCCURRENCE))
                )
            if B.ALS_METHOD in config.baselines:
                log.info(
                    "[evaluate] fitting ALS (rank %d, %d iterations)",
                    config.als_rank,
                    config.als_iterations,
                )
                als = B.als_lists(
                    before, users, candidates, exclusions, L.DEFAULT_LABEL_WEIGHTS, k, settings
                )
                parts.append(method_lists(B.ALS_METHOD, B.fill_up(als, popular, k, B.ALS_METHOD)))
            all_lists = parts[0]
            for p in parts[1:]:
                all_lists = all_lists.unionByName(p)
            log.info(
                "[evaluate] computing metrics for %d methods over %s users",
                len(parts),
                f"{n_users:,}",
            )
            rows = [
                r.asDict()
                for r in Mx.ranking_metrics(
                    all_lists, relevant, config.ks, counts["candidate_items"]
                ).collect()
            ]
            table = metrics_table(rows)
            with_history = before.where(F.col("item_id").isNotNull()).select("user_id").distinct()
            cold = users.join(with_history, "user_id", "left_anti").count()
            unreachable = (
                relevant.join(exclusions, ["user_id", "item_id"], "left_semi")
                .unionByName(relevant.join(candidates, "item_id", "left_anti"))
                .distinct()
                .count()
            )
            n_relevant = relevant.count()
        finally:
            before.unpersist()
            for frame in cached:
                frame.unpersist()
            for bcast in broadcasts:
                bcast.unpersist()
        gate = quality_gate(config, table)
        decision = promotion(config, table, model, champion_version)
        if not gate["passed"]:
            decision = {
                **decision,
                "promote": False,
                "reason": f"quality gate failed: {gate['reason']}",
            }
        doc: dict[str, Any] = {
            "run_date": day.isoformat(),
            "test_start": test_start.isoformat(),
            "window_start": window_start.isoformat(),
            "model": {
                "name": model.name,
                "version": model.version,
                "uri": model.uri,
                "run_id": model.run_id,
            },
            "champion_version_before": champion_version,
            "ks": sorted(set(config.ks)),
            "exclude": config.exclude,
            "users": n_users,
            "cold_users": cold,
            "relevant_pairs": n_relevant,
            "unreachable_pairs": unreachable,
            "candidate_items": counts["candidate_items"],
            "labels": labels,
            "handling": {m: HANDLING[m] for m in table},
            "metrics": table,
            "gate": gate,
            "promotion": decision,
        }
        report_dir = layout.reports(root, day)
        files = {
            "metrics.json": json.dumps(doc, indent=2) + "\n",
            "report.md": report_markdown(doc),
            "recall_at_k.svg": recall_plot_svg(doc),
        }
        doc["mlflow_run_id"] = log_to_mlflow(doc, model, files)
        files["metrics.json"] = json.dumps(doc, indent=2) + "\n"
        for name, text in files.items():
            storage.write_text(join(report_dir, name), text)
        if decision["promote"] and config.promote:
            MlflowClient().set_registered_model_alias(
                model.name, config.champion_alias, model.version
            )
            log.info(
                "[evaluate] %s@%s -> version %s", model.name, config.champion_alias, model.version
            )
        run.inputs = [
            examples_path,
            layout.clean_events(root),
            layout.raw_catalog(root),
            config.model_uri,
        ]
        run.outputs = [report_dir]
        run.record(rows_in=n_users, rows_out=n_users)
        run.extra = {
            "report": report_dir,
            "metrics": table,
            "gate": gate,
            "promotion": {**decision, "applied": bool(decision["promote"] and config.promote)},
            "champion_version": model.version
            if decision["promote"] and config.promote
            else champion_version,
            "cold_users": cold,
            "unreachable_pairs": unreachable,
            "labels": labels,
            "mlflow_run_id": doc["mlflow_run_id"],
        }
        if not gate["passed"]:
            raise QualityGateError(
                f"model {model.name} v{model.version} failed the quality gate: {gate['reason']} "
                f"(report: {report_dir}/report.md)"
            )
    return run.result()


def summarize(result: RunResult) -> str:
    m: dict[str, Any] = result.manifest
    return "\n".join(
        [*metrics_lines(m), f"report: {m['report']}/report.md", f"manifest: {result.manifest_path}"]
    )


def metrics_lines(m: dict[str, Any]) -> list[str]:
    """The metrics table (every method at every K) and the promotion decision, as text."""
    table = m["metrics"]
    ks = sorted(table[MODEL], key=int)
    head = (
        f"{'method':<22}"
        + "".join(f"{f'recall@{k}':>11}{f'ndcg@{k}':>10}" for k in ks)
        + f"{f'cov@{ks[-1]}':>9}"
    )
    lines = [f"evaluated {m['rows_in']:,} test users ({m['cold_users']:,} without history)", head]
    for method in method_order(table):
        row = f"{m['labels'].get(method, method):<22}" + "".join(
            f"{table[method][k]['recall']:>11.4f}{table[method][k]['ndcg']:>10.4f}" for k in ks
        )
        lines.append(row + f"{table[method][ks[-1]]['coverage']:>9.4f}")
    p = m["promotion"]
    if "gate" in m:
        g = m["gate"]
        lines.append(f"quality gate: {'passed' if g['passed'] else 'FAILED'} ({g['reason']})")
    lines.append(f"promotion: {'promoted' if p['applied'] else 'not promoted'} ({p['reason']})")
    return lines


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("evaluate", EvaluateConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
