"""Score and evaluate end to end after a small Horovod training run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import evaluate, score
from jobs.runtime import registry, scoring
from jobs.runtime.manifest import RunResult
from jobs.runtime.render import metrics_view, render
from pipelines import recs as R
from pipelines import schemas as S
from pipelines.errors import ConfigError, InputError
from tests.conftest import copy_root

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)
NAME = "cartwheel-two-tower"
K = 20


@pytest.fixture(scope="module")
def trained_root(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's trained data root (model registered @candidate, no champion)."""
    return copy_root(trained_template, tmp_path_factory, "score")


@pytest.fixture(scope="module")
def evaluated(spark: SparkSession, trained_root: Path) -> RunResult:
    # every baseline at its defaults (tuning has its own test below), 20 bootstrap resamples,
    # item_similar judged on next clicks too (the gate stays on the user lists)
    config = evaluate.EvaluateConfig(
        data_root=str(trained_root), run_date=END, als_iterations=3, tune_baselines=False,
        bootstrap_replicates=20, next_click=True,
    )  # fmt: skip
    return evaluate.main(spark, config)


@pytest.fixture(scope="module")
def scored(spark: SparkSession, trained_root: Path, evaluated: RunResult) -> RunResult:
    return score.main(spark, score.ScoreConfig(data_root=str(trained_root), run_date=END, k=K))


def test_evaluate_compares_every_method_at_every_k_and_the_model_beats_popularity(
    evaluated: RunResult, trained_root: Path
) -> None:
    m = evaluated.manifest
    assert evaluated.succeeded
    table = m["metrics"]
    assert set(table) == {
        "model", "popularity", "recent_popularity", "cooccurrence", "item_knn", "buy_again", "als"
    }  # fmt: skip
    for method, per_k in table.items():
        assert set(per_k) == {"10", "20", "50"}, method
        assert len({v["users"] for v in per_k.values()}) == 1  # same users for every K
        recalls = [per_k[k]["recall"] for k in ("10", "20", "50")]
        assert recalls == sorted(recalls), method  # recall cannot fall as K grows
    assert (
        len({per_k["20"]["users"] for per_k in table.values()}) == 1
    )  # same users for every method
    assert table["model"]["20"]["recall"] > table["popularity"]["20"]["recall"]
    report = trained_root / "reports" / f"dt={END}"
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["metrics"] == table and doc["users"] == m["rows_in"]
    text = (report / "report.md").read_text()
    assert "| popularity |" in text and "cold" in text.lower() and "Promotion" in text
    assert (report / "recall_at_k.svg").read_text().lstrip().startswith("<?xml")
    # 95 % intervals for recall@20 and ndcg@10, each method paired with the model
    assert set(doc["intervals"]) == set(table) and doc["bootstrap_replicates"] == 20
    for method, by_key in doc["intervals"].items():
        assert set(by_key) == {"recall@20", "ndcg@10"}
        i = by_key["recall@20"]
        assert i["lo"] <= i["mean"] <= i["hi"] and i["mean"] == pytest.approx(
            table[method]["20"]["recall"]
        )
        assert i["vs_model"] in ({"-"} if method == "model" else {"better", "worse", "tie"})
    assert "95 % intervals" in text and "not tuned" in text and doc["tuning"] == {}


