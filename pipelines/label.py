"""Label: clean events -> next-item training examples with histories, split by time.

One example per *target* event (click, cart, purchase by default): the user, the target item
(as a vocabulary index), its type and label weight, the target time, and the user's last L item
events strictly before the target time, most recent first, padded to L.

Every clean event in the window gets exactly one disposition:

  target                      it is the target of an emitted example
  history_only                not a target, but inside some emitted example's history
  search_event                filtered: a search names no item, so it is neither target nor history
  target_item_out_of_vocab    filtered: a target whose item is rare or unseen in the train period
  no_history                  filtered: a target with fewer than ``min_history`` earlier item events
  user_target_cap             filtered: beyond the user's ``max_targets_per_user`` most recent targets
  user_without_targets        filtered: an event of a user with no emitted example (e.g. view-only)
  not_before_any_target       filtered: no emitted example of its user comes after it closely enough

History rule: per user, item events are ordered by (event_time, event_id). With the default
``history_cutoff = day`` the history of a target is the user's last L item events before the
target's UTC day, and ages count from that day's start: exactly what the nightly scorer sees
when it recommends for the next day, so the model learns to predict tomorrow, not to echo the
view that precedes a click within a session. With ``event`` the history is the L events with
``event_time`` strictly earlier than the target's (events sharing the target's timestamp never
leak in), for within-session next-item prediction. Either way it is built once per group (day
or timestamp) that holds an emitted target, from the L item events before the group's first
one; the dispositions need only its length. The cost is O(events + targets * L) and a task
holds one user's rows at a time (Spark spills them).

Capping rule for very long histories (heavy buyers, bots clean did not catch): only a user's
``max_targets_per_user`` most recent targets become examples; the rest are counted as
``user_target_cap``. Histories are capped at L by construction.

Splits are by target time: test = the last ``test_days`` days up to the run date, val = the
``val_days`` before, train = everything earlier in the window. The vocabulary is built from the
train period only, so val/test never leak item identity into training.

Why one module of this size: the history builder, the vocabulary and the dispositions share
the cutoff rule and the index conventions (PAD, OOV, FIRST_INDEX) that training and scoring
both depend on; the history code exists only here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from pipelines import schemas as S
from pipelines.errors import ConfigError, require_at_least_1
from pipelines.frames import dense_index
from pipelines.schemas import FIRST_INDEX, OOV, PAD

TYPE_INDEX: dict[str, int] = {S.VIEW: 1, S.CLICK: 2, S.CART: 3, S.PURCHASE: 4}
TRAIN, VAL, TEST = "train", "val", "test"
SPLITS: tuple[str, ...] = (TRAIN, VAL, TEST)

TARGET = "target"
HISTORY_ONLY = "history_only"
SEARCH_EVENT = "search_event"
TARGET_ITEM_OUT_OF_VOCAB = "target_item_out_of_vocab"
NO_HISTORY = "no_history"
USER_TARGET_CAP = "user_target_cap"
USER_WITHOUT_TARGETS = "user_without_targets"
NOT_BEFORE_ANY_TARGET = "not_before_any_target"
FILTER_REASONS: tuple[str, ...] = (
    SEARCH_EVENT,
    TARGET_ITEM_OUT_OF_VOCAB,
    NO_HISTORY,
    USER_TARGET_CAP,
    USER_WITHOUT_TARGETS,
    NOT_BEFORE_ANY_TARGET,
)

HISTORY_CUTOFFS: tuple[str, ...] = ("day", "event")
DEFAULT_LABEL_WEIGHTS: dict[str, float] = {S.VIEW: 0.1, S.CLICK: 0.25, S.CART: 0.5, S.PURCHASE: 1.0}


@dataclass(frozen=True, kw_only=True)
class LabelRules:
    """The configurable rules of the label step (validated on construction)."""

    lookback_days: int = field(
        default=30, metadata={"help": "days of clean events up to --run-date to read"}
    )
    history_length: int = field(default=50, metadata={"help": "L: items per history (padded to L)"})
    target_types: tuple[str, ...] = field(
        default=(S.CLICK, S.CART, S.PURCHASE), metadata={"help": "event types that become targets"}
    )
    label_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_LABEL_WEIGHTS),
        metadata={"help": "label weight per target type"},
    )
    val_days: int = field(
        default=1, metadata={"help": "days of validation targets before the test days"}
    )
    test_days: int = field(
        default=1, metadata={"help": "days of test targets ending at --run-date"}
    )
    min_item_count: int = field(
        default=2,
        metadata={"help": "items seen fewer times in the train period map to the OOV index"},
    )
    min_history: int = field(
        default=1, metadata={"help": "targets with fewer earlier items are dropped"}
    )
    max_targets_per_user: int = field(
        default=1000,
        metadata={"help": "keep only each user's most recent N targets (caps heavy users)"},
    )
    history_cutoff: str = field(
        default="day",
        metadata={
            "help": "day: a target's history ends before its UTC day (what a nightly batch scorer "
            "sees); event: it ends just before the target"
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = (
            "lookback_days",
            "history_length",
            "test_days",
            "min_item_count",
            "max_targets_per_user",
        )
        require_at_least_1(self, positive)
        for name in ("val_days", "min_history"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be >= 0"
                )
        if self.history_length > 1000:
            raise ConfigError(
                f"invalid config value history_length={self.history_length}: must be <= 1000"
            )
        if self.history_cutoff not in HISTORY_CUTOFFS:
            raise ConfigError(
                f"invalid config value history_cutoff={self.history_cutoff!r}: must be day or event"
            )
        # With day-cutoff histories the window's first day can only be history.
        history_days = 1 if self.history_cutoff == "day" else 0
        if self.val_days + self.test_days + history_days >= self.lookback_days:
            raise ConfigError(
                f"invalid config value lookback_days={self.lookback_days}: must exceed "
                f"val_days + test_days ({self.val_days + self.test_days})"
                + (" + 1 (the first day is history only)" if history_days else "")
                + " to leave train days"
            )
        if not self.target_types:
            raise ConfigError("invalid config value target_types: must name at least one type")
        for t in self.target_types:
            if t not in TYPE_INDEX:
                raise ConfigError(
                    f"invalid config value target_types: {t!r} is not one of {', '.join(TYPE_INDEX)}"
                )
            if self.label_weights.get(t, 0.0) <= 0:
                raise ConfigError(
                    f"invalid config value label_weights[{t}]: a target type needs a weight > 0"
                )

    def boundaries(self, run_date: dt.date) -> dict[str, dt.date]:
        """First day of the window, of val, of test, and the run date."""
        test_start = run_date - dt.timedelta(days=self.test_days - 1)
        val_start = test_start - dt.timedelta(days=self.val_days)
        return {
            "window_start": run_date - dt.timedelta(days=self.lookback_days - 1),
            "val_start": val_start,
            "test_start": test_start,
            "run_date": run_date,
        }


def day_start(day: dt.date) -> Column:
    """The start (00:00 UTC) of ``day`` as a timestamp literal."""
    return F.lit(dt.datetime.combine(day, dt.time())).cast("timestamp")


def split_of(event_time: Column, rules: LabelRules, run_date: dt.date) -> Column:
    """train / val / test by the target's time (UTC days)."""
    b = rules.boundaries(run_date)
    return (
        F.when(event_time >= day_start(b["test_start"]), F.lit(TEST))
        .when(event_time >= day_start(b["val_start"]), F.lit(VAL))
        .otherwise(F.lit(TRAIN))
    )


