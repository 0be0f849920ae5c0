"""Labelling on tiny hand-made timelines: histories, splits, vocabulary, caps, dispositions."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertSchemaEqual

from pipelines import label as L
from pipelines import schemas as S
from pipelines.errors import ConfigError
from tests.helpers import at, events

pytestmark = pytest.mark.unit

RUN = dt.date(2026, 11, 21)
TRAIN_DAY, VAL_DAY, TEST_DAY = dt.date(2026, 11, 19), dt.date(2026, 11, 20), RUN
RULES = L.LabelRules(lookback_days=5, history_length=3, min_item_count=1, history_cutoff="event")


def run_label(
    spark: SparkSession, ev: DataFrame, rules: L.LabelRules = RULES
) -> tuple[DataFrame, DataFrame]:
    items = L.build_vocab(L.item_counts(ev, rules, RUN))
    labeled = L.label_events(ev, items, rules, RUN)
    return labeled, items


def by_event(labeled: DataFrame, rules: L.LabelRules = RULES) -> dict[str, dict]:
    """Every event's labelled row; a target's with its example's history arrays."""
    rows = {r["event_id"]: r.asDict() for r in labeled.collect()}
    for r in L.with_histories(labeled, rules.history_length).collect():
        rows[r["event_id"]].update(r.asDict())
    return rows


def item_index(items: DataFrame) -> dict[str, int]:
    return {r["item_id"]: r["item_idx"] for r in items.collect()}


def test_history_holds_strictly_earlier_events_most_recent_first(spark: SparkSession) -> None:
    ev = events(
        spark,
        ("u", "i1", "view", at(TRAIN_DAY, 10)),
        ("u", "i2", "view", at(TRAIN_DAY, 11)),
        ("u", "i3", "click", at(TRAIN_DAY, 12)),  # target
        ("u", "i4", "view", at(TRAIN_DAY, 12)),  # same instant as the target: must not leak in
    )
    labeled, items = run_label(spark, ev)
    idx = item_index(items)
    target = by_event(labeled)["e002"]
    assert target["disposition"] == L.TARGET
    assert target["hist_item_idx"] == [idx["i2"], idx["i1"], L.PAD]
    assert target["hist_type_idx"] == [L.TYPE_INDEX["view"], L.TYPE_INDEX["view"], L.PAD]
    assert target["hist_age_s"] == [3600, 7200, 0]
    assert target["hist_len"] == 2


def test_day_cutoff_history_ends_before_the_targets_day(spark: SparkSession) -> None:
    rules = L.LabelRules(lookback_days=5, history_length=3, min_item_count=1, history_cutoff="day")
    before = TRAIN_DAY - dt.timedelta(days=1)
    ev = events(
        spark,
        ("u", "i1", "view", at(before, 10)),
        ("u", "i2", "click", at(before, 22)),  # a target of the day before
        ("u", "i3", "view", at(TRAIN_DAY, 9)),  # same day as the next target: not in its history
        ("u", "i3", "click", at(TRAIN_DAY, 9, 5)),  # target
        ("u", "i4", "cart", at(TRAIN_DAY, 15)),  # target, same day: the same history
    )
    labeled, items = run_label(spark, ev, rules)
    idx, rows = item_index(items), by_event(labeled, rules)
    for e in ("e003", "e004"):
        assert rows[e]["disposition"] == L.TARGET
        assert rows[e]["hist_item_idx"] == [idx["i2"], idx["i1"], L.PAD]
        assert rows[e]["hist_age_s"] == [2 * 3600, 14 * 3600, 0]  # from the day's start
    # e001 has no earlier-day history (no example of its own) but is in e003's history
    assert rows["e000"]["disposition"] == rows["e001"]["disposition"] == L.HISTORY_ONLY
    assert rows["e002"]["disposition"] == L.NOT_BEFORE_ANY_TARGET


def test_events_sharing_a_timestamp_share_one_history(spark: SparkSession) -> None:
    ev = events(
        spark,
        ("u", "i1", "view", at(TRAIN_DAY, 10)),
        ("u", "i2", "purchase", at(TRAIN_DAY, 11)),
        ("u", "i3", "purchase", at(TRAIN_DAY, 11)),
        ("u", "i4", "purchase", at(TRAIN_DAY, 11)),
    )
    labeled, items = run_label(spark, ev)
    rows = by_event(labeled)
    histories = {rows[e]["hist_item_idx"][0] for e in ("e001", "e002", "e003")}
    assert histories == {item_index(items)["i1"]}
    assert all(rows[e]["hist_len"] == 1 for e in ("e001", "e002", "e003"))