def test_next_click_judges_item_similar_against_item_to_item_baselines(
    evaluated: RunResult, trained_root: Path
) -> None:
    doc = json.loads((trained_root / "reports" / f"dt={END}" / "metrics.json").read_text())
    nc = doc["next_click"]
    assert list(nc["metrics"]) == [
        "model", "als", "cooccurrence", "item_knn", "popularity", "recent_popularity"
    ]  # fmt: skip
    assert nc["queries"] > 100 and 0 < nc["sessions"] <= nc["queries"]
    assert 0 <= nc["cold_queries"] < nc["queries"] and nc["tuning"] == {}
    for method, by_k in nc["metrics"].items():
        assert {v["queries"] for v in by_k.values()} == {nc["queries"]}, method
        hr = [by_k[k]["hr"] for k in ("10", "20", "50")]
        assert hr == sorted(hr) and all(by_k[k]["mrr"] <= by_k[k]["hr"] for k in by_k), method
        i = nc["intervals"][method]["hr@20"]
        assert i["lo"] <= i["mean"] <= i["hi"] and i["mean"] == pytest.approx(by_k["20"]["hr"])
    # neighbour lists beat one global list for everyone on this generator's sessions
    assert nc["metrics"]["item_knn"]["20"]["hr"] > nc["metrics"]["popularity"]["20"]["hr"]
    assert "on" not in doc["gate"] and evaluated.manifest["next_click"]["queries"] == nc["queries"]
    report = (trained_root / "reports" / f"dt={END}" / "report.md").read_text()
    assert "## Next click" in report and "| item_knn |" in report
    with pytest.raises(ConfigError, match="gate_on=next-click needs --next-click"):
        evaluate.EvaluateConfig(data_root=str(trained_root), run_date=END, gate_on="next-click")


