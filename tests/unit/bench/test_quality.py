"""bench/quality.py's summary: which method a result file says is published, and its ratios."""

from __future__ import annotations

from typing import Any

import pytest

from bench.quality import next_click_summary, summary

pytestmark = pytest.mark.unit


def metrics(recall: dict[str, float], ranked_paired: bool) -> dict[str, Any]:
    """evaluate's metrics.json for these methods (ndcg@10 = recall@20 / 2), the baselines'
    paired intervals against the model and, with ``ranked_paired``, against the ranked lists."""
    table = {m: {"20": {"recall": r}, "10": {"ndcg": r / 2}} for m, r in recall.items()}
    intervals = {
        m: {"recall@20": {"lo": r - 0.01, "hi": r + 0.01, "vs_model": "better" if r > recall["model"] else "worse",
                          "diff_lo": r - recall["model"] - 0.01, "diff_hi": r - recall["model"] + 0.01},
            "ndcg@10": {"lo": r / 2 - 0.01, "hi": r / 2 + 0.01, "vs_model": "tie",
                        "diff_lo": -0.01, "diff_hi": 0.01}}
        for m, r in recall.items()
    }  # fmt: skip
    doc: dict[str, Any] = {
        "metrics": table, "intervals": intervals, "users": 300, "cold_users": 20,
        "tuning": {"methods": {"als": {"chosen": {"rank": 64}}}}, "exclude": "none", "labels": {},
    }  # fmt: skip
    if ranked_paired:
        doc["intervals_vs_ranked"] = {
            "als": {"recall@20": {"diff_lo": -0.03, "diff_hi": -0.01, "verdict": "worse"},
                    "ndcg@10": {"diff_lo": -0.02, "diff_hi": 0.01, "verdict": "tie"}}
        }  # fmt: skip
    return doc


def test_a_run_that_measured_the_ranked_lists_publishes_them() -> None:
    got = summary(metrics({"model": 0.2, "ranked": 0.44, "als": 0.4, "popularity": 0.1}, True))
    assert got["published"] == "ranked" and got["best_baseline"] == "als"
    recall, ndcg = got["ratios"]["recall_at_20"], got["ratios"]["ndcg_at_10"]
    assert recall["published_over_best"] == pytest.approx(1.1)
    assert recall["best_minus_published_ci"] == [-0.03, -0.01]
    assert (recall["verdict"], ndcg["verdict"]) == ("published wins", "tie")
    # the two-tower's own comparison and the second stage's view are kept beside it
    assert got["two_tower"]["recall_at_20"]["published_over_best"] == pytest.approx(0.5)
    assert got["two_tower"]["recall_at_20"]["verdict"] == "published loses"
    assert got["second_stage"]["ratios"]["recall_at_20"]["verdict"] == "ranked wins"
    assert got["warm_users"] == 280 and got["tuning"] == {"als": {"rank": 64}}


def test_a_run_without_the_ranker_publishes_the_two_tower() -> None:
    got = summary(metrics({"model": 0.3, "als": 0.25, "popularity": 0.1}, False))
    assert got["published"] == "model" and "two_tower" not in got and "second_stage" not in got
    assert got["ratios"]["recall_at_20"]["published_over_best"] == pytest.approx(1.2)
    assert got["ratios"]["recall_at_20"]["verdict"] == "published wins"


def test_the_next_click_summary_names_the_best_baseline_and_the_models_ratio() -> None:
    def row(hr: float, mrr: float) -> dict[str, Any]:
        return {"20": {"hr": hr, "mrr": mrr, "ndcg": 0.0, "queries": 50}}

    def interval(mean: float, model: float) -> dict[str, Any]:
        return {"mean": mean, "lo": mean - 0.01, "hi": mean + 0.01,
                "diff_lo": mean - model - 0.01, "diff_hi": mean - model + 0.01,
                "vs_model": "-" if mean == model else ("better" if mean > model else "worse")}  # fmt: skip

    hr = {"model": 0.5, "cooccurrence": 0.8, "popularity": 0.1}
    section = {
        "queries": 50, "cold_queries": 2, "sessions": 20, "tuning": {},
        "metrics": {"model": row(0.5, 0.2), "cooccurrence": row(0.8, 0.25), "popularity": row(0.1, 0.02)},
        "intervals": {m: {"hr@20": interval(v, hr["model"])} for m, v in hr.items()},
    }  # fmt: skip
    got = next_click_summary(section)
    assert got["best_baseline"] == "cooccurrence" and got["queries"] == 50
    assert got["ratio_hr_at_20"] == pytest.approx(0.625) and got[
        "ratio_mrr_at_20"
    ] == pytest.approx(0.8)
    co = got["methods"]["cooccurrence"]
    assert co["hr_at_20_ci"] == pytest.approx([0.79, 0.81]) and co["vs_model"] == "better"
    assert co["model_minus_this_hr_at_20"] == pytest.approx([-0.31, -0.29])
    assert got["methods"]["model"]["model_minus_this_hr_at_20"] is None
    assert got["methods"]["model"]["mrr_at_20_ci"] is None  # no interval was computed for it
