"""Training/serving skew: the scorer's features for a user and cutoff are exactly the history a
training example with the same cutoff gets (one history builder, ``pipelines.label``)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines import label as L
from pipelines import recs as R
from pipelines import schemas as S
from tests.helpers import at, events

pytestmark = pytest.mark.unit

CUTOFF = dt.date(2026, 11, 20)
RUN = dt.date(2026, 11, 21)
LENGTH = 5
RULES = L.LabelRules(lookback_days=5, history_length=LENGTH, min_item_count=1, history_cutoff="day")


def test_scoring_features_equal_the_history_of_a_training_example_with_the_same_cutoff(
    spark: SparkSession,
) -> None:
    d1, d2 = CUTOFF - dt.timedelta(days=2), CUTOFF - dt.timedelta(days=1)
    ev = events(
        spark,
        # a long history: more than LENGTH item events, so only the latest LENGTH count
        *[("long", f"i{n % 4}", "view", at(d1, 8, n)) for n in range(9)],
        ("long", "x9", "view", at(d2, 9)),  # an item the vocabulary lacks: OOV
        ("long", None, "search", at(d2, 9, 30)),  # a search: never a history position
        ("long", "i2", "cart", at(d2, 23, 59, 59)),
        ("long", "i3", "click", at(CUTOFF, 10)),  # the target: cutoff = the start of its day
        # ties: three events at one instant, ordered by event id in both builders
        ("ties", "i1", "view", at(d2, 12)),
        ("ties", "i2", "view", at(d2, 12)),
        ("ties", "i3", "purchase", at(d2, 12)),
        ("ties", "i0", "view", at(d1, 7)),
        ("ties", "i1", "click", at(CUTOFF, 0, 0, 1)),  # the target, one second after the cutoff
        # a same-day event before the target is not history under the day cutoff
        ("ties", "i2", "view", at(CUTOFF, 0, 0, 0)),
    )
    items = L.build_vocab(L.item_counts(ev, RULES, RUN))
    labeled = L.label_events(ev, items, RULES, RUN)
    training = (
        L.examples(labeled, RULES.history_length)
        .where((F.to_date("target_time") == CUTOFF) & (F.col("target_type") == "click"))
        .select("user_id", *S.HISTORY_COLUMNS)
    )
    serving = R.scoring_inputs(ev, items, CUTOFF, LENGTH, "none").select(
        "user_id", *S.HISTORY_COLUMNS
    )
    assert sorted(r["user_id"] for r in training.collect()) == ["long", "ties"]
    assertDataFrameEqual(serving, training)
    long_row = serving.where("user_id = 'long'").first()
    assert long_row["hist_len"] == LENGTH
    assert long_row["hist_item_idx"][1] == L.OOV  # x9, second most recent
    assert long_row["hist_age_s"][0] == 1  # the cart one second before midnight