# -- vocabulary --------------------------------------------------------------------------------


def by_count(counts: DataFrame, key: str, idx_name: str) -> DataFrame:
    """``counts`` (key, count) + ``idx_name``: FIRST_INDEX.. by descending count, then key."""
    return dense_index(
        counts, idx_name, group=F.col("count"), order=[F.col(key).asc()],
        descending_groups=True, start=FIRST_INDEX,
    )  # fmt: skip


def item_counts(events: DataFrame, rules: LabelRules, run_date: dt.date) -> DataFrame:
    """(``item_id``, ``count``, ``category``): the train period's catalog items seen at least
    ``min_item_count`` times. Small (one row per item): ``build_vocab`` reads it several times,
    so a job persists it rather than scan the events again."""
    train = events.where(
        F.col("item_id").isNotNull()
        & F.col("is_known_item")
        & (F.col("event_time") < day_start(rules.boundaries(run_date)["val_start"]))
    )
    # Count per (item, category) first: a hash aggregate. A min over a string in the same pass
    # would make Spark sort every train event by item (a sort aggregate); here it runs over
    # one row per item and category.
    return (
        train.groupBy("item_id", "category")
        .agg(F.count(F.lit(1)).alias("count"))
        .groupBy("item_id")
        .agg(F.sum("count").cast("long").alias("count"), F.min("category").alias("category"))
        .where(F.col("count") >= rules.min_item_count)
    )