def test_history_is_truncated_to_the_most_recent_L(spark: SparkSession) -> None:
    ev = events(
        spark,
        *[("u", f"i{n}", "view", at(TRAIN_DAY, 8 + n)) for n in range(1, 6)],
        ("u", "i9", "cart", at(TRAIN_DAY, 20)),
    )
    labeled, items = run_label(spark, ev)
    idx = item_index(items)
    target = by_event(labeled)["e005"]
    assert target["hist_item_idx"] == [idx["i5"], idx["i4"], idx["i3"]]
    assert target["hist_len"] == 3


def test_label_weight_and_type_follow_the_target(spark: SparkSession) -> None:
    ev = events(
        spark,
        ("u", "i1", "view", at(TRAIN_DAY, 9)),
        ("u", "i1", "click", at(TRAIN_DAY, 10)),
        ("u", "i1", "cart", at(TRAIN_DAY, 11)),
        ("u", "i1", "purchase", at(TRAIN_DAY, 12)),
    )
    rows = by_event(run_label(spark, ev)[0])
    got = [
        (rows[e]["target_type"], rows[e]["target_type_idx"], rows[e]["label_weight"])
        for e in ("e001", "e002", "e003")
    ]
    assert got == [("click", 2, 0.25), ("cart", 3, 0.5), ("purchase", 4, 1.0)]
    assert rows["e000"]["disposition"] == L.HISTORY_ONLY


def test_splits_follow_target_time(spark: SparkSession) -> None:
    ev = events(
        spark,
        ("u", "i1", "view", at(TRAIN_DAY, 9)),
        ("u", "i1", "click", at(TRAIN_DAY, 10)),
        ("u", "i1", "click", at(VAL_DAY, 10)),
        ("u", "i1", "click", at(TEST_DAY, 10)),
    )
    rows = by_event(run_label(spark, ev)[0])
    assert [rows[e]["split"] for e in ("e001", "e002", "e003")] == [L.TRAIN, L.VAL, L.TEST]


def test_vocabulary_comes_from_the_train_period_by_count(spark: SparkSession) -> None:
    rules = L.LabelRules(
        lookback_days=5, history_length=3, min_item_count=2, history_cutoff="event"
    )
    ev = events(
        spark,
        ("u", "pop", "view", at(TRAIN_DAY, 8)),
        ("u", "pop", "view", at(TRAIN_DAY, 9)),
        ("u", "pop", "click", at(TRAIN_DAY, 10)),
        ("u", "mid", "view", at(TRAIN_DAY, 11)),
        ("u", "mid", "click", at(TRAIN_DAY, 12)),
        ("u", "rare", "click", at(TRAIN_DAY, 13)),
        ("u", "xunknown", "click", at(TRAIN_DAY, 14)),
        ("u", "pop", "purchase", at(TRAIN_DAY, 15)),
        ("u", "new", "click", at(VAL_DAY, 10)),
        ("u", "new", "click", at(VAL_DAY, 11)),
    )
    labeled, items = run_label(spark, ev, rules)
    assert item_index(items) == {"pop": 2, "mid": 3}
    rows = by_event(labeled, rules)
    assert (
        rows["e005"]["disposition"] == L.HISTORY_ONLY
    )  # rare click: OOV target, but inside e007's history
    assert rows["e006"]["disposition"] == L.HISTORY_ONLY  # unknown item: likewise
    assert rows["e007"]["hist_item_idx"] == [L.OOV, L.OOV, 3]  # unknown, rare, mid
    assert (
        rows["e009"]["disposition"] == L.TARGET_ITEM_OUT_OF_VOCAB
    )  # val-only item never enters the vocab
    assert {r["category"]: r["category_idx"] for r in items.collect()} == {"cat-p": 2, "cat-d": 3}
    categories = L.vocab_categories(items)
    assertSchemaEqual(categories.schema, S.VOCAB_CATEGORIES.schema)
    # summed train-period counts of the vocabulary items: pop 4, mid 2
    assert {r["category"]: (r["category_idx"], r["count"]) for r in categories.collect()} == {
        "cat-p": (2, 4),
        "cat-d": (3, 2),
    }


def test_targets_need_a_history(spark: SparkSession) -> None:
    ev = events(
        spark, ("u", "i1", "click", at(TRAIN_DAY, 10)), ("u", "i2", "click", at(TRAIN_DAY, 11))
    )
    rows = by_event(run_label(spark, ev)[0])
    assert rows["e000"]["disposition"] == L.HISTORY_ONLY  # no history of its own, but inside e001's
    assert rows["e001"]["disposition"] == L.TARGET
    lone = by_event(run_label(spark, events(spark, ("v", "i1", "click", at(TRAIN_DAY, 10))))[0])
    assert lone["e000"]["disposition"] == L.NO_HISTORY


