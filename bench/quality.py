"""Recommendation quality, honestly measured: the two-tower against every tuned baseline.

For one dataset: build the raw layout (generate or ingest), clean, label (time-based train /
val / test days), shard, train with 2 Horovod workers, then evaluate. Evaluate tunes every
baseline on the val split (the same budget for each, ``pipelines/evaluation.py: GRIDS``),
measures every method on the test days with the same users, candidates, exclusion rule and K,
and gives 95 % Poisson-bootstrap intervals over the test users (200 resamples) for recall@20 and
ndcg@10, each paired with the model's. Every step runs as ``cartwheel <step>`` in a subprocess,
timed, with its peak memory.

Writes ``bench/results/quality-<dataset>.json``: ``dataset``, ``test_users``, ``warm_users``,
``published`` (the method a night publishes: ``ranked`` when the run measured the second stage,
else the two-tower, ``model``), ``best_baseline`` (the baseline with the highest test
recall@20), ``methods`` (per method ``recall_at_20``, ``ndcg_at_10``, ``recall_at_20_ci``,
``ndcg_at_10_ci`` and the paired verdict against the model), ``ratios`` (published / best
baseline on both metrics, with whether the paired interval excludes zero; ``two_tower`` the
model's in the same form when the ranked lists are published), the tuning each baseline chose
on val, and the step timings. ``--table`` rewrites ``docs/quality.md`` from every result file
present.

With ``--ranker`` it also runs ``cartwheel rank`` before evaluate and measures the ranker's lists
(``evaluate --ranker-uri``) as the method ``ranked``, every method paired with it on the same
resamples: ``second_stage`` holds ranked / best baseline and the paired verdict, and ``rank``
what the ranker was fitted on and chosen by (lists per split, cutoffs, the chosen epoch and its
selection recall on val). ``published`` is then ``ranked``: what a night with the second stage
publishes.

usage: python bench/quality.py DATASET [--work-dir DIR [--from-step STEP]] [--epochs N]
                               [--ranker [--rank-args="ARGS"]] [--next-click]
       python bench/quality.py --table
DATASET: demo, generated-1m, online-retail, movielens, taobao
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, run_measured, write_result
from pipelines.evaluation import OURS
from tests.conftest import shared_data_dir

DOCS = Path(__file__).resolve().parent.parent / "docs" / "quality.md"
METRICS = (("recall", "20", "recall_at_20", "recall@20"), ("ndcg", "10", "ndcg_at_10", "ndcg@10"))


@dataclass(frozen=True)
class Dataset:
    """How to build one dataset's raw layout and which days label splits it into."""

    name: str
    title: str
    run_date: str
    lookback_days: int
    val_days: int
    test_days: int
    raw: Callable[[list[str]], list[list[str]]]  # data-root flags -> cartwheel commands
    clean_flags: tuple[str, ...] = ()
    label_flags: tuple[str, ...] = ()
    not_measurable: str | None = None  # why the day-based protocol cannot run on it


def _generated(rows: int, days: int) -> Callable[[list[str]], list[list[str]]]:
    return lambda d: [
        ["generate", *d, "--end-date", "2026-11-21", "--days", str(days), "--rows", str(rows),
         "--seed", "7"],
    ]  # fmt: skip


def _ingested(fmt: str, source: Callable[[], Path]) -> Callable[[list[str]], list[list[str]]]:
    return lambda d: [["ingest", *d, "--format", fmt, "--input", str(source())]]


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("demo", "generated demo log (200k rows, 7 days)", "2026-11-21", 7, 1, 1,
                _generated(200_000, 7)),
        Dataset("generated-1m", "generated log (10^6 rows, 14 days)", "2026-11-21", 14, 2, 2,
                _generated(1_000_000, 14)),
        Dataset("online-retail", "UCI Online Retail 2010-11 (14 test, 14 val days)",
                "2011-12-09", 374, 14, 14,
                _ingested("online-retail",
                          lambda: shared_data_dir() / "online-retail" / "online_retail.parquet"),
                clean_flags=("--bot-max-events-per-minute", "0")),
        Dataset("movielens", "MovieLens latest-small (365 test, 365 val days)", "2018-09-24",
                8300, 365, 365,
                _ingested("movielens", lambda: shared_data_dir() / "ml-latest-small")),
        Dataset("taobao", "Taobao UserBehavior excerpt", "2017-11-26", 3, 1, 1,
                _ingested("taobao",
                          lambda: shared_data_dir() / "taobao-userbehavior-excerpt" / "UserBehavior.csv"),
                not_measurable="the excerpt spans 2 hours of one day (2017-11-26 01:00-03:10); "
                "cartwheel's splits are whole UTC days, so there is no train, val and test day to "
                "compare methods on"),
    )
}  # fmt: skip


