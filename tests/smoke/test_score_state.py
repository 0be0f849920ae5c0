"""Score carries the per-user history state from night to night: advancing yesterday's state
publishes what a rebuild from the window publishes, and a damaged state stops the night."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from jobs import score
from jobs.runtime import layout
from jobs.runtime.manifest import RunResult
from pipelines.errors import InputError
from tests.conftest import copy_root

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)
PREV = END - dt.timedelta(days=1)
MODEL = "models:/cartwheel-two-tower@candidate"  # the template's model (no champion yet)


def run_score(spark: SparkSession, root: Path, day: dt.date) -> RunResult:
    config = score.ScoreConfig(
        data_root=str(root), run_date=day, model_uri=MODEL, k=10, similar_items=False
    )
    return score.main(spark, config)


@pytest.fixture(scope="module")
def yesterday(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the trained template scored for the day before END: it holds that day's state."""
    root = copy_root(trained_template, tmp_path_factory, "state-prev")
    run_score(spark, root, PREV)
    return root


def test_score_advances_yesterdays_state_and_publishes_what_a_rebuild_publishes(
    spark: SparkSession, yesterday: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    advanced_root = copy_root(yesterday, tmp_path_factory, "state-advanced")
    rebuilt_root = copy_root(yesterday, tmp_path_factory, "state-rebuilt")
    shutil.rmtree(layout.user_history(str(rebuilt_root), PREV))

    advanced = run_score(spark, advanced_root, END)
    rebuilt = run_score(spark, rebuilt_root, END)

    state = advanced.manifest["user_history"]
    assert state["built"] == "incremental"
    assert state["previous"] == layout.user_history(str(advanced_root), PREV)
    assert state["previous"] in advanced.manifest["inputs"]
    fallback = rebuilt.manifest["user_history"]
    assert fallback["built"] == "rebuilt" and fallback["previous"] is None
    assert f"no user history state of {PREV}" in fallback["reason"]
    assert state["users"] == fallback["users"] == advanced.manifest["active_users"] > 0
    assert (
        f"user history state: {state['users']:,} users, incremental (advanced the user history "
        f"state of {PREV} by one day)" in score.summarize(advanced)
    )
    for table in (("state", "user_history"), ("recs", "user_topk")):
        got, want = (
            spark.read.parquet(str(Path(root, *table, layout.partition(END))))
            for root in (advanced_root, rebuilt_root)
        )
        assertDataFrameEqual(got, want)


def test_a_damaged_state_is_named_and_nothing_is_published(
    spark: SparkSession, yesterday: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(yesterday, tmp_path_factory, "state-damaged")
    state = Path(layout.user_history(str(root), PREV))
    damaged = sorted(state.glob("part-*.parquet"))[0]
    damaged.write_bytes(b"not parquet at all")

    with pytest.raises(InputError, match=rf"user history state.*{damaged.name}"):
        run_score(spark, root, END)
    assert not Path(layout.recs(str(root), "user_topk", END)).exists()
    assert not Path(layout.user_history(str(root), END)).exists()
