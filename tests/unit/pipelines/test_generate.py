"""The generator: determinism, learnable structure, and the guarantees clean relies on."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipelines import clean as C
from pipelines import generate as G
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit

END = dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def small_plan() -> G.GeneratorPlan:
    return G.plan(
        G.GeneratorSpec(end_date=END, rows=6000, days=2, items=300, categories=10, seed=11)
    )


@pytest.fixture(scope="module")
def natural(spark: SparkSession, small_plan: G.GeneratorPlan) -> DataFrame:
    """Natural rows with parsed time, session id and position; no unknown-item rewrites, which
    would hide an item's funnel."""
    spec = G.GeneratorSpec(
        end_date=END,
        rows=6000,
        days=2,
        items=300,
        categories=10,
        seed=11,
        defect_rates={G.UNKNOWN_ITEM: 0.0},
    )
    recs = G.generate_records(spark, G.plan(spec), 2).where(F.col("kind") == G.NATURAL)
    return recs.select(
        "dt",
        F.col("rec.*"),
        C.parse_event_time(F.col("rec.event_time")).alias("ts"),
        F.regexp_extract("rec.event_id", r"^e([0-9a-f]+)-", 1).alias("sid"),
        F.regexp_extract("rec.event_id", r"-(\d+)$", 1).cast("int").alias("pos"),
        C.canonical_event_type(F.col("rec.event_type"), C.CleanRules()).alias("type"),
    ).cache()


def test_same_spec_gives_the_same_lines(spark: SparkSession, small_plan: G.GeneratorPlan) -> None:
    a = G.render_lines(G.generate_records(spark, small_plan, 2), small_plan)
    b = G.render_lines(G.generate_records(spark, small_plan, 5), small_plan)
    assert a.count() == b.count() > 0
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_another_seed_gives_other_lines(spark: SparkSession, small_plan: G.GeneratorPlan) -> None:
    other = G.plan(
        G.GeneratorSpec(end_date=END, rows=6000, days=2, items=300, categories=10, seed=12)
    )
    a = G.render_lines(G.generate_records(spark, small_plan, 2), small_plan)
    b = G.render_lines(G.generate_records(spark, other, 2), other)
    assert a.exceptAll(b).count() > 0.9 * a.count()


def test_row_count_is_near_the_target(spark: SparkSession) -> None:
    p = G.plan(G.GeneratorSpec(end_date=END, rows=20_000, days=3, seed=3))
    rows = G.generate_records(spark, p, 2).count()
    assert 0.9 * 20_000 < rows < 1.1 * 20_000


def test_funnel_steps_follow_a_view_click_cart_order(natural: DataFrame) -> None:
    order = {"view": 0, "click": 1, "cart": 2, "purchase": 3}
    steps = natural.where(F.col("type") != "search").where(F.col("item_id").startswith("i"))
    w = Window.partitionBy("sid", "item_id").orderBy("pos")
    prev = F.lag("type").over(w)
    rank = F.create_map(*[F.lit(x) for kv in order.items() for x in kv])
    # Each click/cart/purchase directly follows the previous funnel step on the same item.
    broken = steps.select(
        "type", prev.alias("prev"), rank[F.col("type")].alias("r"), rank[prev].alias("pr")
    ).where((F.col("type") != "view") & (F.col("pr").isNull() | (F.col("r") != F.col("pr") + 1)))
    assert broken.count() == 0
    counts = {r["type"]: r["count"] for r in steps.groupBy("type").count().collect()}
    assert counts["view"] > counts["click"] > counts["cart"] > counts["purchase"] > 0


def test_a_users_events_are_at_least_five_seconds_apart_within_their_day(
    natural: DataFrame,
) -> None:
    w = Window.partitionBy("user_id").orderBy("ts")
    gaps = natural.select(
        (F.col("ts").cast("double") - F.lag(F.col("ts").cast("double")).over(w)).alias("gap"),
        (F.to_date("ts") == F.col("dt")).alias("same_day"),
    )
    stats = gaps.agg(
        F.min("gap").alias("min_gap"), F.min(F.col("same_day").cast("int")).alias("all_same_day")
    ).first()
    assert stats["min_gap"] >= 5.0
    assert stats["all_same_day"] == 1


def test_sessions_are_separated_by_more_than_thirty_minutes(natural: DataFrame) -> None:
    per_session = natural.groupBy("user_id", "sid").agg(
        F.min("ts").alias("start"), F.max("ts").alias("end")
    )
    w = Window.partitionBy("user_id").orderBy("start")
    gaps = per_session.select(
        (F.col("start").cast("long") - F.lag(F.col("end").cast("long")).over(w)).alias("gap"),
        (F.col("end").cast("long") - F.col("start").cast("long")).alias("length"),
    )
    stats = gaps.agg(F.min("gap"), F.max("length")).first()
    assert stats[0] > 30 * 60
    assert stats[1] < 31 * 60


