"""cartwheel demo: generate a small log, run one night on it (clean, label, shard, train,
score, evaluate, publish: the same code as ``cartwheel nightly``), and print what came out.

Uses an embedded default (synthetic data from a fixed seed, local Spark, everything under
``--data-root``), so a newcomer sees every step work before pointing cartwheel at real data.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from jobs import evaluate, generate, nightly
from jobs.night import report
from jobs.runtime.config import StepConfig, opt, step_config
from jobs.runtime.manifest import RunResult
from jobs.runtime.step import format_counts, run_cli
from pipelines import generate as G
from pipelines.errors import ConfigError

DEFAULT_END_DATE = dt.date(2026, 11, 21)


@step_config
class DemoConfig(StepConfig):
    """Flags of ``cartwheel demo``."""

    end_date: dt.date = opt(
        default=DEFAULT_END_DATE, help="last day of the generated log (and the run date)"
    )
    rows: int = opt(default=200_000, help="raw rows to generate")
    days: int = opt(default=7, help="days of log to generate and clean")
    seed: int = opt(default=7, help="generator seed")
    epochs: int = opt(default=4, help="training epochs")
    gate_min_ratio: float = opt(
        default=1.0,
        help="the night publishes only if its lists reach this x the gate's baseline on "
        "recall@20 (the best baseline with the second stage, popularity without; 0: no gate, for "
        "logs too small to learn from)",
    )
    second_stage: bool = opt(
        default=True,
        help="rank the candidates of several generators with a learned ranker, as cartwheel "
        "nightly does (--no-second-stage: publish the two-tower's own lists)",
    )
    tune_baselines: bool = opt(
        default=False,
        help="tune every baseline on val before the comparison, as cartwheel nightly does "
        "(about 10 more minutes at the default size; the demo's report says they were not tuned)",
    )

    def validate(self) -> None:
        super().validate()
        if self.rows < 1000:
            raise ConfigError(
                f"invalid config value rows={self.rows!r}: the demo needs at least 1000"
            )
        if self.days < 4:
            raise ConfigError(
                f"invalid config value days={self.days!r}: the demo needs at least 4 (history, train, val, test)"
            )

    @property
    def manifest_date(self) -> dt.date:
        return self.end_date


def main(spark: SparkSession, config: DemoConfig) -> RunResult:
    """Generate the log, then run one night on it; the result's details hold each step's result."""
    root, day = config.data_root, config.end_date
    gen = generate.main(
        spark,
        generate.GenerateConfig(
            data_root=root, end_date=day, rows=config.rows, days=config.days, seed=config.seed
        ),
    )
    night = nightly.main(
        spark,
        nightly.NightlyConfig(
            data_root=root,
            run_date=day,
            lookback_days=config.days,
            epochs=config.epochs,
            gate_min_ratio=config.gate_min_ratio,
            second_stage=config.second_stage,
            tune_baselines=config.tune_baselines,
        ),
    )
    steps = {"generate": gen, **night.details["results"]}
    samples = report.sample_recs(spark, root, day) if night.succeeded else []
    return RunResult(
        "demo",
        night.status,
        night.manifest,
        night.manifest_path,
        {**steps, "night": night, "samples": samples},
    )


def reconciliation(gen: dict, cln: dict) -> list[tuple[str, int, int]]:
    """(defect kind, injected by generate, found by clean) for every kind the ledger names."""
    found = {**cln["rows_quarantined_by_reason"], **cln["rows_filtered"]}
    found[G.UNKNOWN_ITEM] = cln["quality"]["unknown_items"]
    found[G.PII_QUERY] = cln["quality"]["pii_scrubbed"]
    return [(kind, count, int(found.get(kind, 0))) for kind, count in gen["injected"].items()]


def train_lines(trn: dict) -> list[str]:
    """The training part of the summary: per-epoch val metrics vs the baselines."""
    k = trn["config"]["k"]
    lines = [
        f"train     {trn['rows_in']:>10,} train examples, {trn['epochs'][0]['workers']} Horovod workers "
        f"-> {trn['registered_model']} v{trn['model_version']} (alias {trn['alias']})",
        f"          {'epoch':>5} {'loss':>8} {f'recall@{k}':>10} {f'ndcg@{k}':>9} {'examples/s':>11}",
    ]
    for e in trn["epochs"]:
        lines.append(
            f"          {e['epoch']:>5} {e['train_loss']:>8.4f} {e['val_recall']:>10.4f} {e['val_ndcg']:>9.4f} "
            f"{e['examples'] / e['seconds']:>11,.0f}"
        )
    lines.append(
        f"          val recall@{k}: model {trn[f'best_val_recall_at_{k}']:.4f} (epoch {trn['best_epoch']}), "
        f"popularity {trn[f'baseline_popularity_val_recall_at_{k}']:.4f}, random {trn[f'baseline_random_val_recall_at_{k}']:.4f}"
    )
    return lines


def rank_lines(result: RunResult) -> list[str]:
    """The second stage's part of the summary (none with --no-second-stage)."""
    if "rank" not in result.details:
        return []
    m = result.details["rank"].manifest
    k, fit, select = m["config"]["selection_k"], m["lists"]["fit"], m["lists"]["select"]
    return [
        f"rank      {fit['lists']:>10,} candidate lists of {', '.join(m['config']['generators'])} "
        f"at {len(m['cutoffs'])} cutoffs ({fit['rows']:,} candidates) -> {m['registered_model']} "
        f"v{m['model_version']}",
        f"          epoch {m['best_epoch']} of {len(m['epochs'])} chosen on {select['lists']:,} "
        f"held-out val lists: selection recall@{k} {m[f'best_selection_recall_at_{k}']:.4f}",
    ]


