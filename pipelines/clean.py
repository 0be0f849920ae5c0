"""Clean: raw log lines -> typed, deduplicated, sessionised events, with every row accounted for.

The transforms label each raw line with exactly one ``reason`` (null = kept). Rules run in a
fixed precedence, so a line with several defects gets the first that applies:

quarantined (bad records; the original line is kept with its reason):
  malformed_record        not valid JSON / wrong CSV field count
  missing_id              blank user id, or blank item id on a non-search event
  unknown_event_type      event type not canonical, not a known synonym, not ignored
  unparseable_timestamp   event time missing, in no format we read, or without a full date
                          (``2026``, ``10:00:00``) or a plausible epoch (``0000000000``)
  future_timestamp        event time after the end of its partition day plus the allowed clock skew
  invalid_price           price not a number, negative, or above ``max_price``
  invalid_quantity        quantity not a whole number in [1, ``max_quantity``]
  oversized_query         a search query longer than ``max_query_chars`` (never scanned for PII)
filtered (valid records we deliberately drop; counted by reason):
  blank_line              an empty line
  ignored_event_type      a recognised non-interaction event (cancel, return, refund)
  bot_user                a user-day over the configured event-rate rule
  exact_duplicate         the same record again in the same partition day (equal raw fields)
  double_fire             same user, item (or query) and type within ``double_fire_seconds``
                          of the previous such event

Every window is partitioned by the partition day ``dt``, so a day's result never depends on
which other days were cleaned in the same run: re-running a date reproduces it exactly.

Why one module of this size: the reason codes run in one fixed precedence, and every rule's
expression sits beside the precedence list that orders it, so a reviewer checks both at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from pipelines import schemas as S
from pipelines.errors import ConfigError

# -- reason codes ------------------------------------------------------------------------------
MALFORMED_RECORD = "malformed_record"
MISSING_ID = "missing_id"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
INVALID_PRICE = "invalid_price"
INVALID_QUANTITY = "invalid_quantity"
OVERSIZED_QUERY = "oversized_query"
QUARANTINE_REASONS: tuple[str, ...] = (
    MALFORMED_RECORD,
    MISSING_ID,
    UNKNOWN_EVENT_TYPE,
    UNPARSEABLE_TIMESTAMP,
    FUTURE_TIMESTAMP,
    INVALID_PRICE,
    INVALID_QUANTITY,
    OVERSIZED_QUERY,
)

BLANK_LINE = "blank_line"
IGNORED_EVENT_TYPE = "ignored_event_type"
BOT_USER = "bot_user"
EXACT_DUPLICATE = "exact_duplicate"
DOUBLE_FIRE = "double_fire"
FILTER_REASONS: tuple[str, ...] = (
    BLANK_LINE,
    IGNORED_EVENT_TYPE,
    BOT_USER,
    EXACT_DUPLICATE,
    DOUBLE_FIRE,
)

KEPT = "kept"

DEFAULT_EVENT_TYPE_SYNONYMS: dict[str, str] = {
    "pv": S.VIEW,
    "pageview": S.VIEW,
    "page_view": S.VIEW,
    "detail_view": S.VIEW,
    "impression_click": S.CLICK,
    "clk": S.CLICK,
    "add_to_cart": S.CART,
    "addtocart": S.CART,
    "add-to-cart": S.CART,
    # A favourite / wish-list save is purchase intent short of buying: counted as a cart.
    "fav": S.CART,
    "favorite": S.CART,
    "favourite": S.CART,
    "wishlist": S.CART,
    "buy": S.PURCHASE,
    "order": S.PURCHASE,
    "transaction": S.PURCHASE,
    "checkout": S.PURCHASE,
    "query": S.SEARCH,
}
DEFAULT_IGNORED_EVENT_TYPES: tuple[str, ...] = ("cancel", "cancellation", "return", "refund")

# Privacy beats recall: 8+ digits (any script's digits, e.g. full-width) joined by at most three
# phone-style separators each (spaces, NBSP, dots, dashes, slashes, brackets) are scrubbed even
# if they were a model or card number; an ISO date is not. Emails: local@domain.tld, letters of
# any script (IDN domains). Both patterns run in linear time on java.util.regex and never
# recurse per character (java.util.regex recurses per repetition of a group, which overflows
# the stack on a long line): a match starts only where a run of its characters starts (the
# negative lookbehinds), the local part is possessive, the digit count is checked by a lookahead
# of bounded length, and the rest are plain character-class runs.
_EMAIL_CHARS = r"[\p{L}\p{N}._%+\-]"
EMAIL_PATTERN = (
    rf"(?<!{_EMAIL_CHARS}){_EMAIL_CHARS}++@[\p{{L}}\p{{N}}\-][\p{{L}}\p{{N}}.\-]*\.\p{{L}}{{2,}}"
)
_PHONE_SEPARATORS = r"\s\u00A0\u2007\u202F\u3000().\-/\u2010-\u2015\uFF0D"
PHONE_PATTERN = (
    rf"(?<![\p{{Nd}}+\uFF0B])(?!\d{{4}}-\d{{2}}-\d{{2}}(?!\d))[+\uFF0B]?\(?"
    rf"(?=(?:[{_PHONE_SEPARATORS}]{{0,3}}\p{{Nd}}){{8}})\p{{Nd}}[\p{{Nd}}{_PHONE_SEPARATORS}]*\p{{Nd}}"
)
EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"
# A quarantined line longer than this is kept truncated (at a token boundary) with a note of its
# full length: enough to diagnose it, and the scrubber's work stays bounded.
MAX_QUARANTINE_RECORD_CHARS = 65_536


@dataclass(frozen=True, kw_only=True)
class CleanRules:
    """The configurable rules of the clean step (all validated on construction)."""

    event_type_synonyms: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_TYPE_SYNONYMS),
        metadata={"help": "raw event type -> canonical type (view, click, cart, purchase, search)"},
    )
    ignored_event_types: tuple[str, ...] = field(
        default=DEFAULT_IGNORED_EVENT_TYPES,
        metadata={"help": "recognised non-interaction event types, filtered as ignored_event_type"},
    )
    max_clock_skew_minutes: int = field(
        default=60,
        metadata={
            "help": "events later than the end of their partition day by more are future_timestamp"
        },
    )
    max_price: float = field(
        default=100_000.0, metadata={"help": "prices above this are invalid_price"}
    )
    max_quantity: int = field(
        default=10_000, metadata={"help": "quantities above this are invalid_quantity"}
    )
    bot_max_events_per_minute: int = field(
        default=40,
        metadata={"help": "a user-day with more events in any one minute is a bot (0: off)"},
    )
    bot_max_events_per_day: int = field(
        default=2_000, metadata={"help": "a user-day with more events is a bot (0: off)"}
    )
    double_fire_seconds: float = field(
        default=1.0,
        metadata={
            "help": "a repeat of the same user/item/type within this many seconds is a double fire"
        },
    )
    session_gap_minutes: int = field(
        default=30,
        metadata={
            "help": "inactivity gap that starts a new session when the log has no session id"
        },
    )
    max_query_chars: int = field(
        default=1_000,
        metadata={
            "help": "search queries longer than this are quarantined as oversized_query "
            "(the PII scrubber never scans more)"
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in (
            "max_clock_skew_minutes",
            "bot_max_events_per_minute",
            "bot_max_events_per_day",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be >= 0"
                )
        for name in (
            "max_price",
            "max_quantity",
            "double_fire_seconds",
            "session_gap_minutes",
            "max_query_chars",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be > 0"
                )
        for raw, canonical in self.event_type_synonyms.items():
            if canonical not in S.CANONICAL_EVENT_TYPES:
                raise ConfigError(
                    f"invalid config value event_type_synonyms[{raw!r}]={canonical!r}: "
                    f"must be one of {', '.join(S.CANONICAL_EVENT_TYPES)}"
                )
        clash = {t.lower() for t in self.ignored_event_types} & (
            set(S.CANONICAL_EVENT_TYPES) | {k.lower() for k in self.event_type_synonyms}
        )
        if clash:
            raise ConfigError(
                f"invalid config value ignored_event_types: {sorted(clash)} are also mapped to event types"
            )


# -- parsing -----------------------------------------------------------------------------------

_PARSE_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": S.CORRUPT_COLUMN}
_CSV_DDL = ", ".join(f"`{f.name}` STRING" for f in S.RAW_EVENTS.schema.fields)


def _has_suffix(path: Column, suffixes: tuple[str, ...]) -> Column:
    lowered = F.lower(path)
    cond = F.lit(False)
    for suffix in suffixes:
        cond = cond | lowered.endswith(suffix)
    return cond


# Every record needs these: a raw file in which no line carries one of them (a renamed column
# such as userId or timestamp) is a file-level error, not a quarantine of every line.
REQUIRED_RAW_FIELDS: tuple[str, ...] = ("user_id", "event_type", "event_time")


def missing_fields(present_bits: int) -> list[str]:
    """The required raw fields whose bit is not set in a file's OR of ``present_fields``."""
    return [n for i, n in enumerate(REQUIRED_RAW_FIELDS) if not present_bits & (1 << i)]


