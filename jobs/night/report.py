"""The HTML report of a night: ``reports/dt=<date>/night.html``, one self-contained page.

Built from the step manifests (and the evaluation's plot): what each step did, what clean
quarantined and why, training per epoch, metrics against the baselines, and a sample of the
published recommendations with catalog titles. Written for failed nights too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.night.plan import SKIPPED, SUCCEEDED
from jobs.runtime import layout
from jobs.runtime.manifest import RunResult
from jobs.runtime.render import inline_svg, metrics_view, reasons_svg
from jobs.runtime.render import render as render_template
from jobs.runtime.storage import Storage, join


def sample_recs(
    spark: SparkSession, root: str, day: dt.date, users: int = 3, top: int = 5
) -> list[dict[str, Any]]:
    """A few scored users' top items with their catalog titles (a handful of rows): users whose
    list the model or the ranker scored, not cold users' popularity fallback (score null)."""
    recs = spark.read.parquet(layout.recs(root, "user_topk", day))
    chosen = (
        recs.where(F.col("score").isNotNull() & (F.col("rank") == 1))
        .orderBy("user_id")
        .limit(users)
        .select("user_id")
    )
    titles = spark.read.parquet(layout.raw_catalog(root)).select("item_id", "title")
    rows = (
        recs.join(chosen, "user_id", "left_semi")
        .where(F.col("rank") <= top)
        .join(titles, "item_id", "left")
        .orderBy("user_id", "rank")
        .collect()  # users x top rows
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["user_id"], []).append(
            {"rank": r["rank"], "item_id": r["item_id"], "title": r["title"], "score": r["score"]}
        )
    return [{"user_id": u, "items": items} for u, items in out.items()]


def clean_section(m: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of clean's manifest."""
    q = m.get("quality", {})
    reasons = [
        [k, "quarantined", f"{v:,}"] for k, v in m["rows_quarantined_by_reason"].items() if v
    ]
    reasons += [[k, "filtered", f"{v:,}"] for k, v in m["rows_filtered"].items() if v]
    counts = {**m["rows_quarantined_by_reason"], **m["rows_filtered"]}
    return {
        "days": m.get("days", []),
        "days_reused": m.get("days_reused", []),
        "rows_in": m["rows_in"],
        "rows_out": m["rows_out"],
        "rows_quarantined": m["rows_quarantined"],
        "rows_filtered": sum(m["rows_filtered"].values()),
        "reasons": reasons,
        "reasons_svg": reasons_svg(counts, "Rows quarantined or filtered, by reason")
        if reasons
        else "",
        "kept_by_event_type": [[k, f"{v:,}"] for k, v in q.get("kept_by_event_type", {}).items()],
        "null_rates": [[k, f"{v:.2%}"] for k, v in q.get("null_rates", {}).items()],
    }


def train_section(m: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of train's manifest: one row per epoch."""
    epochs = [
        [e["epoch"], f"{e['train_loss']:.4f}", f"{e['val_recall']:.4f}", f"{e['val_ndcg']:.4f}",
         f"{e['examples'] / max(e['seconds'], 1e-9):,.0f}"]
        for e in m["epochs"]
    ]  # fmt: skip
    return {**m, "k": m["config"]["k"], "epochs": epochs}


def rank_section(m: dict[str, Any], scored: dict[str, Any] | None) -> dict[str, Any]:
    """What the page shows of rank's manifest (and of score's, which published its lists): the
    lists it was fitted and chosen on, one row per epoch, and the published rows per source."""
    k = m["config"]["selection_k"]
    epochs = [
        [e["epoch"], f"{e['loss']:.4f}", f"{e[f'selection_recall_at_{k}']:.4f}"]
        for e in m["epochs"]
    ]
    ranker = (scored or {}).get("ranker") or {}
    return {
        "k": k, "epochs": epochs, "lists": m["lists"], "cutoffs": m["cutoffs"],
        "generators": m["config"]["generators"], "best_epoch": m["best_epoch"],
        "name": m["registered_model"], "version": m["model_version"],
        "sources": sorted((ranker.get("published_per_source") or {}).items()),
    }  # fmt: skip


def evaluation_section(m: dict[str, Any], svg: str) -> dict[str, Any]:
    """What the page shows of evaluate's manifest: the shared metrics table, gate, promotion."""
    view = metrics_view(m["metrics"], m["labels"])
    rows = [[r["label"], *(f"{v:.4f}" for v in r["values"])] for r in view["rows"]]
    return {
        "view": view,
        "rows": rows,
        "gate": m.get("gate"),
        "promotion": m["promotion"],
        "svg": svg,
    }


def render(
    doc: dict[str, Any],
    manifests: dict[str, dict[str, Any]],
    svg: str,
    samples: list[dict[str, Any]],
) -> str:
    """The page, from the night's document, step manifests, evaluation plot and samples."""
    day, root = doc["run_date"], doc["config"]["data_root"]
    tracking = manifests.get("train", {}).get("mlflow_tracking_uri", "(no training this night)")
    places = [
        ("recommendations", layout.recs(root, "user_topk", day)),
        ("similar items", layout.recs(root, "item_similar", day)),
        ("latest published night", layout.latest(root)),
        ("run manifests", layout.runs(root, day)),
        ("MLflow UI", f"mlflow ui --backend-store-uri {tracking}"),
    ]
    return render_template(
        "night.html.j2",
        doc=doc,
        clean=clean_section(manifests["clean"]) if "clean" in manifests else None,
        label=manifests.get("label"),
        train=train_section(manifests["train"]) if "train" in manifests else None,
        rank=rank_section(manifests["rank"], manifests.get("score"))
        if "rank" in manifests
        else None,
        evaluation=evaluation_section(manifests["evaluate"], svg)
        if "evaluate" in manifests
        else None,
        samples=samples,
        places=places,
        warnings=[(n, w) for n, s in doc["steps"].items() for w in s.get("warnings") or []],
    )


def write(
    spark: SparkSession,
    storage: Storage,
    root: str,
    day: dt.date,
    doc: dict[str, Any],
    outcomes: dict[str, Any],
) -> str:
    """Write ``reports/dt=<day>/night.html``; returns its path."""
    manifests = {
        name: o.result.manifest
        for name, o in outcomes.items()
        if o.result is not None
        # a failed evaluation still has its metrics: they say why the gate failed
        and (o.result.manifest.get("status") == "succeeded" or "metrics" in o.result.manifest)
    }
    report_dir = layout.reports(root, day)
    svg_path = join(report_dir, "recall_at_k.svg")
    svg = (
        inline_svg(storage.read_text(svg_path))
        if "evaluate" in manifests and storage.exists(svg_path)
        else ""
    )
    samples = sample_recs(spark, root, day) if doc.get("published") else []
    path = join(report_dir, "night.html")
    storage.write_text(path, render(doc, manifests, svg, samples))
    return path


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
        lines += [f"           WARNING: {w}" for w in s.get("warnings") or []]
    verdict = (
        f"night {doc['run_date']} SUCCEEDED in {doc['duration_s']:.0f}s: recommendations "
        f"published under {join(doc['config']['data_root'], 'recs')}"
        if result.succeeded
        else f"night {doc['run_date']} FAILED in {doc['duration_s']:.0f}s: nothing new published; "
        "fix the cause and run the same command again (finished steps are skipped)"
    )
    lines += [verdict, f"report: {doc['report']}", f"manifest: {result.manifest_path}"]
    return lines
