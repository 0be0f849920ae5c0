"""The second stage's input, without I/O: candidates from several generators and the features a
ranker reads about each (user, item) pair.

Each generator (the two-tower model, item-kNN, ALS, buy-again, co-occurrence, popularity, ...)
proposes its top ``depth`` items per user as ``RANKED_LISTS`` rows. ``merge`` keeps one row per
(user, item) that any generator proposed, with every generator's rank (null where it did not
propose the item) and the proposing generators in ``sources``. ``features`` adds one float
vector per pair, named by ``feature_names``:

  <g>_rr             1 / rank in generator g's list, 0 when g did not propose the item
  <g>_in             1 when g proposed the item
  ui_strength_short  log1p of the user's decayed strength for the item (event-type weights,
                     half-life ``short_half_life_days``), 0 for an item the user never touched
  ui_strength_long   the same with ``long_half_life_days``
  ui_seen            1 when the user touched the item before the cutoff
  ui_days_since      log1p of the days since the user last touched the item (capped at
                     ``max_age_days``; the cap for an untouched item)
  ui_purchases       log1p of the user's purchases of the item
  ui_events          log1p of the user's events on the item
  item_events        log1p of the item's events (every user)
  item_recent        log1p of the item's events in the last ``recent_days`` days
  item_trend         item_recent - item_events: rising items above falling ones
  item_conversion    the share of the item's events that are purchases
  user_events        log1p of the user's item events
  user_cat_share     the share of the user's item events in the item's category
  user_cat_recent    the same over the user's last ``recent_events`` item events
  last_cat_match     1 when the item is in the category of the user's latest item event
                     (of the last ``recent_events``) that has a category
  item_cat_share     the item's share of its category's events
  user_rebuy_share   the share of the user's purchases that bought an item again (0 without
                     purchases): how much this user re-orders
  n_sources          how many generators proposed the item
  price_log          log1p of the item's catalog price (0 when unknown)

Every feature is computed from the events before the cutoff only, so a pair's features never see
the period whose behaviour labels it (``labeled``) or that the lists are for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines import baselines as B
from pipelines import label as L
from pipelines import schemas as S

PAIR_FEATURES: tuple[str, ...] = (
    "ui_strength_short",
    "ui_strength_long",
    "ui_seen",
    "ui_days_since",
    "ui_purchases",
    "ui_events",
    "item_events",
    "item_recent",
    "item_trend",
    "item_conversion",
    "user_events",
    "user_cat_share",
    "user_cat_recent",
    "last_cat_match",
    "item_cat_share",
    "user_rebuy_share",
    "n_sources",
    "price_log",
)


@dataclass(frozen=True, kw_only=True)
class FeatureSettings:
    short_half_life_days: float = 7.0
    long_half_life_days: float = 60.0
    recent_days: int = 2
    recent_events: int = 10
    max_age_days: float = 365.0


def feature_names(generators: Sequence[str]) -> list[str]:
    """The names of the ``features`` vector's entries, in order, for these generators."""
    return [*[f"{g}_{x}" for g in generators for x in ("rr", "in")], *PAIR_FEATURES]


def rank_column(generator: str) -> str:
    return f"rank_{generator}"


def merge(lists: DataFrame, generators: Sequence[str]) -> DataFrame:
    """``RANKED_LISTS`` rows of several generators -> one row per (user_id, item_id) that any of
    ``generators`` proposed: ``rank_<g>`` per generator (null where g did not propose the item)
    and ``sources`` (the proposing generators, in ``generators`` order). Lists of other methods
    are ignored."""
    method, rank = F.col("method"), F.col("rank")
    wide = (
        lists.where(method.isin(list(generators)))
        .groupBy("user_id", "item_id")
        .agg(*[F.min(F.when(method == g, rank)).alias(rank_column(g)) for g in generators])
    )
    proposed = F.array(*[F.when(F.col(rank_column(g)).isNotNull(), F.lit(g)) for g in generators])
    return wide.withColumn("sources", F.filter(proposed, lambda x: x.isNotNull()))


def lead_source(generators: Sequence[str]) -> Column:
    """Of a ``features`` row, the generator that ranked the item highest (the largest
    reciprocal rank; the first of ``generators`` among equals)."""
    per_generator = [
        F.struct(
            F.col("features")[2 * i].alias("rr"), F.lit(-i).alias("order"), F.lit(g).alias("g")
        )
        for i, g in enumerate(generators)
    ]
    return F.array_max(F.array(*per_generator))["g"]


def _log1p(column: Column) -> Column:
    return F.log1p(F.coalesce(column.cast("double"), F.lit(0.0)))


