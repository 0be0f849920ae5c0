"""Generator lists within one computation (``Held``): two rankers over a generator with the same
settings share its lists; other settings or another depth build their own. And the grid search
that tunes a method on val (``search_grid``)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.runtime.lists import Held, generator_lists, search_grid
from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import schemas as S

pytestmark = pytest.mark.unit

START = dt.date(2026, 11, 21)


def frames(spark: SparkSession) -> E.EvalFrames:
    t = dt.datetime(2026, 11, 20, 12)
    rows = [("u1", "a", "purchase"), ("u1", "b", "view"), ("u2", "a", "view"), ("u2", "c", "cart")]
    data = [
        (f"e{n}", u, i, kind, t, "s", None, None, None, "cat", True, t.date())
        for n, (u, i, kind) in enumerate(rows)
    ]
    before = spark.createDataFrame(data, S.CLEAN_EVENTS.schema)
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id string")
    items = spark.createDataFrame([("a",), ("b",), ("c",)], "item_id string")
    hidden = spark.createDataFrame([], "user_id string, item_id string")
    return E.EvalFrames(before, users, items, hidden, 2, START, B.BaselineSettings())


def rows(lists: DataFrame) -> list[tuple]:
    return sorted(tuple(r) for r in lists.collect())


def test_a_generators_lists_are_built_once_per_settings_and_depth(
    spark: SparkSession,
) -> None:
    f, held = frames(spark), Held()
    gens = [B.POPULARITY, B.BUY_AGAIN]
    chosen = {B.BUY_AGAIN: B.BaselineSettings(buy_again_half_life_days=7.0)}
    try:
        first = generator_lists(f, gens, chosen, held)
        assert len(held.built) == 2  # popularity and buy_again
        again = generator_lists(dataclasses.replace(f), gens, dict(chosen), held)
        assert len(held.built) == 2 and rows(again) == rows(first)
        # buy_again's own items first: u1 bought a and viewed b
        assert [r[2] for r in sorted(rows(first)) if r[0] == B.BUY_AGAIN and r[1] == "u1"] == [
            "a", "b",
        ]  # fmt: skip
        other = {B.BUY_AGAIN: B.BaselineSettings(buy_again_half_life_days=1.0)}
        generator_lists(f, gens, other, held)
        assert len(held.built) == 3  # the other setting: buy_again again, popularity shared
        generator_lists(dataclasses.replace(f, k=3), gens, chosen, held)
        assert len(held.built) == 5  # another depth: both again
    finally:
        held.release()


def test_the_grid_search_scores_each_points_lists_and_keeps_the_best(spark: SparkSession) -> None:
    """Each point's lists are scored by the mean of a per-user metric; a point that lists
    nothing for anyone scores 0, and the best point wins."""
    lists = {  # point "n" -> its lists: a user's hit is the item "a" at rank 1
        1: [("m", "u1", "a", 1), ("m", "u2", "b", 1)],
        2: [("m", "u1", "a", 1), ("m", "u2", "a", 1)],
        3: [],
    }
    seen: list[tuple[str, int]] = []

    def lists_at(name: str, point: dict[str, int]) -> DataFrame:
        seen.append((name, point["n"]))
        return spark.createDataFrame(lists[point["n"]], S.RANKED_LISTS.schema)

    def per_user(got: DataFrame) -> DataFrame:
        return got.selectExpr("user_id", "cast(item_id = 'a' as double) as hit")

    best, tried = search_grid(
        "[test] tuning", "m", [{"n": 1}, {"n": 2}, {"n": 3}], lists_at, per_user, "hit", "hit"
    )
    assert seen == [("m", 1), ("m", 2), ("m", 3)]
    assert tried == [({"n": 1}, 0.5), ({"n": 2}, 1.0), ({"n": 3}, 0.0)]
    assert best == {"n": 2}