def build_vocab(counts: DataFrame) -> DataFrame:
    """The item vocabulary (``S.VOCAB_ITEMS`` less ``target_count``) from ``item_counts``.

    Items get indices from 2 by descending count (then id); 0 is padding and 1 the shared
    out-of-vocabulary index. Categories are those of vocabulary items, indexed the same way by
    their items' summed counts (``vocab_categories`` reads them back from the items).
    """
    cat_counts = (
        counts.where(F.col("category").isNotNull())
        .groupBy("category")
        .agg(F.sum("count").cast("long").alias("count"))
    )
    categories = by_count(cat_counts, "category", "category_idx")
    return (
        by_count(counts, "item_id", "item_idx")
        .join(categories.select("category", "category_idx"), on="category", how="left")
        .select(
            "item_id",
            "item_idx",
            "category",
            F.coalesce("category_idx", F.lit(OOV)).cast("int").alias("category_idx"),
            F.col("count").cast("long").alias("count"),
        )
    )


def vocab_categories(items: DataFrame) -> DataFrame:
    """The category vocabulary (``S.VOCAB_CATEGORIES``) of a ``build_vocab`` item table: each
    category of a vocabulary item with its index and its items' summed count (read from the
    items, so a persisted item table is not recomputed from the events)."""
    return S.VOCAB_CATEGORIES.select(
        items.where(F.col("category").isNotNull())
        .groupBy("category", "category_idx")
        .agg(F.sum("count").cast("long").alias("count"))
    )


# -- examples ----------------------------------------------------------------------------------


# -- the history builder (training examples and scoring inputs both use it) ------------------

MAX_AGE_S = 2**31 - 1  # ages are int32 seconds: older events are clamped (~68 years)
HISTORY_ENTRY = "struct<t:double,idx:int,type_idx:int>"  # what history_entry() builds


def indexed_events(events: DataFrame, vocab: DataFrame, broadcast_vocab: bool = False) -> DataFrame:
    """Clean events + a vocabulary (``item_id``, ``item_idx`` and any other columns to carry)
    -> the events (user, id, item, type, time) with the vocabulary's columns, ``idx`` (the item
    index; OOV for an unknown item or a search), ``type_idx`` and ``t`` (epoch seconds): what a
    history is built from."""
    type_index = F.create_map(*[F.lit(x) for kv in TYPE_INDEX.items() for x in kv])
    return (
        events.select("event_id", "user_id", "item_id", "event_type", "event_time")
        .join(F.broadcast(vocab) if broadcast_vocab else vocab, on="item_id", how="left")
        .select(
            "*",
            F.coalesce("item_idx", F.lit(OOV)).cast("int").alias("idx"),
            type_index[F.col("event_type")].alias("type_idx"),
            F.col("event_time").cast("double").alias("t"),
        )
    )