def features(
    candidates: DataFrame,
    before: DataFrame,
    catalog: DataFrame,
    as_of: dt.date,
    weights: dict[str, float],
    generators: Sequence[str],
    settings: FeatureSettings | None = None,
) -> DataFrame:
    """``merge`` rows + clean events before ``as_of`` + the catalog (item_id, category, price)
    -> (user_id, item_id, sources, features): ``features`` holds ``feature_names(generators)``
    in order. Events at or after ``as_of``'s start are ignored."""
    s = settings or FeatureSettings()
    start = L.day_start(as_of)
    events = before.where(F.col("item_id").isNotNull() & (F.col("event_time") < start))
    # one pass over each (user, item)'s events for every pair feature
    pair_stats = events.groupBy("user_id", "item_id").agg(
        F.sum(B.decayed_weight(weights, as_of, s.short_half_life_days)).alias("strength"),
        F.sum(B.decayed_weight(weights, as_of, s.long_half_life_days)).alias("long"),
        F.max("event_time").alias("last_t"),
        F.count(F.when(F.col("event_type") == S.PURCHASE, 1)).alias("purchases"),
        F.count(F.lit(1)).alias("ui_n"),
    )
    since = start - F.expr(f"INTERVAL {int(s.recent_days)} DAYS")
    items = events.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("item_n"),
        F.count(F.when(F.col("event_time") >= since, 1)).alias("item_recent_n"),
        F.count(F.when(F.col("event_type") == S.PURCHASE, 1)).alias("item_bought_n"),
    )
    bought = F.col("event_type") == S.PURCHASE
    # one pass over each user's events; a user without purchases divides by 0: null, then 0
    users = events.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("user_n"),
        (
            1.0 - F.countDistinct(F.when(bought, F.col("item_id"))) / F.count(F.when(bought, 1))
        ).alias("rebuy"),
    )
    latest = Window.partitionBy("user_id").orderBy(
        F.col("event_time").desc(), F.col("event_id").desc()
    )
    recent = events.withColumn("_r", F.row_number().over(latest)).where(
        F.col("_r") <= s.recent_events
    )
    with_cat = events.where(F.col("category").isNotNull())
    recent_cat = recent.where(F.col("category").isNotNull())
    user_cats = (
        with_cat.groupBy("user_id", "category")
        .agg(F.count(F.lit(1)).alias("user_cat_n"))
        .join(
            recent_cat.groupBy("user_id", "category").agg(
                F.count(F.lit(1)).alias("user_cat_recent_n")
            ),
            ["user_id", "category"],
            "left",
        )
    )
    # the category of the user's latest item event (of the recent ones) that has one
    last_cat = recent_cat.groupBy("user_id").agg(F.min_by("category", "_r").alias("last_cat"))
    cats = with_cat.groupBy("category").agg(F.count(F.lit(1)).alias("cat_n"))
    item_info = catalog.select("item_id", "category", "price").dropDuplicates(["item_id"])
    pairs = (
        candidates.join(pair_stats, ["user_id", "item_id"], "left")
        .join(items, "item_id", "left")
        .join(users, "user_id", "left")
        .join(last_cat, "user_id", "left")
        .join(item_info, "item_id", "left")
        .join(user_cats, ["user_id", "category"], "left")
        .join(cats, "category", "left")
    )
    age_days = (start.cast("double") - F.col("last_t").cast("double")) / 86_400.0
    cap = F.lit(float(s.max_age_days))
    item_events, item_recent = _log1p(F.col("item_n")), _log1p(F.col("item_recent_n"))
    values = [
        *[
            x
            for g in generators
            for x in (
                F.coalesce(1.0 / F.col(rank_column(g)).cast("double"), F.lit(0.0)),
                F.col(rank_column(g)).isNotNull().cast("double"),
            )
        ],
        _log1p(F.col("strength")),
        _log1p(F.col("long")),
        F.col("last_t").isNotNull().cast("double"),
        # least/greatest skip nulls: an untouched item gets the cap explicitly
        F.log1p(
            F.when(F.col("last_t").isNull(), cap).otherwise(
                F.least(F.greatest(age_days, F.lit(0.0)), cap)
            )
        ),
        _log1p(F.col("purchases")),
        _log1p(F.col("ui_n")),
        item_events,
        item_recent,
        item_recent - item_events,
        F.coalesce(F.col("item_bought_n") / F.col("item_n"), F.lit(0.0)),
        _log1p(F.col("user_n")),
        F.coalesce(F.col("user_cat_n") / F.col("user_n"), F.lit(0.0)),
        F.coalesce(
            F.col("user_cat_recent_n") / F.least(F.col("user_n"), F.lit(s.recent_events)),
            F.lit(0.0),
        ),
        F.coalesce((F.col("category") == F.col("last_cat")).cast("double"), F.lit(0.0)),
        F.coalesce(F.col("item_n") / F.col("cat_n"), F.lit(0.0)),
        F.coalesce(F.col("rebuy"), F.lit(0.0)),
        F.size("sources").cast("double"),
        F.log1p(F.greatest(F.coalesce(F.col("price"), F.lit(0.0)), F.lit(0.0))),
    ]
    return pairs.select(
        "user_id",
        "item_id",
        "sources",
        F.array(*[v.cast("float") for v in values]).alias("features"),
    )


def labeled(pairs: DataFrame, targets: DataFrame) -> DataFrame:
    """``features`` rows + target pairs (user_id, item_id) -> the same rows with ``label`` 1.0
    for a pair among the targets, else 0.0 (a target no generator proposed adds no row)."""
    hits = targets.select("user_id", "item_id").distinct().withColumn("label", F.lit(1.0))
    return pairs.join(hits, ["user_id", "item_id"], "left").withColumn(
        "label", F.coalesce(F.col("label"), F.lit(0.0)).cast("float")
    )
