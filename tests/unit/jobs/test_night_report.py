"""The night's page and the evaluation's texts, rendered from plain data by the templates."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import evaluate
from jobs.night import report
from jobs.night.plan import FAILED, NOT_RUN, SUCCEEDED
from jobs.runtime.manifest import RunResult

pytestmark = pytest.mark.unit

METRICS = {
    method: {k: {"recall": r, "ndcg": r / 2, "map": r / 3, "hit_rate": r, "coverage": 0.4, "users": 9}
             for k in ("10", "20")}
    for method, r in (("model", 0.31), ("popularity", 0.12))
}  # fmt: skip


def night(status: str, error: str | None = None) -> dict[str, Any]:
    step = {"duration_s": 1.5, "rows_in": 1000, "rows_out": 990, "rows_quarantined": 10,
            "rows_filtered": 0, "error": None, "status": SUCCEEDED}  # fmt: skip
    return {
        "run_date": "2026-11-21",
        "status": status,
        "config": {"data_root": "/data/<shop>"},
        "started_at": "2026-11-22T01:00:00+00:00",
        "duration_s": 61.0,
        "steps": {
            "clean": step,
            "label": {**step, "status": FAILED if error else SUCCEEDED, "error": error},
            "shard": {**step, "status": NOT_RUN},
        },
    }


def evaluation(applied: bool) -> dict[str, Any]:
    return {
        "metrics": METRICS, "labels": {"model": "model v3"}, "rows_in": 9, "cold_users": 2,
        "gate": {"passed": True, "reason": "recall@20 0.3100 >= 1 x popularity 0.1200"},
        "promotion": {"applied": applied, "reason": "no model had the alias 'champion' yet"},
    }  # fmt: skip


def test_a_failed_night_says_so_and_escapes_what_it_shows() -> None:
    page = report.render(night(FAILED, error="InputError: <script>x</script>"), {}, "", [])
    assert "The night failed; nothing new was published" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page
    assert "/data/&lt;shop&gt;" in page  # the data root too
    assert page.count("<tr>") == 4  # the header and three steps
    assert "Test metrics vs baselines" not in page  # no evaluation this night


def test_step_warnings_reach_the_page_and_the_summary() -> None:
    doc = night(SUCCEEDED)
    warning = "filtered 900 of 1,000 input rows (90.0%) as no_history, over <50%>"
    doc["steps"]["label"] = {**doc["steps"]["label"], "warnings": [warning]}
    page = report.render(doc, {}, "", [])
    assert (
        "<li><b>label</b>: filtered 900 of 1,000 input rows (90.0%) as no_history, over &lt;50%&gt;</li>"
        in page
    )
    assert "Warnings:" not in report.render(night(SUCCEEDED), {}, "", [])
    lines = report.summary_lines(RunResult("nightly", SUCCEEDED, {**doc, "report": "r"}, "/m.json"))
    assert f"           WARNING: {warning}" in lines


def test_the_evaluation_section_shows_the_shared_metrics_table() -> None:
    page = report.render(night(SUCCEEDED), {"evaluate": evaluation(True)}, "<svg></svg>", [])
    assert "The night succeeded" in page and "<svg></svg>" in page
    assert "<th>recall@10</th><th>ndcg@10</th><th>recall@20</th>" in page
    assert page.index("model v3") < page.index("popularity")
    assert "<td>0.3100</td>" in page and "Promotion: promoted" in page


def test_the_terminal_summary_uses_the_same_table() -> None:
    lines = evaluate.metrics_lines(evaluation(False))
    assert lines[0] == "evaluated 9 test users (2 without history)"
    assert lines[1].split() == ["method", "recall@10", "ndcg@10", "recall@20", "ndcg@20",
                                "map@20", "hit_rate@20", "coverage@20"]  # fmt: skip
    assert lines[2].split()[:4] == ["model", "v3", "0.3100", "0.1550"]
    assert lines[-1] == "promotion: not promoted (no model had the alias 'champion' yet)"


def test_a_second_stage_night_shows_what_the_ranker_was_fitted_on_and_published() -> None:
    ranked = {
        "config": {"selection_k": 20, "generators": ["item_knn", "buy_again"]},
        "epochs": [{"epoch": 1, "loss": 3.1, "selection_recall_at_20": 0.41},
                   {"epoch": 2, "loss": 2.9, "selection_recall_at_20": 0.45}],
        "lists": {"fit": {"lists": 9305, "rows": 1119976}, "select": {"lists": 486, "rows": 59561}},
        "cutoffs": ["2026-11-20", "2026-11-19"], "best_epoch": 2,
        "registered_model": "cartwheel-ranker", "model_version": "4",
    }  # fmt: skip
    scored = {"ranker": {"published_per_source": {"item_knn": 700, "buy_again": 1200}}}
    page = report.render(night(SUCCEEDED), {"rank": ranked, "score": scored}, "", [])
    assert "Ranker cartwheel-ranker v4 over the candidates of item_knn, buy_again" in page
    assert "fitted on 9,305 lists (1,119,976 candidates)" in page and "on 486 held-out" in page
    assert "<tr><td>2</td><td>2.9000</td><td>0.4500</td></tr>" in page
    assert "by the generator that proposed them: buy_again 1,200, item_knn 700." in page
    assert "Second stage" not in report.render(night(SUCCEEDED), {"score": scored}, "", [])