def parse_raw_lines(lines: DataFrame) -> DataFrame:
    """(value, source_file, dt) -> raw string fields + ``raw_record``, ``is_blank``, ``is_malformed``,
    ``present_fields`` (a bit per ``REQUIRED_RAW_FIELDS`` field the parsed record carries: a file
    where no line has a field lacks that column, and one with none of them has the wrong columns).

    JSON-lines and CSV files are told apart by the file suffix; both parse into the same
    all-string struct, so a wrong type in a field is a value problem, never a reader crash.
    """
    is_csv = _has_suffix(F.col("source_file"), S.CSV_SUFFIXES)
    parsed = F.when(is_csv, F.from_csv("value", _CSV_DDL, _PARSE_OPTIONS)).otherwise(
        F.from_json("value", S.RAW_EVENTS.schema, _PARSE_OPTIONS)
    )
    is_blank = F.trim(F.col("value")) == ""
    is_malformed = ~is_blank & (
        F.col("_parsed").isNull() | F.col(f"_parsed.{S.CORRUPT_COLUMN}").isNotNull()
    )
    bits = sum(
        (
            F.when(F.col(f"_parsed.{n}").isNotNull(), F.lit(1 << i)).otherwise(F.lit(0))
            for i, n in enumerate(REQUIRED_RAW_FIELDS)
        ),
        F.lit(0),
    )
    present = F.when(~is_blank & ~is_malformed, bits).otherwise(F.lit(0))
    return lines.withColumn("_parsed", parsed).select(
        F.col("value").alias("raw_record"),
        "source_file",
        "dt",
        is_blank.alias("is_blank"),
        is_malformed.alias("is_malformed"),
        present.alias("present_fields"),
        *[F.col(f"_parsed.{name}").alias(f"raw_{name}") for name in S.RAW_EVENT_FIELDS],
    )


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _null_if_blank(col: Column) -> Column:
    return F.when(_blank(col), F.lit(None)).otherwise(F.trim(col))