def history_entry() -> Column:
    """One history position of an ``indexed_events`` row: (t, idx, type_idx)."""
    return F.struct(F.col("t"), F.col("idx"), F.col("type_idx"))


def history_columns(recent_first: Column, t_ref: Column, length: int) -> dict[str, Column]:
    """An array of ``history_entry`` structs, most recent first (at most ``length``), and the
    reference time its ages count from -> the model input columns (``S.HISTORY_COLUMNS``): item
    indices, type indices and ages in seconds, right-padded with PAD to ``length``, and the
    number of real positions."""

    def padded(values: Column) -> Column:
        return F.concat(values, F.array_repeat(F.lit(PAD), F.lit(length) - F.size(values)))

    return {
        "hist_item_idx": padded(F.transform(recent_first, lambda h: h["idx"])),
        "hist_type_idx": padded(F.transform(recent_first, lambda h: h["type_idx"])),
        "hist_age_s": padded(
            F.transform(
                recent_first, lambda h: F.least(t_ref - h["t"], F.lit(float(MAX_AGE_S))).cast("int")
            )
        ),
        "hist_len": F.size(recent_first).cast("int"),
    }


def label_events(
    events: DataFrame,
    items_vocab: DataFrame,
    rules: LabelRules,
    run_date: dt.date,
    broadcast_vocab: bool = False,
) -> DataFrame:
    """Clean events of the window -> one row per event: ``event_id``, its ``disposition``,
    ``split``, the target columns of ``S.EXAMPLES`` (set on targets only, without the history
    arrays: ``examples`` builds those) and the internal columns ``examples`` needs
    (``_tie_start``, the group's first position; ``_t_ref``; ``_entry``, set on the rows a
    history can hold).

    The dispositions need only each group's history *length* (``min(tie_start - 1, L)``), so no
    history is collected here: a sliding ``collect_list`` over every event would build L
    entries per event and throw away all but the targets'.

    ``broadcast_vocab``: ship the vocabulary to every task instead of shuffling the events by
    item (right for vocabularies up to a few million items)."""
    L = rules.history_length
    weights = F.create_map(
        *[F.lit(x) for kv in sorted(rules.label_weights.items()) for x in (kv[0], float(kv[1]))]
    )
    vocab = items_vocab.select(
        "item_id", "item_idx", F.col("category_idx").alias("vocab_category_idx")
    )
    has_item = F.col("item_id").isNotNull()

    ev = (
        indexed_events(events, vocab, broadcast_vocab)
        .select(
            "*",
            # Events of one group share one history: the group is the UTC day (day cutoff) or
            # the timestamp (event cutoff); the history ends before the group's first event.
            (
                F.to_date("event_time") if rules.history_cutoff == "day" else F.col("event_time")
            ).alias("_group"),
            (
                F.date_trunc("day", "event_time").cast("double")
                if rules.history_cutoff == "day"
                else F.col("event_time").cast("double")
            ).alias("_t_ref"),
            # a column, not an expression: an expression key is aliased anew in each window,
            # and windows with different aliases never share a sort
            has_item.alias("_has_item"),
        )
        # One shuffle by user serves every window below (each partitions by user_id and more).
        .repartition("user_id")
    )
    # Positions among the user's item events; searches sit outside (their own partition key).
    # _tie_start, the position of the group's first event, is a running max over the same
    # order (the group is a function of the time), so the two windows share one sort.
    user = Window.partitionBy("user_id", "_has_item")
    ordered = user.orderBy("event_time", "event_id")
    opens_group = F.lag("_group").over(ordered).isNull() | (
        F.lag("_group").over(ordered) != F.col("_group")
    )
    ev = ev.withColumn("_pos", F.row_number().over(ordered)).withColumn(
        "_tie_start",
        F.max(F.when(opens_group, F.col("_pos"))).over(
            ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        ),
    )
    # A group's history is the L item events before its first one (position _tie_start).
    hist_len = F.when(has_item, F.least(F.col("_tie_start") - 1, F.lit(L))).cast("int")

    is_target_type = F.col("event_type").isin(*rules.target_types) & has_item
    in_vocab = F.col("item_idx").isNotNull()
    enough_history = hist_len >= rules.min_history
    emittable = is_target_type & in_vocab & enough_history
    # Latest first. Leading with _tie_start (monotone in the time) lets the next window, which
    # orders by _tie_start alone, reuse this sort.
    recent_rank = F.sum(emittable.cast("int")).over(
        user.orderBy(
            F.col("_tie_start").desc(), F.col("event_time").desc(), F.col("event_id").desc()
        ).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    emitted = emittable & (recent_rank <= rules.max_targets_per_user)
    ev = ev.withColumn("emitted", emitted).withColumn("_emittable", emittable)

    # Is the event inside the history of the next emitted target strictly after it? (A running
    # min over a descending order: O(n), where an unbounded-following frame would be O(n^2).)
    next_target_start = F.min(F.when(F.col("emitted"), F.col("_tie_start"))).over(
        user.orderBy(F.col("_tie_start").desc()).rangeBetween(Window.unboundedPreceding, -1)
    )
    in_history = has_item & next_target_start.isNotNull() & (F.col("_pos") >= next_target_start - L)
    user_has_examples = F.max(F.col("emitted").cast("int")).over(Window.partitionBy("user_id")) == 1

    disposition = (
        F.when(F.col("emitted"), F.lit(TARGET))
        .when(in_history, F.lit(HISTORY_ONLY))
        .when(~has_item, F.lit(SEARCH_EVENT))
        .when(is_target_type & ~in_vocab, F.lit(TARGET_ITEM_OUT_OF_VOCAB))
        .when(is_target_type & ~enough_history, F.lit(NO_HISTORY))
        .when(F.col("_emittable"), F.lit(USER_TARGET_CAP))
        .when(~user_has_examples, F.lit(USER_WITHOUT_TARGETS))
        .otherwise(F.lit(NOT_BEFORE_ANY_TARGET))
    )

    # Only targets keep their target columns and only rows a history can hold their history
    # entry: the other rows are only counted.
    ev = ev.withColumn("disposition", disposition)
    is_target = F.col("disposition") == TARGET
    in_a_history = F.col("disposition").isin(TARGET, HISTORY_ONLY)

    def of_target(column: Column, name: str) -> Column:
        return F.when(is_target, column).alias(name)

    return ev.select(
        "event_id",
        "user_id",
        "disposition",
        of_target(F.col("item_id"), "target_item_id"),
        of_target(F.col("item_idx"), "target_item_idx"),
        of_target(F.coalesce("vocab_category_idx", F.lit(OOV)).cast("int"), "target_category_idx"),
        of_target(F.col("event_type"), "target_type"),
        of_target(F.col("type_idx"), "target_type_idx"),
        of_target(weights[F.col("event_type")].cast("float"), "label_weight"),
        of_target(F.col("event_time"), "target_time"),
        of_target(hist_len, "hist_len"),
        split_of(F.col("event_time"), rules, run_date).alias("split"),
        "_tie_start",
        of_target(F.col("_t_ref"), "_t_ref"),
        # a history position (``history_entry``) with its place in the user's item events
        F.when(in_a_history, F.struct(F.col("_pos").alias("pos"), "t", "idx", "type_idx")).alias(
            "_entry"
        ),
    )


def with_target_counts(items: DataFrame, examples: DataFrame) -> DataFrame:
    """Add ``target_count``: how often each item is a train-split target (for the model's logQ
    correction: in-batch negatives are sampled in proportion to it)."""
    counts = (
        examples.where(F.col("split") == TRAIN)
        .groupBy(F.col("target_item_idx").alias("item_idx"))
        .agg(F.count(F.lit(1)).alias("target_count"))
    )
    return S.VOCAB_ITEMS.select(
        items.join(counts, on="item_idx", how="left").withColumn(
            "target_count", F.coalesce("target_count", F.lit(0)).cast("long")
        )
    )


# What a target row carries into its example (besides the user and the history arrays).
TARGET_FIELDS: tuple[str, ...] = (
    "event_id",
    "target_item_id",
    "target_item_idx",
    "target_category_idx",
    "target_type",
    "target_type_idx",
    "label_weight",
    "target_time",
    "hist_len",
    "split",
)


def with_histories(labeled: DataFrame, length: int) -> DataFrame:
    """The emitted rows of ``label_events`` (``event_id``, ``user_id`` and ``TARGET_FIELDS``)
    with their history columns (``S.HISTORY_LISTS``, padded to ``length``).

    One pass over the rows a history can hold (targets and ``history_only`` rows: every
    position in [tie_start - L, tie_start) of an emitted group is one of them), grouped by user
    (the rows are already partitioned by user: no shuffle, no join). Per user the entries are
    sorted latest first; each group that holds a target takes the entries with its positions
    and builds its arrays once, then its targets are emitted with them."""
    is_target = F.col("disposition") == TARGET
    per_user = (
        labeled.where(F.col("disposition").isin(TARGET, HISTORY_ONLY))
        .groupBy("user_id")
        .agg(
            # by position, latest first (positions are unique per user)
            F.sort_array(F.collect_list("_entry"), asc=False).alias("_events"),
            F.collect_list(
                F.when(is_target, F.struct(*TARGET_FIELDS, "_tie_start", "_t_ref"))
            ).alias("_targets"),
        )
    )

    def group_of(g: Column) -> Column:
        start = g["_tie_start"]
        return F.struct(
            g["_t_ref"].alias("_t_ref"),
            F.filter("_events", lambda e: (e["pos"] >= start - length) & (e["pos"] < start)).alias(
                "_hist"
            ),
            F.filter("_targets", lambda t: t["_tie_start"] == start).alias("_members"),
        )

    starts = F.array_distinct(
        F.transform("_targets", lambda t: F.struct(t["_tie_start"], t["_t_ref"]))
    )
    hist = history_columns(F.col("_hist"), F.col("_t_ref"), length)
    return (
        per_user.select("user_id", F.explode(F.transform(starts, group_of)).alias("g"))
        .select("user_id", "g.*")
        # the arrays once per group (a projection below the explode), then one row per target
        .select("user_id", "_members", *[hist[c].alias(c) for c in S.HISTORY_LISTS])
        .select("user_id", *S.HISTORY_LISTS, F.explode("_members").alias("t"))
        .select("user_id", *[F.col("t")[c].alias(c) for c in TARGET_FIELDS], *S.HISTORY_LISTS)
    )


def examples(labeled: DataFrame, history_length: int) -> DataFrame:
    """The emitted examples with their histories, in the examples contract."""
    return S.EXAMPLES.select(with_histories(labeled, history_length))


def observe_dispositions(labeled: DataFrame) -> tuple[DataFrame, Observation]:
    """``labeled`` counting its rows per disposition and split as the next action passes over
    it (no action of its own), and the ``Observation`` that holds the counts after it."""
    observation = Observation("label_dispositions")
    counts = [
        F.sum(((F.col("disposition") == d) & (F.col("split") == s)).cast("long")).alias(f"{d}/{s}")
        for d in (TARGET, HISTORY_ONLY, *FILTER_REASONS)
        for s in SPLITS
    ]
    return labeled.observe(observation, *counts), observation


def disposition_counts(observation: Observation) -> list[dict[str, Any]]:
    """An ``observe_dispositions`` observation after its action: (disposition, split, rows)
    for every pair with rows."""
    rows = []
    for key, n in observation.get.items():
        disposition, split = key.split("/")
        if n:
            rows.append({"disposition": disposition, "split": split, "rows": int(n)})
    return rows