def score_lines(result: RunResult) -> list[str]:
    m = result.details["score"].manifest
    ranker = m.get("ranker")
    lists = (
        f"ranker v{ranker['version']} over model v{m['model_version']}"
        if ranker
        else f"model v{m['model_version']}"
    )
    lines = [
        f"score     {m['active_users']:>10,} active users -> {m['user_topk_rows']:,} recommendations "
        f"(top {m['k']}; {m['cold_users_popularity_fallback']:,} cold users given popular items), "
        f"{m['item_similar_rows']:,} similar-item rows; {lists}",
    ]
    if ranker:
        per_source = sorted(ranker["published_per_source"].items())
        lines.append(
            "          recommendations by the generator that proposed them: "
            + ", ".join(f"{g} {n:,}" for g, n in per_source)
        )
    for s in result.details["samples"]:
        items = [
            f"{i['rank']}. {i['title'] or i['item_id']} ({i['score']:.3f})" for i in s["items"]
        ]
        lines.append(f"          user {s['user_id']}: " + "; ".join(items))
    return lines


def summarize(result: RunResult) -> str:
    night = report.summary_lines(result.details["night"])
    if not result.succeeded:
        return "\n".join(["", "cartwheel demo: the night failed", *night])
    gen = result.details["generate"].manifest
    cln = result.details["clean"].manifest
    rows = [
        "",
        "cartwheel demo: what happened",
        "=============================",
        *night[:-3],
        "",
        f"generate  {gen['raw_rows']:>10,} raw rows  ({gen['natural_rows']:,} natural, "
        f"{gen['plan']['users']:,} users, {gen['plan']['items']:,} items, {gen['sessions']:,} sessions)",
        f"clean     {cln['rows_in']:>10,} rows in -> {cln['rows_out']:,} clean, "
        f"{cln['rows_quarantined']:,} quarantined, {sum(cln['rows_filtered'].values()):,} filtered",
        "",
        f"{'defect kind':<24}{'injected':>10}{'found':>10}",
    ]
    for kind, injected, found in reconciliation(gen, cln):
        mark = "" if injected == found else "   <-- mismatch"
        rows.append(f"{kind:<24}{injected:>10,}{found:>10,}{mark}")
    q = cln["quality"]
    lab = result.details["label"].manifest
    shd = result.details["shard"].manifest
    rows += [
        "",
        f"clean events by type: {', '.join(f'{k} {v:,}' for k, v in q['kept_by_event_type'].items())}",
        f"sessions found: {q['sessions']:,} (generated {gen['sessions']:,})",
        "",
        f"label     {lab['rows_in']:>10,} clean events -> {lab['rows_out']:,} examples "
        f"(train {lab['examples']['train']:,}, val {lab['examples']['val']:,}, test {lab['examples']['test']:,}); "
        f"{lab['rows_consumed'].get('history_only', 0):,} used in histories only",
        f"          filtered: {format_counts(lab['rows_filtered'])}",
        f"          vocabulary: {lab['num_items']:,} item and {lab['num_categories']:,} category indices; "
        f"history length {lab['history_length']}",
        f"shard     {shd['rows_out']:>10,} examples -> "
        + ", ".join(
            f"{s} {i['files']} files (balance {i['balance_ratio']})"
            for s, i in shd["splits"].items()
        ),
        *train_lines(result.details["train"].manifest),
        *rank_lines(result),
        "",
        *[
            f"evaluate  {line}" if n == 0 else f"          {line}"
            for n, line in enumerate(evaluate.metrics_lines(result.details["evaluate"].manifest))
        ],
        "",
        *score_lines(result),
        "",
        "where things are:",
        f"  raw logs        {gen['outputs'][0]}",
        f"  clean events    {cln['config']['data_root']}/clean/events/",
        f"  quarantine      {cln['config']['data_root']}/quarantine/events/",
        f"  quality report  {cln['report']}",
        f"  examples        {cln['config']['data_root']}/examples/dt={lab['run_date']}/  (vocabularies in vocab/dt={lab['run_date']}/)",
        f"  shards          {cln['config']['data_root']}/shards/{shd['run_id']}/  ({shd['shard_manifest']})",
        f"  run manifests   {cln['config']['data_root']}/_runs/{cln['run_date']}/",
        f"  recommendations {cln['config']['data_root']}/recs/user_topk/ and recs/item_similar/",
        f"  evaluation      {result.details['evaluate'].manifest['report']}/report.md",
        f"  night report    {result.manifest['report']}  (open it in a browser)",
        f"  latest night    {result.manifest['recs_latest']}",
        f"  MLflow          mlflow ui --backend-store-uri {result.details['train'].manifest['mlflow_tracking_uri']}",
    ]
    ok = all(i == f for _, i, f in reconciliation(gen, cln)) and q["sessions"] == gen["sessions"]
    rows.append("")
    rows.append(
        "every injected defect was found and every row is accounted for"
        if ok
        else "RECONCILIATION FAILED"
    )
    return "\n".join(rows)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("demo", DemoConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