def parse_event_time(raw: Column) -> Column:
    """A raw time string -> UTC timestamp: ISO 8601 with a full date (any offset), 'yyyy-MM-dd
    HH:mm:ss' (UTC), unix seconds (9-11 digits) or unix milliseconds (12-14 digits); null if none
    fits. A bare year or time of day, or an epoch with leading zeros, is not a time we can place:
    Spark would read them as January 1st, today's date or 1970."""
    s = F.trim(raw)
    return (
        F.when(s.rlike(r"^[1-9]\d{8,10}$"), F.timestamp_seconds(s.cast("long")))
        .when(s.rlike(r"^[1-9]\d{11,13}$"), F.timestamp_seconds(s.cast("long") / F.lit(1000.0)))
        .when(s.rlike(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])"), F.try_to_timestamp(s))
    )


def canonical_event_type(raw: Column, rules: CleanRules) -> Column:
    """Lower-cased, trimmed event type mapped through the synonyms; canonical types pass through."""
    t = F.lower(F.trim(raw))
    if rules.event_type_synonyms:
        mapping = F.create_map(
            *[
                F.lit(x)
                for kv in sorted(rules.event_type_synonyms.items())
                for x in (kv[0].lower(), kv[1])
            ]
        )
        t = F.coalesce(mapping[t], t)
    return t


