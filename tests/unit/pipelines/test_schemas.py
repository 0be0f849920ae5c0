"""Table contracts: each declared once, every other form of a table derived from it."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertSchemaEqual

from pipelines import baselines as B
from pipelines import metrics as Mx
from pipelines import recs as R
from pipelines import schemas as S
from pipelines import train as TR

pytestmark = pytest.mark.unit

CONTRACTS = [v for v in vars(S).values() if isinstance(v, S.Contract)]


def test_every_table_is_declared_once_with_unique_columns() -> None:
    names = [c.table for c in CONTRACTS]
    assert len(names) == len(set(names)) >= 14
    for contract in CONTRACTS:
        assert len(contract.columns) == len(set(contract.columns)), contract.table


def test_narrower_tables_take_their_types_from_the_wider_contract() -> None:
    assert S.SHARDS.columns == [c for c in S.EXAMPLES.columns if c != "split"]
    for narrow, wide in [
        (S.SHARDS, S.EXAMPLES),
        (S.SCORED, S.USER_TOPK),
        (S.SIMILAR_SCORED, S.ITEM_SIMILAR),
    ]:
        for field in narrow.schema.fields:
            assert field == wide.schema[field.name]
    assert S.USER_TOPK.columns[-3:] == list(S.MODEL_COLUMNS) == S.ITEM_SIMILAR.columns[-3:]
    with pytest.raises(KeyError, match="no column"):
        S.EXAMPLES.only("x", "user_id", "nope")


def test_model_inputs_are_columns_of_the_shards() -> None:
    for name in (*TR.FEATURES, *S.HISTORY_COLUMNS):
        assert name in S.SHARDS.columns
    for name in S.HISTORY_LISTS:
        assert S.SHARDS.schema[name].dataType == T.ArrayType(T.IntegerType(), False)
    assert R.SCORING_INPUT_COLUMNS[1 : 1 + len(S.HISTORY_COLUMNS)] == S.HISTORY_COLUMNS


def test_manifest_fields_round_trip_and_name_what_differs() -> None:
    recorded = S.SHARDS.fields()
    assert recorded[0] == {"name": "user_id", "type": "string"}
    assert S.SHARDS.differences(recorded) == []
    retyped = [dict(f, type="bigint") if f["name"] == "hist_len" else f for f in recorded]
    assert S.SHARDS.differences(retyped) == [("hist_len", "bigint"), ("hist_len", "int")]
    assert S.SHARDS.differences(recorded[:-1]) == [("hist_len", "int")]
    swapped = [recorded[1], recorded[0], *recorded[2:]]
    assert S.SHARDS.differences(swapped)[0][0] == "<order>"


def test_select_narrows_to_the_contract_in_order(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("i", 3, "u", 7, "m", "extra")], "item_id string, rank int, user_id string, k int, "
        "method string, other string"
    )  # fmt: skip
    assert S.RANKED_LISTS.select(frame).columns == ["method", "user_id", "item_id", "rank"]


def test_ranked_lists_and_metrics_frames_match_their_contracts(spark: SparkSession) -> None:
    scored = spark.createDataFrame(
        [("m", "u1", "a", 0.9), ("m", "u1", "b", 0.5), ("m", "u2", "b", 0.1)],
        "method string, user_id string, item_id string, score double",
    )
    ranked = Mx.rank_by_score(scored, 2)
    assertSchemaEqual(ranked.schema, S.RANKED_LISTS.schema)  # nullability ignored
    filled = B.fill_up(ranked.drop("method"), ranked.drop("method"), 2, "x")
    assertSchemaEqual(filled.schema, S.RANKED_LISTS.schema)  # nullability ignored
    relevant = spark.createDataFrame([("u1", "b"), ("u2", "c")], "user_id string, item_id string")
    metrics = Mx.ranking_metrics(ranked, relevant, (1, 2), 3)
    assertSchemaEqual(metrics.schema, S.METRICS.schema)  # nullability ignored
    assert metrics.count() == 2