def test_item_popularity_is_long_tailed(natural: DataFrame, small_plan: G.GeneratorPlan) -> None:
    views = natural.where(F.col("type") == "view").groupBy("item_id").count()
    counts = sorted((r["count"] for r in views.collect()), reverse=True)
    top = counts[: max(1, small_plan.items // 10)]
    assert sum(top) / sum(counts) > 0.35  # the top 10% of items take well over 10% of views


def test_users_have_category_tastes(natural: DataFrame, small_plan: G.GeneratorPlan) -> None:
    views = natural.where(F.col("type") == "view").withColumn(
        "cat", F.regexp_extract("item_id", r"i(\d+)", 1).cast("long") % small_plan.categories
    )
    per_user = views.groupBy("user_id", "cat").count()
    share = (
        per_user.groupBy("user_id")
        .agg((F.max("count") / F.sum("count")).alias("top_share"), F.sum("count").alias("n"))
        .where(F.col("n") >= 10)
    )
    mean_top = share.agg(F.avg("top_share")).first()[0]
    assert mean_top > 2.5 / small_plan.categories  # far above the 1/C of taste-less users


def test_search_query_names_the_category_of_the_next_item(natural: DataFrame) -> None:
    w = Window.partitionBy("sid").orderBy("pos")
    nxt = natural.select("type", "query", F.lead("item_id").over(w).alias("next_item"))
    searches = nxt.where(F.col("type") == "search").where(F.col("next_item").startswith("i"))
    cats = natural.sparkSession.createDataFrame(
        [(n,) for n in G.NOUNS], "noun string"
    )  # every category name starts with one of the nouns
    matched = searches.join(cats, F.col("query").contains(F.col("noun")), "left_semi")
    assert searches.count() > 20 and matched.count() == searches.count()


def test_defect_copies_are_of_one_known_kind_each(
    spark: SparkSession, small_plan: G.GeneratorPlan
) -> None:
    recs = G.generate_records(spark, small_plan, 2)
    kinds = {r["kind"]: r["count"] for r in recs.groupBy("kind").count().collect()}
    assert set(kinds) <= {G.NATURAL, G.BOT, *G.COPY_DEFECTS}
    copies = sum(v for k, v in kinds.items() if k in G.COPY_DEFECTS)
    assert 0 < copies < kinds[G.NATURAL]
    per_event = recs.where(F.col("kind") != G.BOT).groupBy("rec.event_id").count()
    assert per_event.agg(F.max("count")).first()[0] <= 2  # an event has at most one copy


def test_bots_burst_above_the_default_minute_rule(
    spark: SparkSession, small_plan: G.GeneratorPlan
) -> None:
    bots = G.generate_records(spark, small_plan, 2).where(F.col("kind") == G.BOT)
    per_minute = bots.groupBy(
        "rec.user_id", F.date_trunc("minute", C.parse_event_time(F.col("rec.event_time")))
    ).count()
    assert small_plan.bot_days >= 1
    assert per_minute.agg(F.max("count")).first()[0] > C.CleanRules().bot_max_events_per_minute


def test_the_observed_ledger_equals_a_count_of_the_records(
    spark: SparkSession, small_plan: G.GeneratorPlan
) -> None:
    """The ledger counted while the lines are written, against a group-by of the same records."""
    days = [END - dt.timedelta(days=1), END]
    recs = G.generate_records(spark, small_plan, 2)
    observed, observation = G.observe_ledger(recs, days)
    written = G.render_lines(observed, small_plan).count()
    ledger = G.ledger(observation)
    by_kind = {r["kind"]: r["count"] for r in recs.groupBy("kind").count().collect()}
    by_day = {r["dt"].isoformat(): r["count"] for r in recs.groupBy("dt").count().collect()}
    assert ledger.rows == written == sum(by_kind.values())
    assert {k: v for k, v in ledger.by_kind.items() if v} == by_kind
    assert ledger.by_day == by_day
    modified = recs.agg(*[F.sum(F.col(m).cast("long")).alias(m) for m in G.MODIFICATIONS]).first()
    assert ledger.modified == modified.asDict() and ledger.modified[G.PII_QUERY] > 0


def test_a_ledger_that_misses_a_day_does_not_add_up(
    spark: SparkSession, small_plan: G.GeneratorPlan
) -> None:
    observed, observation = G.observe_ledger(G.generate_records(spark, small_plan, 2), [END])
    observed.count()
    with pytest.raises(RuntimeError, match="ledger does not add up"):
        G.ledger(observation)


def test_ids_are_the_formatted_strings_without_a_formatter(spark: SparkSession) -> None:
    """The generator's ids equal format_string's (the ids earlier versions wrote), 8 digits too."""
    values = [0, 7, 1234567, 9999999, 10_000_000, 123456789]
    df = spark.createDataFrame([(v, v % 13) for v in values], "n long, i long")
    got = df.select(
        G.item_id(F.col("n")).alias("item"),
        G.user_id(F.col("n")).alias("user"),
        G._hex_key("e", F.col("n"), F.col("i")).alias("key"),
        F.format_string("i%07d", "n").alias("item_fmt"),
        F.format_string("u%07d", "n").alias("user_fmt"),
        F.format_string("e%x-%d", "n", "i").alias("key_fmt"),
    ).collect()
    assert len(got) == len(values)
    for row in got:
        assert (row["item"], row["user"], row["key"]) == (
            row["item_fmt"],
            row["user_fmt"],
            row["key_fmt"],
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows"),
        ({"days": 0}, "days"),
        ({"output_format": "xml"}, "output_format"),
        ({"bot_event_fraction": 0.9}, "bot_event_fraction"),
        ({"defect_rates": {"typo": 0.1}}, "typo"),
        ({"defect_rates": {"exact_duplicate": 1.5}}, "exact_duplicate"),
        ({"defect_rates": {"exact_duplicate": 0.4, "double_fire": 0.4}}, "sum"),
        ({"items": 10, "categories": 20}, "categories"),
        ({"rows": 1_000_000, "users": 10, "days": 1}, "too few users"),
    ],
)
def test_invalid_spec_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        G.plan(G.GeneratorSpec(end_date=END, **kwargs))
