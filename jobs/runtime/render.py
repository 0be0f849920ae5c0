"""One renderer for every report: Jinja2 templates (``jobs/runtime/templates/``) over plain data.

The evaluation's metrics table is built once (``metrics_view``) and shown by the terminal
summary, ``report.md`` and the night's HTML page through the same ``metrics`` macro shape;
HTML templates autoescape, so no value reaches a page unescaped.
"""

from __future__ import annotations

import io
from typing import Any

import jinja2

from pipelines.evaluation import method_order

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("jobs.runtime", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
ENV.filters["n"] = lambda v: f"{v:,}" if isinstance(v, int) else ("" if v is None else str(v))
ENV.filters["f4"] = lambda v: f"{v:.4f}"


def render(template: str, **context: Any) -> str:
    """``template`` (a file name under ``templates/``) rendered with ``context``."""
    return ENV.get_template(template).render(**context)


def metrics_view(
    metrics: dict[str, dict[str, dict[str, float]]], labels: dict[str, str]
) -> dict[str, Any]:
    """The metrics table every rendering shows: a row per method (model, champion, then the
    baselines by name) with recall and NDCG at each K, then MAP, hit rate and coverage at the
    largest K. ``metrics``: method -> str(K) -> metric -> value."""
    ks = sorted({k for per_k in metrics.values() for k in per_k}, key=int)
    cells = [(k, m) for k in ks for m in ("recall", "ndcg")]
    cells += [(ks[-1], m) for m in ("map", "hit_rate", "coverage")]
    return {
        "columns": [f"{m}@{k}" for k, m in cells],
        "rows": [
            {"method": method, "label": labels.get(method, method),
             "values": [metrics[method][k][m] for k, m in cells]}
            for method in method_order(metrics)
        ],
    }  # fmt: skip


def _svg(fig: Any) -> str:
    """A matplotlib figure as an SVG document."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def recall_svg(
    metrics: dict[str, dict[str, dict[str, float]]], labels: dict[str, str], run_date: str
) -> str:
    """Recall@K per method, as an SVG document."""
    # A bare Figure, not pyplot: no backend is chosen, so a notebook's inline plots keep working.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for m in method_order(metrics):
        ks = sorted(int(k) for k in metrics[m])
        ax.plot(ks, [metrics[m][str(k)]["recall"] for k in ks], marker="o", label=labels.get(m, m))
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title(f"Recall@K on the test period ending {run_date}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _svg(fig)


def reasons_svg(counts: dict[str, int], title: str) -> str:
    """A horizontal bar chart of row counts by reason, as inline SVG ('' when all are 0)."""
    shown = {k: v for k, v in counts.items() if v}
    if not shown:
        return ""
    from matplotlib.figure import Figure

    names = sorted(shown, key=shown.__getitem__)
    fig = Figure(figsize=(6, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, [shown[n] for n in names], color="#c0504d")
    ax.set_xlabel("rows")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return inline_svg(_svg(fig))


def inline_svg(text: str) -> str:
    """An SVG document's ``<svg>`` element, for embedding in a page."""
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""