def assign_record_reasons(parsed: DataFrame, rules: CleanRules) -> DataFrame:
    """Parsed lines -> typed columns and the first record-level ``reason`` (null if valid).

    Two projections: the typed columns first, then the reason over them. Written as one, the
    reason's conditions would each evaluate the time parser (three regular expressions and a
    parse) and the event-type map again, since Spark shares a subexpression only when every
    branch evaluates it; kept apart, Spark does not collapse the two projections, because that
    would repeat those non-trivial expressions."""
    event_type = canonical_event_type(F.col("raw_event_type"), rules)
    # Without a producer-assigned id, the record's content is its identity.
    content_id = F.substring(
        F.sha2(F.to_json(F.struct(*[f"raw_{n}" for n in S.RAW_EVENT_FIELDS])), 256), 1, 32
    )
    typed = parsed.select(
        "*",
        F.coalesce(_null_if_blank(F.col("raw_event_id")), content_id).alias("event_id"),
        F.trim(F.col("raw_user_id")).alias("user_id"),
        F.when(event_type == S.SEARCH, _null_if_blank(F.col("raw_item_id")))
        .otherwise(F.trim(F.col("raw_item_id")))
        .alias("item_id"),
        event_type.alias("event_type"),
        parse_event_time(F.col("raw_event_time")).alias("event_time"),
        _null_if_blank(F.col("raw_session_id")).alias("raw_session"),
        F.trim(F.col("raw_price")).cast("double").alias("price"),
        F.trim(F.col("raw_quantity")).cast("double").alias("_quantity"),
        _null_if_blank(F.col("raw_query")).alias("query_raw"),
    )
    event_type, event_time = F.col("event_type"), F.col("event_time")
    is_canonical = event_type.isin(*S.CANONICAL_EVENT_TYPES)
    is_ignored = event_type.isin(*[t.lower() for t in rules.ignored_event_types])
    day_end = F.to_timestamp(F.date_add(F.col("dt"), 1))
    latest_allowed = day_end + F.expr(f"INTERVAL {int(rules.max_clock_skew_minutes)} MINUTES")
    price, quantity = F.col("price"), F.col("_quantity")
    price_bad = ~_blank(F.col("raw_price")) & (
        price.isNull() | F.isnan(price) | (price < 0) | (price > F.lit(rules.max_price))
    )
    quantity_bad = ~_blank(F.col("raw_quantity")) & (
        quantity.isNull()
        | F.isnan(quantity)
        | (quantity != F.floor(quantity))
        | (quantity < 1)
        | (quantity > F.lit(rules.max_quantity))
    )
    reason = (
        F.when(F.col("is_blank"), F.lit(BLANK_LINE))
        .when(F.col("is_malformed"), F.lit(MALFORMED_RECORD))
        .when(_blank(F.col("raw_user_id")), F.lit(MISSING_ID))
        .when(is_ignored, F.lit(IGNORED_EVENT_TYPE))
        .when(~is_canonical | event_type.isNull(), F.lit(UNKNOWN_EVENT_TYPE))
        .when((event_type != S.SEARCH) & _blank(F.col("raw_item_id")), F.lit(MISSING_ID))
        .when(event_time.isNull(), F.lit(UNPARSEABLE_TIMESTAMP))
        .when(event_time > latest_allowed, F.lit(FUTURE_TIMESTAMP))
        .when(price_bad, F.lit(INVALID_PRICE))
        .when(quantity_bad, F.lit(INVALID_QUANTITY))
        .when(F.length(F.col("raw_query")) > F.lit(rules.max_query_chars), F.lit(OVERSIZED_QUERY))
    )
    return typed.select(
        *[c for c in typed.columns if c != "_quantity"],
        quantity.cast("int").alias("quantity"),
        reason.alias("reason"),
    )


