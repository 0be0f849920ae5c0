"""The HTML report of a night: ``reports/dt=<date>/night.html``, one self-contained page.

Built from the step manifests (and the evaluation's plot): what each step did, what clean
quarantined and why, training per epoch, metrics against the baselines, and a sample of the
published recommendations with catalog titles. Written for failed nights too.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.evaluate import method_order
from jobs.runtime import layout
from jobs.storage import Storage, join

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.ok { color: #1a7f37; } .bad { color: #cf222e; font-weight: bold; } .muted { color: #666; }
code { background: #f4f4f4; padding: 0 .3em; }
"""


def sample_recs(
    spark: SparkSession, root: str, day: dt.date, users: int = 3, top: int = 5
) -> list[dict[str, Any]]:
    """A few model-scored users' top items with their catalog titles (a handful of rows)."""
    recs = spark.read.parquet(layout.recs(root, "user_topk", day))
    chosen = (
        recs.where((F.col("source") == "model") & (F.col("rank") == 1))
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


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _e(value if value is not None else "")


def reasons_svg(counts: dict[str, int], title: str) -> str:
    """A horizontal bar chart of row counts by reason, as inline SVG ('' when all are 0)."""
    shown = {k: v for k, v in counts.items() if v}
    if not shown:
        return ""
    from matplotlib.figure import Figure  # not pyplot: leaves a notebook's backend alone

    names = sorted(shown, key=shown.__getitem__)
    fig = Figure(figsize=(6, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, [shown[n] for n in names], color="#c0504d")
    ax.set_xlabel("rows")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return _inline_svg(buffer.getvalue())


def _inline_svg(text: str) -> str:
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def _steps(doc: dict[str, Any]) -> str:
    rows = []
    for name, s in doc["steps"].items():
        cls = {"succeeded": "ok", "skipped": "muted", "failed": "bad"}.get(s["status"], "muted")
        done = s["status"] in ("succeeded", "skipped")
        rows.append(
            [
                _e(name),
                f'<span class="{cls}">{_e(s["status"])}</span>',
                f"{s['duration_s']:.1f}",
                *[_n(s[k]) if done else "" for k in ("rows_in", "rows_out", "rows_quarantined")],
                _n(s["rows_filtered"]) if done else "",
                _e(s["error"] or ""),
            ]
        )
    head = ["step", "status", "seconds", "rows in", "rows out", "quarantined", "filtered", "error"]
    return _table(head, rows)


def _quality(m: dict[str, Any]) -> str:
    q = m.get("quality", {})
    parts = [
        f"<p>Cleaned {len(m.get('days', []))} day(s) "
        f"({_e(', '.join(m.get('days', [])) or 'none')}); reused "
        f"{len(m.get('days_reused', []))} already-clean day(s). {_n(m['rows_in'])} raw rows in, "
        f"{_n(m['rows_out'])} kept, {_n(m['rows_quarantined'])} quarantined, "
        f"{_n(sum(m['rows_filtered'].values()))} filtered.</p>"
    ]
    reasons = [
        [_e(k), "quarantined", _n(v)] for k, v in m["rows_quarantined_by_reason"].items() if v
    ]
    reasons += [[_e(k), "filtered", _n(v)] for k, v in m["rows_filtered"].items() if v]
    if reasons:
        parts.append(_table(["reason", "disposition", "rows"], reasons))
        parts.append(
            reasons_svg(
                {**m["rows_quarantined_by_reason"], **m["rows_filtered"]},
                "Rows quarantined or filtered, by reason",
            )
        )
    if q.get("kept_by_event_type"):
        parts.append(
            _table(
                ["event type", "clean rows"],
                [[_e(k), _n(v)] for k, v in q["kept_by_event_type"].items()],
            )
        )
    if q.get("null_rates"):
        parts.append(
            _table(
                ["column", "null rate"],
                [[_e(k), f"{v:.2%}"] for k, v in q["null_rates"].items()],
            )
        )
    return "".join(parts)


def _train(m: dict[str, Any]) -> str:
    k = m["config"]["k"]
    rows = [
        [
            _e(e["epoch"]),
            f"{e['train_loss']:.4f}",
            f"{e['val_recall']:.4f}",
            f"{e['val_ndcg']:.4f}",
            f"{e['examples'] / max(e['seconds'], 1e-9):,.0f}",
        ]
        for e in m["epochs"]
    ]
    return (
        f"<p>{_n(m['rows_in'])} train examples; model {_e(m['registered_model'])} "
        f"v{_e(m['model_version'])}; best epoch {_e(m['best_epoch'])}.</p>"
        + _table(["epoch", "loss", f"val recall@{k}", f"val ndcg@{k}", "examples/s"], rows)
    )


def _evaluation(m: dict[str, Any], svg: str) -> str:
    table = m["metrics"]
    ks = sorted(table["model"], key=int)
    rows = [
        [
            _e(m["labels"].get(method, method)),
            *[f"{table[method][k]['recall']:.4f}" for k in ks],
            *[f"{table[method][k]['ndcg']:.4f}" for k in ks],
        ]
        for method in method_order(table)
    ]
    head = ["method", *[f"recall@{k}" for k in ks], *[f"ndcg@{k}" for k in ks]]
    gate = m.get("gate", {})
    promo = m["promotion"]
    return (
        _table(head, rows)
        + (
            f"<p>Quality gate: <b>{'passed' if gate.get('passed') else 'FAILED'}</b> "
            f"({_e(gate.get('reason', ''))}).</p>"
            if gate
            else ""
        )
        + f"<p>Promotion: {'promoted' if promo.get('applied') else 'not promoted'} "
        f"({_e(promo['reason'])}).</p>" + svg
    )


def _recs(samples: list[dict[str, Any]]) -> str:
    parts = []
    for s in samples:
        items = "".join(
            f"<li>{_e(i['title'] or i['item_id'])} <span class='muted'>({_e(i['item_id'])}, "
            f"score {i['score']:.3f})</span></li>"
            for i in s["items"]
        )
        parts.append(f"<p>User <code>{_e(s['user_id'])}</code>:</p><ol>{items}</ol>")
    return "".join(parts)


def render(
    doc: dict[str, Any],
    manifests: dict[str, dict[str, Any]],
    svg: str,
    samples: list[dict[str, Any]],
) -> str:
    """The page, from the night's document, step manifests, evaluation plot and samples."""
    day, root = doc["run_date"], doc["config"]["data_root"]
    ok = doc["status"] == "succeeded"
    verdict = (
        '<p class="ok">The night succeeded; its recommendation tables are published.</p>'
        if ok
        else '<p class="bad">The night failed; nothing new was published and the previous '
        "tables stay as they were.</p>"
    )
    sections = [
        f"<h1>cartwheel night {_e(day)}</h1>",
        verdict,
        f"<p class='muted'>Data root <code>{_e(root)}</code>; started {_e(doc['started_at'])}, "
        f"{doc['duration_s']:.0f} s.</p>",
        "<h2>Steps</h2>",
        _steps(doc),
    ]
    if "clean" in manifests:
        sections += ["<h2>Data quality (clean)</h2>", _quality(manifests["clean"])]
    if "label" in manifests:
        lab = manifests["label"]
        ex = lab.get("examples", {})
        sections += [
            "<h2>Examples (label, shard)</h2>",
            f"<p>{_n(lab['rows_in'])} clean events gave {_n(lab['rows_out'])} examples "
            f"(train {_n(ex.get('train'))}, val {_n(ex.get('val'))}, test {_n(ex.get('test'))}); "
            f"vocabulary of {_n(lab.get('num_items'))} items.</p>",
        ]
    if "train" in manifests:
        sections += ["<h2>Training</h2>", _train(manifests["train"])]
    if "evaluate" in manifests:
        sections += ["<h2>Test metrics vs baselines</h2>", _evaluation(manifests["evaluate"], svg)]
    if samples:
        sections += ["<h2>Sample recommendations</h2>", _recs(samples)]
    sections += [
        "<h2>Where things are</h2>",
        "<ul>"
        + "".join(
            f"<li>{_e(what)}: <code>{_e(where)}</code></li>"
            for what, where in [
                ("recommendations", layout.recs(root, "user_topk", day)),
                ("similar items", layout.recs(root, "item_similar", day)),
                ("latest published night", layout.latest(root)),
                ("run manifests", layout.runs(root, day)),
                ("MLflow UI", f"mlflow ui --backend-store-uri {_tracking_uri(manifests)}"),
            ]
        )
        + "</ul>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>cartwheel night {_e(day)}"
        f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def _tracking_uri(manifests: dict[str, dict[str, Any]]) -> str:
    return str(manifests.get("train", {}).get("mlflow_tracking_uri", "(no training this night)"))


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
        _inline_svg(storage.read_text(svg_path))
        if "evaluate" in manifests and storage.exists(svg_path)
        else ""
    )
    samples = sample_recs(spark, root, day) if doc.get("published") else []
    path = join(report_dir, "night.html")
    storage.write_text(path, render(doc, manifests, svg, samples))
    return path