RANKER_URI = "models:/cartwheel-ranker@candidate"


def commands(
    ds: Dataset,
    root: str,
    epochs: int,
    ranker: bool,
    rank_args: Sequence[str] = (),
    next_click: bool = False,
) -> dict[str, list[str]]:
    """The cartwheel commands, by step, that take ``ds`` from nothing to an evaluation (with
    ``ranker``: ``cartwheel rank [rank_args]`` too, and its lists measured as ``ranked``; with
    ``next_click``: evaluate's next-click section too)."""
    d, on = ["--data-root", root], ["--run-date", ds.run_date]
    (raw,) = ds.raw(d)
    steps = {
        raw[0]: raw,
        "clean": ["clean", *d, *on, "--days", str(ds.lookback_days), "--allow-missing-days",
                  *ds.clean_flags],
        "label": ["label", *d, *on, "--lookback-days", str(ds.lookback_days), "--val-days",
                  str(ds.val_days), "--test-days", str(ds.test_days), *ds.label_flags],
        "shard": ["shard", *d, *on, "--workers", "2"],
        "train": ["train", *d, *on, "--epochs", str(epochs), "--patience", "3", "--restart"],
        # measured, not gated: the gate would stop the step before the figures are kept
        "evaluate": ["evaluate", *d, *on, "--tune-baselines", "--bootstrap-replicates", "200",
                     "--gate-min-ratio", "0", "--no-promote"],
    }  # fmt: skip
    if next_click:
        steps["evaluate"].append("--next-click")
    if ranker:
        evaluate = steps.pop("evaluate")
        steps["rank"] = ["rank", *d, *on, *rank_args]
        steps["evaluate"] = [*evaluate, "--ranker-uri", RANKER_URI]
    return steps


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The result file's comparison, from evaluate's metrics.json."""
    table, intervals = metrics["metrics"], metrics["intervals"]
    methods: dict[str, Any] = {}
    for method, per_k in table.items():
        row: dict[str, Any] = {}
        for metric, k, key, interval in METRICS:
            row[key] = per_k[k][metric]
            found = intervals.get(method, {}).get(interval)
            row[f"{key}_ci"] = [found["lo"], found["hi"]] if found else None
            row[f"{key}_vs_model"] = found["vs_model"] if found else None
        methods[method] = row
    baselines = [m for m in methods if m not in OURS]  # the champion ranker's lists are ours too
    best = max(baselines, key=lambda m: (methods[m]["recall_at_20"], m))

    def over_best(method: str, paired: dict[str, Any], verdict_key: str) -> dict[str, Any]:
        """``method`` / the best baseline per metric, with the paired (best - method) interval;
        the verdict is the baseline's ("better": the method loses), seen from the method."""
        ratios = {}
        for _, _, key, interval in METRICS:
            theirs, found = methods[best][key], paired.get(interval, {})
            ratios[key] = {
                "published_over_best": methods[method][key] / theirs if theirs else None,
                "best_minus_published_ci": [found.get("diff_lo"), found.get("diff_hi")],
                "verdict": {"better": "published loses", "worse": "published wins",
                            "tie": "tie"}.get(found.get(verdict_key, ""), "n/a"),
            }  # fmt: skip
        return ratios

    model = over_best("model", intervals.get(best, {}), "vs_model")
    # a run that measured the second stage reports what a night with it publishes: the ranked lists
    published = "ranked" if "ranked" in methods else "model"
    if published == "ranked":
        ranked = over_best(
            "ranked", metrics.get("intervals_vs_ranked", {}).get(best, {}), "verdict"
        )
        second = {
            key: {"ranked_over_best": r["published_over_best"],
                  "best_minus_ranked_ci": r["best_minus_published_ci"],
                  "verdict": r["verdict"].replace("published", "ranked")}
            for key, r in ranked.items()
        }  # fmt: skip
        methods_ranked = {"method": "ranked", "best_baseline": best, "ratios": second}
    return {
        **({"second_stage": methods_ranked, "two_tower": model} if published == "ranked" else {}),
        "test_users": metrics["users"],
        "warm_users": metrics["users"] - metrics["cold_users"],
        "published": published,
        "best_baseline": best,
        "methods": methods,
        "ratios": ranked if published == "ranked" else model,
        "tuning": {m: t["chosen"] for m, t in metrics["tuning"].get("methods", {}).items()},
        "exclude": metrics["exclude"],
        "labels": metrics["labels"],
    }