# -- row-set rules (windows over the still-valid rows of one user-day) --------------------------


def _candidate() -> Column:
    return F.col("reason").isNull()


USER_KEY = "_user_key"
# a rule's still-valid rows as a column, for windows that must share their sort
CANDIDATE = "_candidate"


# the record's identity for the exact-duplicate rule: two 64-bit hashes of its raw fields
DUP_KEY: tuple[str, str] = ("_dup_a", "_dup_b")
MINUTE = "_minute"  # the event's minute: the bot rule's and the sessions' shared sort leads with it


def record_key() -> tuple[Column, Column]:
    """Two independent 64-bit hashes of a row's raw fields and which of them are null (a hash
    alone skips nulls, so a value moved to another field would hash the same). Two records are
    the same record when both agree: a false match needs a 128-bit collision between two rows
    of one user-day, the odds the content ids of records without an id already accept."""
    raw = [F.col(f"raw_{n}") for n in S.RAW_EVENT_FIELDS]
    nulls = sum(
        (F.when(c.isNull(), F.lit(1 << i)).otherwise(F.lit(0)) for i, c in enumerate(raw)),
        F.lit(0),
    )
    values = [nulls, *[F.coalesce(c, F.lit("")) for c in raw]]
    return F.xxhash64(*values), F.xxhash64(F.lit("cartwheel:record"), *values)


def by_user_day(events: DataFrame) -> DataFrame:
    """Keep what the row-set rules and the outputs need, add ``_user_key`` and hash-partition
    by (dt, _user_key) once.

    Every later window partitions by (dt, _user_key, ...), which this distribution already
    satisfies, so the bot, duplicate, double-fire and session rules share one shuffle instead
    of one each. What travels through the shuffle and the rules' sorts is narrow: a
    quarantined row's line is made here (``quarantine_record``: every quarantine reason is a
    record reason, known before the shuffle) and the others carry none, and the nine raw
    fields travel as the exact-duplicate rule's two hashes (``record_key``). ``_minute`` (the
    event's minute) is added here for the bot rule and the sessions, which share its sort.
    Rows without a user are quarantined; keying them by their line spreads them instead of
    piling them onto one task.
    """
    quarantined = F.col("reason").isin(*QUARANTINE_REASONS)
    dup_a, dup_b = record_key()
    narrow = events.select(
        "source_file",
        "dt",
        "present_fields",
        "reason",
        "event_id",
        "user_id",
        "item_id",
        "event_type",
        "event_time",
        "raw_session",
        "price",
        "quantity",
        "query_raw",
        F.when(quarantined, quarantine_record()).alias("raw_record"),
        F.when(_candidate(), dup_a).alias(DUP_KEY[0]),
        F.when(_candidate(), dup_b).alias(DUP_KEY[1]),
    )
    keyed = narrow.withColumn(
        USER_KEY, F.coalesce(F.col("user_id"), F.col("raw_record"))
    ).withColumn(MINUTE, F.date_trunc("minute", F.col("event_time")))
    return keyed.repartition("dt", USER_KEY)


def user_day_order() -> WindowSpec:
    """A user-day's rows by minute, time and event id: the bot rule's per-day counts and the
    sessions share this window's sort (the minute leads, which the time already orders, so
    that the per-minute counts' window, partitioned by minute, needs the same sort)."""
    return Window.partitionBy("dt", USER_KEY).orderBy(MINUTE, "event_time", "event_id")


