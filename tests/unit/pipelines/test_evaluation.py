"""The rules evaluate applies to a metrics table: the quality gate, promotion, the champion
tolerance, and the table every report renders."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import SparkSession

from jobs import evaluate
from jobs.runtime.render import metrics_view
from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit

END = dt.date(2026, 11, 21)


def table(model: float, popularity: float, champion: float) -> dict:
    return {
        "model": {"20": {"recall": model}},
        "popularity": {"20": {"recall": popularity}},
        "champion": {"20": {"recall": champion}},
    }


def test_quality_gate_needs_the_ratio_times_the_baseline() -> None:
    config = evaluate.EvaluateConfig(data_root="/x", run_date=END, gate_min_ratio=1.2)
    passed = E.quality_gate(config.rules, table(0.30, 0.25, 0.0), 500, 20)
    assert passed["passed"] and "0.3000 >= 1.2 x popularity 0.2500" in passed["reason"]
    assert "on 480 warm test users" in passed["reason"]
    failed = E.quality_gate(config.rules, table(0.29, 0.25, 0.0), 500, 20)
    assert not failed["passed"] and "0.2900 < 1.2 x popularity" in failed["reason"]
    off = evaluate.EvaluateConfig(data_root="/x", run_date=END, gate_min_ratio=0)
    assert E.quality_gate(off.rules, table(0.0, 0.25, 0.0), 0, 0)["passed"]


def test_gate_against_the_best_baseline_picks_the_strongest() -> None:
    rules = E.Rules(gate_baseline=E.BEST_BASELINE)
    scores = {
        "model": {"20": {"recall": 0.30}},
        "champion": {"20": {"recall": 0.50}},  # not a baseline
        "popularity": {"20": {"recall": 0.10}},
        "als": {"20": {"recall": 0.32}},
        "item_knn": {"20": {"recall": 0.28}},
    }
    gate = E.quality_gate(rules, scores, 1000, 0)
    assert not gate["passed"] and gate["baseline"] == "als" and gate["baseline_value"] == 0.32
    assert "< 1 x als (the best baseline) 0.3200" in gate["reason"]
    scores["model"]["20"]["recall"] = 0.33
    assert E.quality_gate(rules, scores, 1000, 0)["passed"]


def test_the_gate_judges_the_ranked_lists_when_they_are_published() -> None:
    scores = {
        "model": {"20": {"recall": 0.20}},
        "ranked": {"20": {"recall": 0.36}},  # ours: never the best baseline
        "als": {"20": {"recall": 0.34}},
        "popularity": {"20": {"recall": 0.10}},
    }
    rules = E.Rules(gate_baseline=E.BEST_BASELINE, published=E.RANKED)
    gate = E.quality_gate(rules, scores, 1000, 0)
    assert gate["passed"] and (gate["method"], gate["baseline"]) == ("ranked", "als")
    assert gate["reason"].startswith("ranked recall@20 0.3600 >= 1 x als (the best baseline)")
    two_tower = E.quality_gate(E.Rules(gate_baseline=E.BEST_BASELINE), scores, 1000, 0)
    assert not two_tower["passed"] and two_tower["baseline"] == "als"
    assert E.method_order(scores)[:2] == ["model", "ranked"]


def test_gate_fails_on_too_few_warm_test_users_whatever_the_scores() -> None:
    rules = E.Rules(gate_min_warm_users=300)
    winning = table(0.90, 0.10, 0.0)
    mostly_cold = E.quality_gate(rules, winning, 1188, 1187)
    assert not mostly_cold["passed"] and mostly_cold["warm_users"] == 1
    assert "too few warm test users to judge the model: 1 of 1,188" in mostly_cold["reason"]
    assert "(1,187 cold), fewer than gate_min_warm_users 300" in mostly_cold["reason"]
    assert not E.quality_gate(rules, winning, 299, 0)["passed"]
    assert E.quality_gate(rules, winning, 300, 0)["passed"]
    gate, decision = E.decide(rules, winning, "3", None, 1188, 1187)
    assert not gate["passed"]
    assert not decision["promote"] and "too few warm test users" in decision["reason"]


def test_champion_tolerance_lets_a_near_tie_take_over() -> None:
    strict = evaluate.EvaluateConfig(data_root="/x", run_date=END)
    tolerant = evaluate.EvaluateConfig(data_root="/x", run_date=END, champion_tolerance=0.05)
    near = table(0.300, 0.1, 0.310)  # 3% below the champion
    assert not E.promotion(strict.rules, near, "3", "2")["promote"]
    decision = E.promotion(tolerant.rules, near, "3", "2")
    assert decision["promote"] and "within 5%" in decision["reason"]
    far = table(0.290, 0.1, 0.310)  # 6.5% below
    kept = E.promotion(tolerant.rules, far, "3", "2")
    assert not kept["promote"] and "v2 keeps serving" in kept["reason"]


def test_gate_and_tolerance_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"champion_tolerance=1\.0"):
        evaluate.EvaluateConfig(data_root="/x", run_date=END, champion_tolerance=1.0)
    with pytest.raises(ConfigError, match="gate_baseline='als'"):
        evaluate.EvaluateConfig(
            data_root="/x", run_date=END, baselines=("popularity",), gate_baseline="als"
        )
    best = evaluate.EvaluateConfig(data_root="/x", run_date=END, gate_baseline="best")
    assert best.rules.gate_baseline == E.BEST_BASELINE


def test_promotion_keeps_the_champion_unless_beaten() -> None:
    rules = E.Rules()
    scores = {"model": {"20": {"recall": 0.30}}, "champion": {"20": {"recall": 0.31}}}
    kept = E.promotion(rules, scores, "3", "2")
    assert not kept["promote"] and "v2 keeps serving" in kept["reason"]
    scores["champion"]["20"]["recall"] = 0.29
    assert E.promotion(rules, scores, "3", "2")["promote"]
    assert not E.promotion(rules, scores, "3", "3")["promote"]  # already the champion
    first = E.promotion(rules, scores, "3", None)
    assert first["promote"] and "no model had the alias 'champion'" in first["reason"]


def test_with_the_ranked_lists_published_the_fresher_model_takes_over() -> None:
    """The night publishes the ranker's lists over the new model's candidates: the two-tower's
    own lists losing to the champion's does not keep the night's tables back; a failed gate
    on the ranked lists still does."""
    rules = E.Rules(published=E.RANKED, champion_tolerance=0.05, gate_baseline=E.BEST_BASELINE)
    scores = {
        "model": {"20": {"recall": 0.25}},  # 19% below the champion's own lists
        "champion": {"20": {"recall": 0.31}},
        "ranked": {"20": {"recall": 0.40}},
        "als": {"20": {"recall": 0.38}},
    }
    decision = E.promotion(rules, scores, "3", "2")
    assert decision["promote"] and (decision["model"], decision["champion"]) == (0.25, 0.31)
    assert decision["reason"].startswith("the ranked lists are what is published")
    assert "its own lists: recall@20 0.2500, the champion v2's 0.3100" in decision["reason"]
    assert not E.promotion(dataclasses.replace(rules, published=E.MODEL), scores, "3", "2")[
        "promote"
    ]
    gate, decided = E.decide(rules, scores, "3", "2", 500, 0)
    assert gate["passed"] and decided["promote"]
    scores["als"]["20"]["recall"] = 0.45  # the ranked lists lose to ALS
    gate, decided = E.decide(rules, scores, "3", "2", 500, 0)
    assert not gate["passed"] and not decided["promote"]


def test_ranked_lists_that_lose_to_the_champion_rankers_fail_the_gate() -> None:
    """Tonight's ranked lists beat the best baseline but are measured beside the lists of the
    ranker that serves now: a loss the paired interval bears out fails the gate (nothing is
    published); a loss within the noise, or within the tolerance, does not."""
    rules = E.Rules(published=E.RANKED, gate_baseline=E.BEST_BASELINE)
    scores = {
        "model": {"20": {"recall": 0.25}},
        "ranked": {"20": {"recall": 0.40}},
        "champion_ranked": {"20": {"recall": 0.44}},  # ours: never the best baseline
        "als": {"20": {"recall": 0.38}},
    }
    loss = {"champion_ranked": {"recall@20": {"diff_lo": 0.01, "diff_hi": 0.07}}}
    gate, decided = E.decide(rules, scores, "3", None, 500, 0, loss)
    assert not gate["passed"] and not decided["promote"]
    assert gate["baseline"] == "als"  # the champion ranker's lists are not a baseline
    check = gate["champion_ranker"]
    assert (check["ranked"], check["champion_ranked"], check["held"]) == (0.40, 0.44, False)
    assert gate["reason"].startswith(
        "ranked recall@20 0.4000 loses to the champion ranker's lists at 0.4400 "
        "(champion - ranked [+0.0100, +0.0700])"
    )
    assert decided["reason"].startswith("quality gate failed: ranked recall@20 0.4000 loses")
    tie = {"champion_ranked": {"recall@20": {"diff_lo": -0.01, "diff_hi": 0.07}}}
    gate, decided = E.decide(rules, scores, "3", None, 500, 0, tie)
    assert gate["passed"] and decided["promote"] and gate["champion_ranker"]["held"]
    assert "holds against the champion ranker's lists" in gate["champion_ranker"]["reason"]
    tolerant = dataclasses.replace(rules, champion_tolerance=0.1)  # 0.40 >= 0.9 x 0.44
    assert E.decide(tolerant, scores, "3", None, 500, 0, loss)[0]["passed"]
    # no intervals (bootstrap_replicates 0): the values decide
    assert not E.decide(rules, scores, "3", None, 500, 0)[0]["passed"]
    scores["champion_ranked"]["20"]["recall"] = 0.39
    assert E.decide(rules, scores, "3", None, 500, 0)[0]["passed"]
    # the two-tower's lists published, or no gate: no comparison with the champion ranker
    model_rules = dataclasses.replace(rules, published=E.MODEL)
    assert E.against_champion_ranker(model_rules, scores, loss) is None
    no_gate = dataclasses.replace(rules, gate_min_ratio=0)
    assert "champion_ranker" not in E.decide(no_gate, scores, "3", None, 500, 0, loss)[0]


def test_a_failed_gate_promotes_nothing_even_a_winner() -> None:
    gate, decision = E.decide(
        E.Rules(gate_min_ratio=2.0), table(0.30, 0.25, 0.10), "3", "2", 500, 0
    )
    assert not gate["passed"] and not decision["promote"]
    assert decision["reason"].startswith("quality gate failed: recall@20 0.3000 < 2 x popularity")


def test_every_rendering_shares_one_metrics_table_in_method_order() -> None:
    metrics = {
        method: {
            k: {"recall": r, "ndcg": r / 2, "map": r / 3, "hit_rate": r * 2, "coverage": 0.5}
            for k in ("10", "20")
        }
        for method, r in (("popularity", 0.1), ("als", 0.2), ("champion", 0.3), ("model", 0.4))
    }
    view = metrics_view(metrics, {"model": "model v3"})
    assert view["columns"] == [
        "recall@10", "ndcg@10", "recall@20", "ndcg@20", "map@20", "hit_rate@20", "coverage@20",
    ]  # fmt: skip
    assert [r["label"] for r in view["rows"]] == ["model v3", "champion", "als", "popularity"]
    assert view["rows"][0]["values"] == [0.4, 0.2, 0.4, 0.2, 0.4 / 3, 0.8, 0.5]


def test_every_grid_tunes_known_settings_of_a_known_baseline_within_the_budget() -> None:
    import dataclasses as dc

    fields = {f.name for f in dc.fields(B.BaselineSettings)}
    for name, grid in E.GRIDS.items():
        assert name in E.BASELINES and name in E.HANDLING
        assert 1 < len(grid) <= 4
        assert all(set(point) <= fields for point in grid)
        assert len({E.tuned(B.BaselineSettings(), point) for point in grid}) == len(grid)


def test_the_best_val_point_wins_and_the_first_of_equals() -> None:
    a, b, c = {"x": 1}, {"x": 2}, {"x": 3}
    assert E.best_point([(a, 0.1), (b, 0.3), (c, 0.2)]) == b
    assert E.best_point([(a, 0.2), (b, 0.2)]) == a
    assert E.tuned(B.BaselineSettings(), {"knn_neighbours": 7}).knn_neighbours == 7


def test_intervals_say_tie_when_the_difference_crosses_zero() -> None:
    rows = [
        {"method": "model", "metric": "recall", "k": 20, "mean": 0.3, "lo": 0.25, "hi": 0.35,
         "diff_lo": 0.0, "diff_hi": 0.0},
        {"method": "als", "metric": "recall", "k": 20, "mean": 0.28, "lo": 0.22, "hi": 0.33,
         "diff_lo": -0.04, "diff_hi": 0.01},
        {"method": "popularity", "metric": "recall", "k": 20, "mean": 0.1, "lo": 0.08,
         "hi": 0.12, "diff_lo": -0.22, "diff_hi": -0.18},
    ]  # fmt: skip
    table = E.intervals_table(rows)
    assert table["als"]["recall@20"]["vs_model"] == "tie"
    assert table["popularity"]["recall@20"]["vs_model"] == "worse"
    assert table["model"]["recall@20"]["vs_model"] == "-"
    assert E.verdict(0.01, 0.2) == "better"
    rules = E.Rules(promotion_metric="map", promotion_k=50)
    assert E.interval_targets(rules, (10, 20, 50)) == [("map", 50), ("recall", 20), ("ndcg", 10)]
    assert E.interval_targets(E.Rules(), (20,)) == [("recall", 20)]


def test_als_blocks_default_to_the_sessions_parallelism(spark: SparkSession) -> None:
    derived = evaluate.EvaluateConfig(data_root="/x", run_date=END).settings(spark)
    assert derived.als_blocks == spark.sparkContext.defaultParallelism
    assert derived.als_blocks != B.BaselineSettings().als_blocks  # 2 here, Spark's default 10
    pinned = evaluate.EvaluateConfig(data_root="/x", run_date=END, als_blocks=3).settings(spark)
    assert pinned.als_blocks == 3 and pinned.als_rank == 32