def test_heavy_users_keep_only_their_most_recent_targets(spark: SparkSession) -> None:
    rules = L.LabelRules(
        lookback_days=5,
        history_length=2,
        min_item_count=1,
        max_targets_per_user=2,
        history_cutoff="event",
    )
    ev = events(spark, *[("u", "i1", "click", at(TRAIN_DAY, 8 + n)) for n in range(6)])
    rows = by_event(run_label(spark, ev, rules)[0], rules)
    got = [rows[f"e{n:03d}"]["disposition"] for n in range(6)]
    # e000 has no history; the two most recent are targets; e002 and e003 form e004's history;
    # e001 is a capped target outside any history.
    assert got == [
        L.NO_HISTORY,
        L.USER_TARGET_CAP,
        L.HISTORY_ONLY,
        L.HISTORY_ONLY,
        L.TARGET,
        L.TARGET,
    ]


def test_every_event_gets_exactly_one_disposition(spark: SparkSession) -> None:
    ev = events(
        spark,
        ("a", None, "search", at(TRAIN_DAY, 9)),
        ("a", "i1", "view", at(TRAIN_DAY, 10)),
        ("a", "i2", "click", at(TRAIN_DAY, 11)),
        ("a", "i3", "view", at(TRAIN_DAY, 12)),  # after a's last target
        ("b", "i1", "view", at(TRAIN_DAY, 10)),  # view-only user
        ("b", "i2", "view", at(TRAIN_DAY, 11)),
    )
    labeled, _ = run_label(spark, ev)
    observed, observation = L.observe_dispositions(labeled)
    got = {e: r["disposition"] for e, r in by_event(observed).items()}
    assert got == {
        "e000": L.SEARCH_EVENT,
        "e001": L.HISTORY_ONLY,
        "e002": L.TARGET,
        "e003": L.NOT_BEFORE_ANY_TARGET,
        "e004": L.USER_WITHOUT_TARGETS,
        "e005": L.USER_WITHOUT_TARGETS,
    }
    # counted while the rows went by (the collect above): one row per event and disposition
    counts = L.disposition_counts(observation)
    assert sum(c["rows"] for c in counts) == ev.count()
    assert {
        (c["disposition"], c["rows"]) for c in counts if c["disposition"] != L.SEARCH_EVENT
    } == {
        (L.HISTORY_ONLY, 1),
        (L.TARGET, 1),
        (L.NOT_BEFORE_ANY_TARGET, 1),
        (L.USER_WITHOUT_TARGETS, 2),
    }


def test_examples_follow_the_contract(spark: SparkSession) -> None:
    ev = events(
        spark, ("u", "i1", "view", at(TRAIN_DAY, 9)), ("u", "i2", "click", at(TRAIN_DAY, 10))
    )
    labeled, items = run_label(spark, ev)
    out = L.examples(labeled, RULES.history_length)
    assertSchemaEqual(out.schema, S.EXAMPLES.schema)  # nullability ignored
    assertSchemaEqual(L.with_target_counts(items, out).schema, S.VOCAB_ITEMS.schema)
    [row] = out.collect()
    assert (
        len(row["hist_item_idx"])
        == len(row["hist_type_idx"])
        == len(row["hist_age_s"])
        == RULES.history_length
    )


def test_labelling_sorts_the_users_events_twice(spark: SparkSession) -> None:
    """One ascending sort serves positions and group starts, one descending sort the target cap,
    the next target's group and the user's totals: no window sorts again."""
    ev = events(
        spark, ("u", "i1", "view", at(TRAIN_DAY, 9)), ("u", "i2", "click", at(TRAIN_DAY, 10))
    )
    vocab = spark.createDataFrame(
        [("i1", 2, "c", 2, 1), ("i2", 3, "c", 2, 1)],
        "item_id string, item_idx int, category string, category_idx int, count long",
    )
    labeled = L.label_events(ev, vocab, RULES, RUN, broadcast_vocab=True)
    plan = labeled._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Sort [") == 2, plan
    assert {r["disposition"] for r in labeled.collect()} == {L.HISTORY_ONLY, L.TARGET}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"history_length": 0}, "history_length"),
        ({"lookback_days": 2, "val_days": 1, "test_days": 1}, "lookback_days"),
        ({"target_types": ("search",)}, "target_types"),
        ({"target_types": ("view",), "label_weights": {"click": 1.0}}, r"label_weights\[view\]"),
        ({"min_history": -1}, "min_history"),
    ],
)
def test_invalid_rules_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        L.LabelRules(**kwargs)