def test_evaluate_tunes_each_baseline_on_val_before_measuring_on_test(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(trained_template, tmp_path_factory, "tuning")
    # next clicks judged and gated on too: their baselines are tuned on the val days' queries
    config = evaluate.EvaluateConfig(
        data_root=str(root), run_date=END, bootstrap_replicates=0, promote=False,
        baselines=("popularity", "buy_again", "recent_popularity"), next_click=True,
        gate_on="next-click", gate_min_warm_users=10,
    )  # fmt: skip
    result = evaluate.main(spark, config)
    assert result.succeeded
    doc = json.loads((root / "reports" / f"dt={END}" / "metrics.json").read_text())
    tuning = doc["tuning"]
    assert tuning["split"] == "val" and tuning["metric"] == "recall@20"
    # popularity has nothing to tune
    assert set(tuning["methods"]) == {"buy_again", "recent_popularity"}
    # buy-again lists a user's own items: no item -> item lists, so not judged on next clicks
    clicks = doc["next_click"]
    assert list(clicks["metrics"]) == ["model", "popularity", "recent_popularity"]
    [(name, chosen)] = clicks["tuning"]["methods"].items()
    assert name == "recent_popularity" and len(chosen["tried"]) == 4
    best = max(chosen["tried"], key=lambda t: t["recall@20"])
    assert chosen["chosen"] == {"recent_days": best["recent_days"]}
    # the gate judged the model's next clicks, not its user lists
    gate = doc["gate"]
    assert gate["on"] == "next-click" and "test queries (session steps)" in gate["reason"]
    assert gate["reason"].startswith("HR@20 ") and "recall@20" not in gate["reason"]
    assert gate["model"] == pytest.approx(clicks["metrics"]["model"]["20"]["hr"])
    assert gate["passed"] == (gate["model"] >= gate["baseline_value"] and gate["model"] > 0)
    tried = tuning["methods"]["buy_again"]["tried"]
    assert len(tried) == 4 and all(0 <= t["recall@20"] <= 1 for t in tried)
    best = max(tried, key=lambda t: t["recall@20"])
    assert tuning["methods"]["buy_again"]["chosen"] == {
        "buy_again_half_life_days": best["buy_again_half_life_days"]
    }
    assert tuning["methods"]["buy_again"]["chosen_for"] == END.isoformat()
    report = (root / "reports" / f"dt={END}" / "report.md").read_text()
    assert doc["intervals"] == {} and "chosen on the val split" in report
    assert "reused" not in report
    # a setting an earlier night chose (rank --retune-days) is reported as such
    earlier = (END - dt.timedelta(days=3)).isoformat()
    doc["tuning"]["methods"]["buy_again"]["chosen_for"] = earlier
    again = render("evaluation.md.j2", doc=doc, view=metrics_view(doc["metrics"], doc["labels"]))
    assert f"chosen on the val split of the night of {earlier}, reused" in again


def test_first_evaluation_promotes_and_logs_a_linked_mlflow_run(
    evaluated: RunResult, trained_root: Path
) -> None:
    m = evaluated.manifest
    client = MlflowClient(f"sqlite:///{trained_root}/mlflow/mlflow.db")
    candidate = client.get_model_version_by_alias(NAME, "candidate")
    assert m["promotion"]["applied"] and "no model had the alias" in m["promotion"]["reason"]
    assert client.get_model_version_by_alias(NAME, "champion").version == candidate.version
    run = client.get_run(m["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == candidate.run_id
    assert run.data.metrics["model.recall_at_20"] == pytest.approx(
        m["metrics"]["model"]["20"]["recall"]
    )


def test_user_topk_has_the_contract_k_rows_per_active_user_and_no_excluded_items(
    spark: SparkSession, scored: RunResult, trained_root: Path
) -> None:
    m = scored.manifest
    client = MlflowClient(f"sqlite:///{trained_root}/mlflow/mlflow.db")
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert scored.succeeded and m["model_version"] == str(champion.version)
    recs = spark.read.parquet(str(trained_root / "recs" / "user_topk" / f"dt={END}"))
    assert [(f.name, f.dataType) for f in recs.schema.fields] == [
        (f.name, f.dataType) for f in S.USER_TOPK.schema.fields
    ]
    events = spark.read.parquet(str(trained_root / "clean" / "events"))
    active = events.select("user_id").distinct()
    assert recs.select("user_id").distinct().count() == active.count() == m["active_users"]
    per_user = recs.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("item_id").alias("d"),
        F.max("rank").alias("top"),
    )
    assert per_user.where((F.col("n") != K) | (F.col("d") != K) | (F.col("top") != K)).count() == 0
    purchased = events.where(F.col("event_type") == S.PURCHASE).select("user_id", "item_id")
    assert recs.join(purchased, ["user_id", "item_id"], "left_semi").count() == 0
    catalog = spark.read.parquet(str(trained_root / "raw" / "catalog"))
    sellable = catalog.where(F.col("is_sellable")).select("item_id")
    assert recs.join(sellable, "item_id", "left_anti").count() == 0
    assert (
        m["items_not_sellable"] + m["items_missing_from_catalog"] > 0
    )  # the exclusion was exercised
    cold = recs.where(F.col("source") == R.POPULARITY).select("user_id").distinct().count()
    assert cold == m["cold_users_popularity_fallback"]
    assert recs.where((F.col("source") == R.MODEL) & F.col("score").isNull()).count() == 0


def test_item_similar_lists_k_other_sellable_items(
    spark: SparkSession, scored: RunResult, trained_root: Path
) -> None:
    sim = spark.read.parquet(str(trained_root / "recs" / "item_similar" / f"dt={END}"))
    assert [f.name for f in sim.schema.fields] == [f.name for f in S.ITEM_SIMILAR.schema.fields]
    assert sim.where(F.col("item_id") == F.col("similar_item_id")).count() == 0
    counts = sim.groupBy("item_id").count()
    assert counts.where(F.col("count") != K).count() == 0
    assert counts.count() == scored.manifest["vocabulary_items"]
    ordered = (
        sim.groupBy("item_id")
        .agg(F.sort_array(F.collect_list(F.struct("rank", "score"))).alias("s"))
        .collect()
    )
    for row in ordered[:50]:
        scores = [x["score"] for x in row["s"]]
        assert scores == sorted(scores, reverse=True)


def test_scores_agree_with_mlflow_spark_udf(
    spark: SparkSession, scored: RunResult, trained_root: Path
) -> None:
    registry.configure_tracking(str(trained_root))  # not mlflow.set_tracking_uri: see test_train
    uri = f"models:/{NAME}/{scored.manifest['model_version']}"
    model = registry.resolve(uri)
    catalog = spark.read.parquet(str(trained_root / "raw" / "catalog"))
    candidates, _ = scoring.sellable_candidates(spark, model, catalog)
    events = spark.read.parquet(str(trained_root / "clean" / "events"))
    inputs = R.scoring_inputs(
        events,
        model.item_index(spark),
        END + dt.timedelta(days=1),
        model.history_length,
        "purchased",
    )
    sample = inputs.where(F.col("hist_len") > 0).orderBy("user_id").limit(40)
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type="array<float>", env_manager="local")
    cols = ["hist_item_idx", "hist_type_idx", "hist_age_s", "hist_len"]
    rows = sample.select(
        "user_id", "excluded_idx", udf(F.struct(*[F.col(c) for c in cols])).alias("v")
    ).collect()
    vectors = np.array([r["v"] for r in rows], dtype=np.float32)
    assert vectors.shape == (40, model.tower.config.dim)
    top = R.TopKScorer(model.vectors, candidates, device=torch.device("cpu")).top_k(
        vectors, K, excluded=[np.array(r["excluded_idx"], dtype=np.int64) for r in rows]
    )
    recs = spark.read.parquet(str(trained_root / "recs" / "user_topk" / f"dt={END}"))
    table = {
        r["user_id"]: [(x["item_id"], x["score"]) for x in r["l"]]
        for r in recs.where(F.col("user_id").isin([r["user_id"] for r in rows]))
        .groupBy("user_id")
        .agg(F.sort_array(F.collect_list(F.struct("rank", "item_id", "score"))).alias("l"))
        .collect()
    }
    for row, items, scores in zip(rows, top.items, top.scores, strict=True):
        got = table[row["user_id"]]
        assert [i for i, _ in got] == list(model.item_ids[items])
        np.testing.assert_allclose([s for _, s in got], scores, rtol=1e-4, atol=1e-5)


def test_bfloat16_scoring_publishes_lists_close_to_float32(
    spark: SparkSession, scored: RunResult, trained_root: Path, tmp_path: Path
) -> None:
    config = score.ScoreConfig(
        data_root=str(trained_root), run_date=END, k=K, precision="bfloat16",
        similar_items=False, output_root=str(tmp_path),
    )  # fmt: skip
    half = score.main(spark, config)
    assert half.succeeded and half.manifest["config"]["precision"] == "bfloat16"
    assert half.manifest["active_users"] == scored.manifest["active_users"]
    part = f"dt={END}"
    got = spark.read.parquet(str(tmp_path / "recs" / "user_topk" / part))
    want = spark.read.parquet(str(trained_root / "recs" / "user_topk" / part))

    def low_bits(df: DataFrame) -> np.ndarray:
        """The low 16 bits of every model score (zero for a bfloat16 score widened to float32)."""
        rows = df.where(F.col("source") == R.MODEL).select("score").collect()
        return np.array([r["score"] for r in rows], dtype=np.float32).view(np.uint32) & 0xFFFF

    assert (low_bits(got) == 0).all()
    assert (low_bits(want) != 0).any()
    lists = {
        name: {
            r["user_id"]: set(r["items"])
            for r in df.groupBy("user_id").agg(F.collect_set("item_id").alias("items")).collect()
        }
        for name, df in (("bfloat16", got), ("float32", want))
    }
    assert lists["bfloat16"].keys() == lists["float32"].keys()
    overlap = [len(lists["bfloat16"][u] & v) / K for u, v in lists["float32"].items()]
    assert np.mean(overlap) >= 0.8


def test_unknown_model_uri_fails_naming_it_and_publishes_nothing(
    spark: SparkSession, trained_root: Path
) -> None:
    with pytest.raises(InputError, match=r"models:/no-such-model@champion does not exist"):
        score.main(
            spark,
            score.ScoreConfig(
                data_root=str(trained_root),
                run_date=END - dt.timedelta(days=1),
                model_uri="models:/no-such-model@champion",
            ),
        )
    assert not (trained_root / "recs" / "user_topk" / f"dt={END - dt.timedelta(days=1)}").exists()
    failed = json.loads(
        (trained_root / "_runs" / str(END - dt.timedelta(days=1)) / "score.json").read_text()
    )
    assert failed["status"] == "failed" and "no-such-model" in failed["error"]


def test_model_whose_vocabulary_does_not_cover_the_data_is_refused(
    spark: SparkSession, trained_root: Path, evaluated: RunResult
) -> None:
    with pytest.raises(InputError, match="does not match the data"):
        score.main(
            spark,
            score.ScoreConfig(
                data_root=str(trained_root),
                run_date=END - dt.timedelta(days=2),
                min_vocab_coverage=1.0,
            ),
        )