def measure(
    ds: Dataset,
    work: Path,
    epochs: int,
    ranker: bool = False,
    rank_args: Sequence[str] = (),
    from_step: str | None = None,
    next_click: bool = False,
) -> Path:
    doc: dict[str, Any] = {"dataset": ds.name, "title": ds.title}
    result = f"next-click-{ds.name}" if next_click else f"quality-{ds.name}"
    if ds.not_measurable:
        doc.update(measured=False, reason=ds.not_measurable)
        return write_result(result, doc)
    root = str(work / ds.name)
    steps = {}
    todo = commands(ds, root, epochs, ranker, rank_args, next_click)
    if from_step is not None:  # the earlier steps' outputs are in the work dir already
        if from_step not in todo or not Path(root).is_dir():
            raise SystemExit(f"--from-step {from_step}: not a step of {list(todo)} or no {root}")
        todo = dict(list(todo.items())[list(todo).index(from_step) :])
        doc["from_step"] = from_step
    for name, argv in todo.items():
        print(f"[quality {ds.name}] {name}", flush=True)
        steps[name] = run_measured(argv, work / "logs" / f"{ds.name}-{name}.log")
    metrics = json.loads(Path(root, "reports", f"dt={ds.run_date}", "metrics.json").read_text())
    doc.update(
        measured=True, run_date=ds.run_date,
        splits={"lookback_days": ds.lookback_days, "val_days": ds.val_days,
                "test_days": ds.test_days},
        epochs=epochs, **summary(metrics), steps=steps,
    )  # fmt: skip
    if ranker:  # what the ranker was fitted on and chosen by (val only), from rank's manifest
        m = json.loads(Path(root, "_runs", ds.run_date, "rank.json").read_text())
        k = m["config"]["selection_k"]
        doc["rank"] = {
            "flags": list(rank_args), "lists": m["lists"], "cutoffs": m["cutoffs"], "generators": m["config"]["generators"],
            "kind": m["config"]["kind"], "best_epoch": m["best_epoch"],
            f"best_selection_recall_at_{k}": m[f"best_selection_recall_at_{k}"],
            "epochs_run": len(m["epochs"]),
        }  # fmt: skip
    if next_click:
        doc["next_click"] = next_click_summary(metrics["next_click"])
    return write_result(result, doc)


def next_click_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Evaluate's next-click section as the result file keeps it: per method HR@20 and MRR@20
    with their intervals over sessions, the best baseline and the model's ratio to it."""
    methods: dict[str, Any] = {}
    for method, by_k in section["metrics"].items():
        found = section["intervals"].get(method, {})
        methods[method] = {
            "hr_at_20": by_k["20"]["hr"], "mrr_at_20": by_k["20"]["mrr"],
            "hr_at_20_ci": [found["hr@20"]["lo"], found["hr@20"]["hi"]] if "hr@20" in found else None,
            "mrr_at_20_ci": [found["mrr@20"]["lo"], found["mrr@20"]["hi"]] if "mrr@20" in found else None,
            "model_minus_this_hr_at_20": (
                [-found["hr@20"]["diff_hi"], -found["hr@20"]["diff_lo"]]
                if method != "model" and "hr@20" in found else None
            ),
            "vs_model": found.get("hr@20", {}).get("vs_model"),
        }  # fmt: skip
    baselines = [m for m in methods if m not in OURS]
    best = max(baselines, key=lambda m: (methods[m]["hr_at_20"], m))
    return {
        "queries": section["queries"], "cold_queries": section["cold_queries"],
        "sessions": section["sessions"], "best_baseline": best,
        "ratio_hr_at_20": methods["model"]["hr_at_20"] / methods[best]["hr_at_20"],
        "ratio_mrr_at_20": methods["model"]["mrr_at_20"] / methods[best]["mrr_at_20"],
        "methods": methods, "tuning": section["tuning"],
    }  # fmt: skip