def flag_bots(events: DataFrame, rules: CleanRules) -> DataFrame:
    """Mark every row of a user-day over the rate rule as ``bot_user`` if it passed the record
    rules, overriding ``exact_duplicate`` and ``double_fire`` (the bot rule comes first in the
    precedence; ``flag_duplicates`` runs before it only so that this rule and the sessions can
    share a sort). The rule counts the rows that passed the record rules, duplicates
    included, per minute and per user-day."""
    if rules.bot_max_events_per_minute == 0 and rules.bot_max_events_per_day == 0:
        return events
    valid = F.col("reason").isNull() | F.col("reason").isin(EXACT_DUPLICATE, DOUBLE_FIRE)
    one = F.when(F.col(CANDIDATE), F.lit(1))
    whole = (Window.unboundedPreceding, Window.unboundedFollowing)
    minute = (
        Window.partitionBy("dt", USER_KEY, MINUTE).orderBy("event_time", "event_id")
    ).rowsBetween(*whole)
    user_day = user_day_order().rowsBetween(*whole)
    with_counts = (
        events.withColumn(CANDIDATE, valid)
        .withColumn("_per_minute", F.count(one).over(minute))
        .withColumn("_per_day", F.count(one).over(user_day))
        .withColumn(
            "_max_per_minute",
            F.max(F.when(F.col(CANDIDATE), F.col("_per_minute"))).over(user_day),
        )
    )
    over = F.lit(False)
    if rules.bot_max_events_per_minute > 0:
        over = over | (F.col("_max_per_minute") > rules.bot_max_events_per_minute)
    if rules.bot_max_events_per_day > 0:
        over = over | (F.col("_per_day") > rules.bot_max_events_per_day)
    return with_counts.withColumn(
        "reason", F.when(F.col(CANDIDATE) & over, F.lit(BOT_USER)).otherwise(F.col("reason"))
    ).drop(CANDIDATE, "_per_minute", "_per_day", "_max_per_minute")


TARGET = "_target"


def flag_duplicates(events: DataFrame, rules: CleanRules) -> DataFrame:
    """Mark repeats of a record (``exact_duplicate``) and fast re-fires (``double_fire``), in one
    sort.

    The still-valid rows of a user-day are ordered per action (event type and item, or query)
    by time, event id and record key (``DUP_KEY``), then file. The copies of a record share
    every key but the file, so they are consecutive, and each after the first repeats the row
    before it: an exact duplicate. A copy also shares its original's time, so the gap from a
    row to the row before it is the gap to the previous distinct record of the same action,
    which is what the double-fire rule measures. Which copy stays changes no output: the copies
    share their raw fields, hence their clean columns, and the first file keeps it, so the
    counts per file are deterministic too."""
    target = F.coalesce(
        F.col("item_id"),
        F.concat(F.lit("query:"), F.lower(F.coalesce(F.col("query_raw"), F.lit("")))),
    )
    # The keys are columns, not expressions: Spark aliases an expression key anew in each
    # window, so equal keys would not be seen as equal.
    keyed = events.withColumn(CANDIDATE, _candidate()).withColumn(TARGET, target)
    same_action = Window.partitionBy("dt", USER_KEY, CANDIDATE, "event_type", TARGET).orderBy(
        "event_time", "event_id", *DUP_KEY, "source_file"
    )

    def before(column: str) -> Column:
        return F.lag(F.col(column)).over(same_action)

    repeat = (before(DUP_KEY[0]) == F.col(DUP_KEY[0])) & (before(DUP_KEY[1]) == F.col(DUP_KEY[1]))
    seconds = F.col("event_time").cast("double")
    gap = seconds - F.lag(seconds).over(same_action)
    return keyed.withColumn(
        "reason",
        F.when(F.col(CANDIDATE) & F.coalesce(repeat, F.lit(False)), F.lit(EXACT_DUPLICATE))
        .when(
            F.col(CANDIDATE) & gap.isNotNull() & (gap < F.lit(rules.double_fire_seconds)),
            F.lit(DOUBLE_FIRE),
        )
        .otherwise(F.col("reason")),
    ).drop(CANDIDATE, TARGET)


