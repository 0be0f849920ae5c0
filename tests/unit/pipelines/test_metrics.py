"""Ranking metrics in Spark against hand-computed cases."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipelines import metrics as Mx
from tests.helpers import assert_lists

pytestmark = pytest.mark.unit


def lists(spark: SparkSession, rows: dict[str, list[str]], method: str = "m") -> DataFrame:
    data = [(method, u, item, r + 1) for u, items in rows.items() for r, item in enumerate(items)]
    return spark.createDataFrame(data, "method string, user_id string, item_id string, rank int")


def relevant(spark: SparkSession, rows: dict[str, list[str]]) -> DataFrame:
    data = [(u, i) for u, items in rows.items() for i in items]
    return spark.createDataFrame(data, "user_id string, item_id string")


def metrics(spark, recs, rel, ks=(1, 2, 3), candidates=10) -> dict[tuple[str, int], dict]:
    out = Mx.ranking_metrics(recs, rel, ks, candidates).collect()
    return {(r["method"], r["k"]): r.asDict() for r in out}


def test_single_user_hand_computed(spark: SparkSession) -> None:
    # list a b c d; relevant b d (ranks 2 and 4)
    got = metrics(
        spark,
        lists(spark, {"u": ["a", "b", "c", "d"]}),
        relevant(spark, {"u": ["b", "d"]}),
        ks=(1, 2, 4),
    )
    assert got[("m", 1)]["recall"] == 0 and got[("m", 1)]["hit_rate"] == 0
    assert got[("m", 2)]["recall"] == pytest.approx(0.5)
    dcg2, idcg2 = 1 / math.log2(3), 1 + 1 / math.log2(3)
    assert got[("m", 2)]["ndcg"] == pytest.approx(dcg2 / idcg2)
    assert got[("m", 2)]["map"] == pytest.approx((1 / 2) / 2)  # precision@2 = 1/2, over min(2, 2)
    dcg4 = 1 / math.log2(3) + 1 / math.log2(5)
    assert got[("m", 4)]["ndcg"] == pytest.approx(dcg4 / idcg2)
    assert got[("m", 4)]["map"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert got[("m", 4)]["recall"] == 1.0 and got[("m", 4)]["hit_rate"] == 1.0
    assert got[("m", 4)]["coverage"] == pytest.approx(4 / 10)


def test_fewer_relevant_items_than_k_normalises_by_the_relevant_count(spark: SparkSession) -> None:
    got = metrics(
        spark, lists(spark, {"u": ["a", "b", "c"]}), relevant(spark, {"u": ["a"]}), ks=(3,)
    )
    row = got[("m", 3)]
    assert row["recall"] == 1.0 and row["ndcg"] == 1.0 and row["map"] == 1.0


def test_more_relevant_items_than_k_caps_ideal_dcg_and_map_at_k(spark: SparkSession) -> None:
    got = metrics(
        spark,
        lists(spark, {"u": ["a", "b"]}),
        relevant(spark, {"u": ["a", "b", "c", "d"]}),
        ks=(2,),
    )
    row = got[("m", 2)]
    assert row["recall"] == pytest.approx(0.5)
    assert row["ndcg"] == pytest.approx(1.0)
    assert row["map"] == pytest.approx(1.0)


def test_user_without_relevant_items_is_not_evaluated(spark: SparkSession) -> None:
    recs = lists(spark, {"u": ["a"], "v": ["b"]})
    got = metrics(spark, recs, relevant(spark, {"u": ["a"]}), ks=(1,))
    assert got[("m", 1)]["users"] == 1 and got[("m", 1)]["recall"] == 1.0
    assert got[("m", 1)]["coverage"] == pytest.approx(1 / 10)  # v's list does not count


def test_user_without_a_list_counts_as_zero(spark: SparkSession) -> None:
    got = metrics(
        spark, lists(spark, {"u": ["a"]}), relevant(spark, {"u": ["a"], "w": ["a"]}), ks=(1,)
    )
    row = got[("m", 1)]
    assert row["users"] == 2 and row["recall"] == pytest.approx(0.5) and row["hit_rate"] == 0.5


def test_methods_are_averaged_separately(spark: SparkSession) -> None:
    recs = lists(spark, {"u": ["a", "b"], "v": ["c", "d"]}, "good").unionByName(
        lists(spark, {"u": ["x", "y"], "v": ["d", "c"]}, "bad")
    )
    got = metrics(spark, recs, relevant(spark, {"u": ["a"], "v": ["c"]}), ks=(1,))
    assert got[("good", 1)]["recall"] == 1.0
    assert got[("bad", 1)]["recall"] == 0.0 and got[("bad", 1)]["users"] == 2


def test_duplicate_relevant_pairs_count_once(spark: SparkSession) -> None:
    got = metrics(
        spark, lists(spark, {"u": ["a", "b"]}), relevant(spark, {"u": ["a", "a", "b"]}), ks=(2,)
    )
    assert got[("m", 2)]["recall"] == 1.0 and got[("m", 2)]["ndcg"] == pytest.approx(1.0)


def test_rank_by_score_breaks_ties_by_item_id(spark: SparkSession) -> None:
    scored = spark.createDataFrame(
        [("m", "u", "c", 0.5), ("m", "u", "a", 0.5), ("m", "u", "b", 0.9), ("m", "u", "d", 0.1)],
        "method string, user_id string, item_id string, score double",
    )
    assert_lists(Mx.rank_by_score(scored, 3), {"u": ["b", "a", "c"]})


def test_ties_across_the_cut_off_are_resolved_the_same_way_for_every_k(spark: SparkSession) -> None:
    scored = spark.createDataFrame(
        [("m", "u", "z", 1.0), ("m", "u", "y", 1.0)],
        "method string, user_id string, item_id string, score double",
    )
    recs = Mx.rank_by_score(scored, 2)
    got = metrics(spark, recs, relevant(spark, {"u": ["z"]}), ks=(1, 2))
    assert got[("m", 1)]["recall"] == 0.0  # y wins the tie at rank 1
    assert got[("m", 2)]["ndcg"] == pytest.approx(1 / math.log2(3))


def test_per_user_metrics_average_to_the_table(spark: SparkSession) -> None:
    recs = lists(spark, {"u": ["a", "b"], "v": ["c", "d"]})
    rel = relevant(spark, {"u": ["b"], "v": ["x"], "w": ["a"]})  # w has no list
    per_user = {
        (r["user_id"], r["k"]): r["recall"] for r in Mx.per_user_metrics(recs, rel, [2]).collect()
    }
    assert per_user == {("u", 2): 1.0, ("v", 2): 0.0, ("w", 2): 0.0}
    assert metrics(spark, recs, rel, ks=(2,))[("m", 2)]["recall"] == pytest.approx(1 / 3)


def test_poisson_weights_have_mean_and_variance_one(spark: SparkSession) -> None:
    from pyspark.sql import functions as F

    draws = spark.range(20_000).select(
        Mx.poisson_weight(F.col("id").cast("string"), F.lit(3), seed=1).alias("w")
    )
    row = draws.agg(F.avg("w").alias("m"), F.var_samp("w").alias("v"), F.min("w")).first()
    assert row["m"] == pytest.approx(1.0, abs=0.03) and row["v"] == pytest.approx(1.0, abs=0.05)
    assert row[2] == 0.0


def test_bootstrap_intervals_bracket_the_mean_and_pair_the_methods(spark: SparkSession) -> None:
    users = [f"u{n}" for n in range(60)]
    # the model hits every user; "same" copies it; "half" hits every other user
    rows = {u: ["hit", "x"] for u in users}
    half = {u: (["hit", "x"] if n % 2 else ["x", "y"]) for n, u in enumerate(users)}
    recs = (
        lists(spark, rows, "model")
        .unionByName(lists(spark, rows, "same"))
        .unionByName(lists(spark, half, "half"))
    )
    rel = relevant(spark, {u: ["hit"] for u in users})
    per_user = Mx.per_user_metrics(recs, rel, [2])
    got = {
        r["method"]: r.asDict()
        for r in Mx.bootstrap(per_user, [("recall", 2)], "model", replicates=100).collect()
    }
    assert got["model"]["mean"] == got["model"]["lo"] == got["model"]["hi"] == 1.0
    assert got["same"]["diff_lo"] == got["same"]["diff_hi"] == 0.0  # a tie
    half_row = got["half"]
    assert half_row["mean"] == pytest.approx(0.5)
    assert 0.3 < half_row["lo"] < 0.5 < half_row["hi"] < 0.7
    assert half_row["diff_hi"] < 0  # worse than the model on the same resamples
    assert half_row["diff_lo"] == pytest.approx(half_row["lo"] - 1.0)