def table() -> str:
    """docs/quality.md's table, from every ``quality-*.json`` present."""
    lines = [
        "| dataset | test users (warm) | two-tower R@20 [95 % CI] | best tuned baseline R@20 [95 % CI] | ratio R@20 | two-tower NDCG@10 | best baseline NDCG@10 | ratio NDCG@10 | paired verdict (R@20) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for path in sorted(RESULTS.glob("quality-*.json")):
        d = json.loads(path.read_text())
        if not d.get("measured"):
            lines.append(f"| {d['title']} | not measured: {d['reason']} |||||||")
            continue
        m, b = d["methods"]["model"], d["methods"][d["best_baseline"]]

        def ci(row: dict[str, Any], key: str) -> str:
            lo, hi = row[f"{key}_ci"] or (None, None)
            return f"{row[key]:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None else "")

        # the two-tower's own ratios (``ratios`` holds the published method's; in ``two_tower``
        # the keys and verdicts still say "published" for the two-tower)
        model = d["two_tower"] if d["published"] == "ranked" else d["ratios"]
        r, n = model["recall_at_20"], model["ndcg_at_10"]
        lines.append(
            f"| {d['title']} | {d['test_users']:,} ({d['warm_users']:,}) | {ci(m, 'recall_at_20')} | "
            f"{d['best_baseline']}: {ci(b, 'recall_at_20')} | {r['published_over_best']:.3f}x | "
            f"{m['ndcg_at_10']:.4f} | {b['ndcg_at_10']:.4f} | {n['published_over_best']:.3f}x | "
            f"{r['verdict'].replace('published', 'two-tower')} |"
        )
    ranked = [
        json.loads(path.read_text())
        for path in sorted(RESULTS.glob("quality-*.json"))
        if "second_stage" in json.loads(path.read_text())
    ]
    if ranked:
        lines += [
            "",
            "The ranked lists (`cartwheel rank`, measured by `evaluate --ranker-uri`), what a night "
            "with the second stage publishes (files written before the bench reported them as "
            "`published` say `model` there):",
            "",
            "| dataset | ranked R@20 [95 % CI] | best tuned baseline R@20 | ratio R@20 | best - ranked, R@20 [95 %] | ranked NDCG@10 | ratio NDCG@10 | best - ranked, NDCG@10 [95 %] |",
            "|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for d in ranked:
            second, r = d["second_stage"], d["methods"]["ranked"]
            best = d["methods"][second["best_baseline"]]
            rr, rn = second["ratios"]["recall_at_20"], second["ratios"]["ndcg_at_10"]

            def diff(x: dict[str, Any]) -> str:
                lo, hi = x["best_minus_ranked_ci"]
                return f"[{lo:+.4f}, {hi:+.4f}]: {x['verdict']}" if lo is not None else "n/a"

            lo, hi = r["recall_at_20_ci"] or (None, None)
            within = f" [{lo:.4f}, {hi:.4f}]" if lo is not None else ""
            lines.append(
                f"| {d['title']} | {r['recall_at_20']:.4f}{within} | {second['best_baseline']}: "
                f"{best['recall_at_20']:.4f} | {rr['ranked_over_best']:.3f}x | {diff(rr)} | "
                f"{r['ndcg_at_10']:.4f} | {rn['ranked_over_best']:.3f}x | {diff(rn)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", choices=sorted(DATASETS))
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--table", action="store_true", help="rewrite docs/quality.md's table")
    parser.add_argument(
        "--ranker", action="store_true",
        help="also run `cartwheel rank` and measure its ranked lists (second_stage in the file)",
    )  # fmt: skip
    parser.add_argument(
        "--rank-args", default="",
        help="more flags for `cartwheel rank`, as one string after = (--rank-args=\"--fit-days 4\"); recorded",
    )  # fmt: skip
    parser.add_argument(
        "--next-click", action="store_true",
        help="also judge item_similar on next clicks (evaluate --next-click); writes "
        "next-click-DATASET.json instead of quality-DATASET.json",
    )  # fmt: skip
    parser.add_argument(
        "--from-step",
        help="start at this step on the data root an earlier run left in --work-dir (the file "
        "then times only the steps run)",
    )
    args = parser.parse_args()
    if args.dataset:
        work = Path(args.work_dir or tempfile.mkdtemp(prefix="cartwheel-quality-"))
        ds, rank_args = DATASETS[args.dataset], shlex.split(args.rank_args)
        path = measure(
            ds, work, args.epochs, args.ranker, rank_args, args.from_step, args.next_click
        )
        print(f"[quality] -> {path}")
    if args.table or not args.dataset:
        text = DOCS.read_text()
        start, end = "<!-- quality table: bench/quality.py --table -->", "<!-- end of table -->"
        head, rest = text.split(start)
        _, tail = rest.split(end)
        DOCS.write_text(f"{head}{start}\n{table()}{end}{tail}")
        print(f"[quality] table -> {DOCS}")


if __name__ == "__main__":
    main()