def assign_sessions(events: DataFrame, rules: CleanRules) -> DataFrame:
    """``session_id``: the log's own when present, else user-day sessions split at inactivity gaps.

    Over ``user_day_order`` (the bot rule's sort) with the rows that did not pass every rule
    masked out: a still-valid row's gap is to the latest still-valid row before it, and the
    running count of session starts counts still-valid rows only."""
    ordered = user_day_order()
    seconds = F.col("event_time").cast("long")
    previous = F.last(F.when(_candidate(), seconds), ignorenulls=True).over(
        ordered.rowsBetween(Window.unboundedPreceding, -1)
    )
    starts = _candidate() & (
        previous.isNull() | (seconds - previous > rules.session_gap_minutes * 60)
    )
    with_seq = events.withColumn("_new_session", F.when(starts, 1).otherwise(0)).withColumn(
        "_session_seq",
        F.sum("_new_session").over(ordered.rowsBetween(Window.unboundedPreceding, 0)),
    )
    derived = F.concat_ws(
        "-", F.col("user_id"), F.date_format("dt", "yyyyMMdd"), F.col("_session_seq").cast("string")
    )
    return with_seq.withColumn(
        "session_id", F.when(_candidate(), F.coalesce(F.col("raw_session"), derived))
    ).drop("_new_session", "_session_seq", MINUTE)


def scrub_text(text: Column) -> Column:
    """``text`` with emails and phone-like numbers replaced by tokens (one pass per pattern)."""
    return F.regexp_replace(
        F.regexp_replace(text, EMAIL_PATTERN, EMAIL_TOKEN), PHONE_PATTERN, PHONE_TOKEN
    )


def scrub_pii(events: DataFrame) -> DataFrame:
    """``query``: the kept rows' raw query with emails and phone numbers replaced;
    ``pii_scrubbed`` flag. Quarantined rows get no query (their line is scrubbed instead), so an
    oversized query is never scanned."""
    q = F.col("query_raw")
    scrubbed = F.when(_candidate(), scrub_text(q))
    return events.withColumn("query", scrubbed).withColumn(
        "pii_scrubbed", F.coalesce(F.col("query") != q, F.lit(False))
    )


def _truncated(line: Column, limit: int) -> Column:
    """The first ``limit`` characters of ``line`` up to the last whole token, and a note of its
    length (a token cut in half, such as half an e-mail address, would escape the scrubber)."""
    head = F.regexp_replace(F.substring(line, 1, limit), r"(?<![^\s,;\"'])[^\s,;\"']*+$", "")
    return F.concat(
        head, F.lit(" ...[truncated: "), F.length(line).cast("string"), F.lit(" chars]")
    )


def quarantine_record(limit: int = MAX_QUARANTINE_RECORD_CHARS) -> Column:
    """The line a quarantined row keeps for diagnosis, scrubbed of PII by the clean rules.

    A parsed record keeps its original text with its query replaced by the scrubbed query (and
    e-mails scrubbed anywhere), so timestamps and ids stay readable; when the query's text is not
    found verbatim (JSON escapes), the record is re-serialised from its parsed fields instead. A
    line that did not parse, or an overlong one (truncated first), is scrubbed whole.
    """
    line = F.col("raw_record")
    query = F.col("raw_query")
    clean_query = scrub_text(query)
    verbatim = line.contains(query)
    reserialised = F.to_json(
        F.struct(
            *[
                (clean_query if n == "query" else F.col(f"raw_{n}")).alias(n)
                for n in S.RAW_EVENT_FIELDS
            ]
        )
    )
    replaced = F.call_function("replace", line, query, clean_query)
    parsed = F.regexp_replace(
        F.when(query.isNull() | (clean_query == query), line)
        .when(verbatim, replaced)
        .otherwise(reserialised),
        EMAIL_PATTERN,
        EMAIL_TOKEN,
    )
    return (
        F.when(F.length(line) > F.lit(limit), scrub_text(_truncated(line, limit)))
        .when(F.col("is_malformed"), scrub_text(line))
        .otherwise(parsed)
    )


def join_catalog(events: DataFrame, catalog: DataFrame) -> DataFrame:
    """Add ``category`` and ``is_known_item`` (null for search events, which name no item)."""
    items = (
        catalog.groupBy("item_id")
        .agg(F.min("category").alias("category"))
        .withColumn("_in_catalog", F.lit(True))
    )
    joined = events.join(items, on="item_id", how="left")
    return joined.withColumn(
        "is_known_item",
        F.when(F.col("item_id").isNull(), F.lit(None)).otherwise(
            F.coalesce("_in_catalog", F.lit(False))
        ),
    ).drop("_in_catalog")


def stages(
    catalog: DataFrame, rules: CleanRules
) -> list[tuple[str, Callable[[DataFrame], DataFrame]]]:
    """The pipeline of ``label_events``, in order, as named steps (``bench/clean_profile.py``
    times their prefixes)."""
    return [
        ("parse", parse_raw_lines),
        ("record reasons", lambda df: assign_record_reasons(df, rules)),
        ("shuffle by user-day", by_user_day),
        ("duplicate rules (sort 1)", lambda df: flag_duplicates(df, rules)),
        ("bot rule (sort 2)", lambda df: flag_bots(df, rules)),
        ("sessions (sort 2)", lambda df: assign_sessions(df, rules)),
        ("PII scrub", scrub_pii),
        ("catalog join", lambda df: join_catalog(df, catalog)),
    ]


def label_events(lines: DataFrame, catalog: DataFrame, rules: CleanRules) -> DataFrame:
    """(value, source_file, dt) lines -> one row per line with its ``reason`` (null = kept),
    typed clean columns, ``session_id``, scrubbed ``query``, ``category`` and flags."""
    labeled = lines
    for _, step in stages(catalog, rules):
        labeled = labeled.transform(step)
    return labeled


def compact_labeled(labeled: DataFrame) -> DataFrame:
    """Just what the outputs and counts need: contract columns, ``reason``, the original line
    (quarantined rows only, scrubbed of PII: ``by_user_day`` made it), ``source_file``,
    ``pii_scrubbed``, ``present_fields``."""
    return labeled.select(
        *S.CLEAN_EVENTS.columns,
        "reason",
        "raw_record",
        "source_file",
        "pii_scrubbed",
        "present_fields",
    )


def clean_events(labeled: DataFrame) -> DataFrame:
    """The kept rows, in the clean-events contract."""
    return labeled.where(_candidate()).select(*S.CLEAN_EVENTS.columns)


def quarantined_events(labeled: DataFrame) -> DataFrame:
    """The quarantined rows: the original line, its reason, file and day."""
    return labeled.where(F.col("reason").isin(*QUARANTINE_REASONS)).select(*S.QUARANTINE.columns)


def disposition() -> Column:
    """``kept``, or the row's reason code."""
    return F.coalesce(F.col("reason"), F.lit(KEPT))


def disposition_counts(labeled: DataFrame) -> DataFrame:
    """(source_file, dt, disposition, rows, present): one small row per file, day and outcome;
    ``present`` ORs the ``present_fields`` bits of its lines."""
    return labeled.groupBy("source_file", "dt", disposition().alias("disposition")).agg(
        F.count(F.lit(1)).alias("rows"), F.bit_or("present_fields").alias("present")
    )


def quality_by_day(labeled: DataFrame) -> DataFrame:
    """Data-quality figures of the kept rows, one row per dt: rows, rows per event type, null
    counts per nullable column, unknown items, scrubbed queries, users (approx.), sessions."""
    kept = labeled.where(_candidate())
    nullable = [
        f.name for f in S.CLEAN_EVENTS.schema.fields if f.nullable and f.name != "is_known_item"
    ]
    return kept.groupBy("dt").agg(
        F.count(F.lit(1)).alias("rows"),
        *[
            F.sum((F.col("event_type") == t).cast("long")).alias(f"type_{t}")
            for t in S.CANONICAL_EVENT_TYPES
        ],
        *[F.sum(F.col(c).isNull().cast("long")).alias(f"null_{c}") for c in nullable],
        F.sum((F.col("is_known_item") == F.lit(False)).cast("long")).alias("unknown_items"),
        F.sum(F.col("pii_scrubbed").cast("long")).alias("pii_scrubbed"),
        F.approx_count_distinct("user_id").alias("users_approx"),
        F.countDistinct("session_id").alias("sessions"),
    )
