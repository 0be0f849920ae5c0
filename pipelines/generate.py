"""Synthetic e-commerce logs with known structure and an exact ledger of injected defects.

Everything is Spark-native: rows come from ``spark.range`` and higher-order functions, every
random draw is ``xxhash64(seed, ids...)`` mapped to [0, 1), so the output is a pure function of
the spec (independent of partitioning) and scales with the cluster.

Structure a model can learn:
  * users have latent tastes: three favourite categories (50/25/15% of sessions) and a style;
  * item popularity is long-tailed within a category (rank = n * u**3) and skewed to the style;
  * sessions follow a funnel: optional search -> views -> click (35%) -> cart (30%) -> buy (50%);
  * a search's query names the colour or adjective and category of the first item viewed next.

Guarantees the clean step's reconciliation relies on:
  * a user's natural events are >= 5 s apart and sessions never overlap (2-hour slots, each
    session < 31 minutes, gaps > 30 minutes), all within their UTC day; so natural data holds no
    duplicates, double fires, bot-rate bursts or cross-midnight sessions;
  * each natural row carries at most one injected extra row, a corrupted copy of itself, whose
    kind maps to exactly one clean reason code; modifications (unknown item, PII in a query)
    change a natural row in place and keep it valid;
  * bots are extra users with bursts of >= 100 events at ~0.6 s spacing.

Why one module of this size: the generator's structure (tastes, popularity, funnel, queries)
and its defect ledger must agree row for row; split, the exact injected counts would have to be
kept in step across files.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipelines import clean as C
from pipelines import schemas as S
from pipelines.errors import ConfigError, require_at_least_1
from pipelines.raw import json_line, raw_record

# Extra-row defects: a corrupted copy of a natural row, each mapping to one clean reason.
COPY_DEFECTS: tuple[str, ...] = (
    C.EXACT_DUPLICATE,
    C.DOUBLE_FIRE,
    C.MALFORMED_RECORD,
    C.MISSING_ID,
    C.UNKNOWN_EVENT_TYPE,
    C.UNPARSEABLE_TIMESTAMP,
    C.FUTURE_TIMESTAMP,
    C.INVALID_PRICE,
)
# In-place modifications of natural rows, which stay in the clean output (flagged / scrubbed).
UNKNOWN_ITEM = "unknown_item"
PII_QUERY = "pii_query"
MODIFICATIONS: tuple[str, ...] = (UNKNOWN_ITEM, PII_QUERY)

DEFAULT_DEFECT_RATES: dict[str, float] = {
    C.EXACT_DUPLICATE: 0.01,
    C.DOUBLE_FIRE: 0.01,
    C.MALFORMED_RECORD: 0.002,
    C.MISSING_ID: 0.003,
    C.UNKNOWN_EVENT_TYPE: 0.002,
    C.UNPARSEABLE_TIMESTAMP: 0.002,
    C.FUTURE_TIMESTAMP: 0.001,
    C.INVALID_PRICE: 0.002,
    UNKNOWN_ITEM: 0.003,  # of non-search events
    PII_QUERY: 0.05,  # of search events
}

NATURAL = "natural"
BOT = "bot"

# Funnel and session shape.
P_SEARCH = 0.3
P_MORE_VIEWS = 0.7  # views per session: 1 + geometric, capped
MAX_EXTRA_VIEWS = 14
P_CLICK, P_CART, P_BUY = 0.35, 0.30, 0.50
EVENT_SPACING_MS = 30_000  # event i of a session at start + i*30 s + U[0, 25 s)
EVENT_JITTER_MS = 25_000
SLOTS_PER_DAY = 12  # 2-hour session slots; one session per slot
SLOT_MS = 2 * 3600 * 1000
SLOT_OFFSET_MS = 25 * 60 * 1000
MAX_SESSIONS_PER_DAY = SLOTS_PER_DAY
STYLES = 4
P_STYLE = 0.7
BOT_SPACING_MS = 600
BOT_JITTER_MS = 250
BOT_MIN_EVENTS = 100
BOT_EVENTS_PER_DAY = 1000

NOUNS = (
    "headphones", "sneakers", "jackets", "backpacks", "watches", "lamps", "mugs", "candles",
    "blankets", "cushions", "notebooks", "pens", "speakers", "keyboards", "monitors", "chargers",
    "dresses", "shirts", "jeans", "scarves", "gloves", "hats", "boots", "sandals", "wallets",
    "sunglasses", "perfumes", "shampoos", "teapots", "knives", "pans", "bowls", "plates",
    "puzzles", "kites", "dolls", "bikes", "helmets", "tents", "rugs", "vases", "frames",
    "clocks", "mirrors", "towels", "socks", "belts", "umbrellas",
)  # fmt: skip
ADJECTIVES = (
    "classic",
    "modern",
    "vintage",
    "compact",
    "deluxe",
    "eco",
    "smart",
    "rustic",
    "sporty",
    "elegant",
)
COLOURS = ("black", "white", "red", "blue", "green", "grey", "navy", "olive", "pink", "beige")
TYPE_VARIANTS: dict[str, tuple[str, ...]] = {
    S.VIEW: ("pv", "page_view", "View"),
    S.CLICK: ("Click", "clk"),
    S.CART: ("add_to_cart", "addtocart"),
    S.PURCHASE: ("buy", "PURCHASE", "order"),
    S.SEARCH: ("query", "Search"),
}
UNKNOWN_TYPES = ("hover", "share", "", "unknown", "wishlist_view")
BAD_TIMESTAMPS = ("not-a-date", "2026-02-30T25:61:00Z", "yesterday", "", "13/45/2026 10:00")
OFFSETS_MIN = (-300, -240, 60, 120, 330, 540)
FIRST_NAMES = ("jane", "john", "maria", "wei", "amir", "olga", "kofi", "lena")
LAST_NAMES = ("doe", "smith", "garcia", "chen", "khan", "ivanova", "mensah", "berg")
DOMAINS = ("example.com", "mail.test", "shop.example.org")


@dataclass(frozen=True, kw_only=True)
class GeneratorSpec:
    """What to generate. ``users``/``items``/``categories`` of 0 are sized from ``rows``."""

    end_date: dt.date
    rows: int = field(
        default=200_000, metadata={"help": "target raw row count (natural + bots + defects)"}
    )
    days: int = field(default=7, metadata={"help": "number of days ending at --end-date"})
    users: int = field(default=0, metadata={"help": "natural users (0: rows / (4 * days))"})
    items: int = field(
        default=0, metadata={"help": "catalog items (0: rows/200, within [200, 100000])"}
    )
    categories: int = field(
        default=0, metadata={"help": "item categories (0: items/50, within [5, 48])"}
    )
    seed: int = field(
        default=42, metadata={"help": "seed; the same spec and seed give the same data"}
    )
    output_format: str = field(
        default="json", metadata={"help": "raw file format: json (JSON lines) or csv"}
    )
    bot_event_fraction: float = field(
        default=0.02, metadata={"help": "share of raw rows from bot users"}
    )
    defect_rates: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_DEFECT_RATES),
        metadata={"help": "defect kind -> rate per natural row (missing kinds keep their default)"},
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        require_at_least_1(self, ("rows", "days"))
        for name in ("users", "items", "categories"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"invalid config value {name}={getattr(self, name)!r}: must be >= 0 (0 = auto)"
                )
        if self.output_format not in ("json", "csv"):
            raise ConfigError(
                f"invalid config value output_format={self.output_format!r}: must be json or csv"
            )
        if not 0.0 <= self.bot_event_fraction < 0.5:
            raise ConfigError(
                f"invalid config value bot_event_fraction={self.bot_event_fraction!r}: must be in [0, 0.5)"
            )
        known = set(COPY_DEFECTS) | set(MODIFICATIONS)
        for kind, rate in self.defect_rates.items():
            if kind not in known:
                raise ConfigError(
                    f"invalid config value defect_rates: unknown kind {kind!r}; known: {', '.join(sorted(known))}"
                )
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(
                    f"invalid config value defect_rates[{kind}]={rate!r}: must be in [0, 1]"
                )
        total = sum(self.rates[k] for k in COPY_DEFECTS)
        if total > 0.5:
            raise ConfigError(
                f"invalid config value defect_rates: copy defects sum to {total:.3f}; must be <= 0.5"
            )
        if self.items and self.categories and self.categories > self.items:
            raise ConfigError(
                f"invalid config value categories={self.categories}: more than items={self.items}"
            )

    @property
    def rates(self) -> dict[str, float]:
        return {**DEFAULT_DEFECT_RATES, **dict(self.defect_rates)}


@dataclass(frozen=True)
class GeneratorPlan:
    """The spec resolved to concrete sizes (all derived in Python, before any Spark work)."""

    spec: GeneratorSpec
    users: int
    items: int
    categories: int
    natural_target: float
    sessions_per_user_day: float
    bot_days: int
    bot_events_per_day: int

    @property
    def start_date(self) -> dt.date:
        return self.spec.end_date - dt.timedelta(days=self.spec.days - 1)

    def to_record(self) -> dict[str, float | int | str]:
        return {
            "users": self.users,
            "items": self.items,
            "categories": self.categories,
            "days": self.spec.days,
            "start_date": self.start_date.isoformat(),
            "end_date": self.spec.end_date.isoformat(),
            "sessions_per_user_day": round(self.sessions_per_user_day, 4),
            "bot_users": self.bot_users,
            "bot_events_per_day": self.bot_events_per_day,
        }

    @property
    def bot_users(self) -> int:
        return 0 if self.bot_days == 0 else math.ceil(self.bot_days / self.spec.days)


def expected_events_per_session() -> float:
    """Mean natural events per session under the funnel constants."""
    extra_views = sum(P_MORE_VIEWS**k for k in range(1, MAX_EXTRA_VIEWS + 1))
    per_view = 1 + P_CLICK * (1 + P_CART * (1 + P_BUY))
    return P_SEARCH + (1 + extra_views) * per_view


def plan(spec: GeneratorSpec) -> GeneratorPlan:
    """Resolve auto sizes and the session rate that hits ``spec.rows`` in expectation."""
    rates = spec.rates
    items = spec.items or max(200, min(100_000, spec.rows // 200))
    categories = spec.categories or max(5, min(len(NOUNS), items // 50))
    categories = min(categories, items)
    users = spec.users or max(20, round(spec.rows / (4 * spec.days)))
    bot_target = spec.rows * spec.bot_event_fraction
    if bot_target >= BOT_MIN_EVENTS:
        bot_days = max(1, round(bot_target / BOT_EVENTS_PER_DAY))
        bot_events = max(BOT_MIN_EVENTS, round(bot_target / bot_days))
    else:
        bot_days, bot_events = 0, 0
    extra = sum(rates[k] for k in COPY_DEFECTS)
    natural = max(0.0, spec.rows - bot_days * bot_events) / (1 + extra)
    wanted = natural / expected_events_per_session() / (users * spec.days)
    return GeneratorPlan(
        spec, users, items, categories, natural, session_rate_for(wanted), bot_days, bot_events
    )


def expected_sessions(rate: float) -> float:
    """E[min(rate * w, MAX_SESSIONS_PER_DAY)] for the lognormal activity weight w (mean 1):
    the mean sessions per user-day once the per-day cap bites."""
    steps = 2000
    total = 0.0
    for i in range(steps):
        z = -8.0 + 16.0 * (i + 0.5) / steps
        density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (16.0 / steps)
        total += density * min(rate * math.exp(z - 0.5), MAX_SESSIONS_PER_DAY)
    return total


def session_rate_for(wanted: float) -> float:
    """The rate whose capped mean is ``wanted`` sessions per user-day (bisection)."""
    if wanted >= MAX_SESSIONS_PER_DAY * 0.99:
        raise ConfigError(
            f"too few users for the rows asked: {wanted:.1f} sessions per user-day needed, "
            f"at most {MAX_SESSIONS_PER_DAY} fit; raise --users or --days"
        )
    lo, hi = wanted, wanted * 100 + 1
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected_sessions(mid) < wanted else (lo, mid)
    return (lo + hi) / 2


# -- random draws ------------------------------------------------------------------------------

_MANTISSA = (1 << 53) - 1


def uniform(seed: int, *parts: Column | str | int) -> Column:
    """A uniform draw in [0, 1), a pure function of the seed and the given values."""
    cols = [p if isinstance(p, Column) else F.lit(p) for p in parts]
    h = F.xxhash64(F.lit(seed), *cols)
    return (h.bitwiseAND(F.lit(_MANTISSA))).cast("double") / F.lit(float(1 << 53))


def normal(seed: int, *parts: Column | str | int) -> Column:
    """A standard normal draw (Box-Muller over two uniforms)."""
    u1 = F.lit(1.0) - uniform(seed, *parts, "n1")  # (0, 1]
    u2 = uniform(seed, *parts, "n2")
    return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)


def pick(options: tuple[str, ...] | tuple[int, ...], u: Column) -> Column:
    """One of ``options`` chosen by a uniform draw."""
    arr = F.array(*[F.lit(o) for o in options])
    return F.element_at(arr, (F.floor(u * len(options)) + 1).cast("int"))


# -- catalog -----------------------------------------------------------------------------------


def _zero_padded(prefix: str, idx: Column, width: int = 7) -> Column:
    """``prefix`` + ``idx`` zero-padded to ``width`` digits: ``format_string("%07d")``'s
    output without java.util.Formatter, which costs more than the rest of a row's id work."""
    digits = idx.cast("string")
    return F.concat(
        F.lit(prefix), F.when(idx < 10**width, F.lpad(digits, width, "0")).otherwise(digits)
    )


def _hex_key(prefix: str, group: Column, i: Column) -> Column:
    """``prefix`` + lower-case hex of ``group`` + "-" + ``i`` (``format_string("%x-%d")``'s
    output for non-negative values, without java.util.Formatter)."""
    return F.concat(F.lit(prefix), F.lower(F.hex(group)), F.lit("-"), i.cast("string"))


def item_id(idx: Column) -> Column:
    return _zero_padded("i", idx)


def user_id(idx: Column) -> Column:
    return _zero_padded("u", idx)


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


def category_name(c: Column) -> Column:
    """Category index -> name: a noun, suffixed "-k" once the nouns run out."""
    noun = F.element_at(F.array(*[F.lit(n) for n in NOUNS]), (c % len(NOUNS) + 1).cast("int"))
    series = (c / len(NOUNS)).cast("long")
    return F.when(series == 0, noun).otherwise(F.concat(noun, F.lit("-"), series.cast("string")))


def item_price(seed: int, idx: Column, category: Column) -> Column:
    """Log-normal price around a per-category level, in [0.5, 5000]."""
    level = F.lit(2.0) + F.lit(3.0) * uniform(seed, "price-level", category)
    raw = F.exp(level + F.lit(0.4) * normal(seed, "price", idx))
    return F.round(F.least(F.greatest(raw, F.lit(0.5)), F.lit(5000.0)), 2)


def generate_catalog(spark: SparkSession, p: GeneratorPlan) -> DataFrame:
    """The item catalog (contract ``CATALOG.schema``): ids, titles, categories, prices."""
    seed = p.spec.seed
    idx = F.col("id")
    cat = idx % p.categories
    noun = category_name(cat)
    title = F.format_string(
        "%s %s %s No.%d",
        F.initcap(pick(ADJECTIVES, uniform(seed, "adj", idx))),
        pick(COLOURS, uniform(seed, "colour", idx)),
        noun,
        idx,
    )
    return spark.range(p.items).select(
        item_id(idx).alias("item_id"),
        title.alias("title"),
        noun.alias("category"),
        item_price(seed, idx, cat).alias("price"),
        (uniform(seed, "sellable", idx) >= 0.03).alias("is_sellable"),
    )


# -- natural sessions ---------------------------------------------------------------------------


def _sessions(spark: SparkSession, p: GeneratorPlan, partitions: int) -> DataFrame:
    """One row per natural session: user, day, start time, category, style."""
    seed, n_users, days = p.spec.seed, p.users, p.spec.days
    ud = F.col("id")
    day = (ud / n_users).cast("long")  # day-major: a task's rows cover one or two days
    user = ud % n_users
    weight = F.exp(normal(seed, "activity", user) - F.lit(0.5))  # lognormal, mean 1
    x = F.lit(p.sessions_per_user_day) * weight
    k = F.least(
        F.floor(x) + (uniform(seed, "round", ud) < x - F.floor(x)).cast("long"),
        F.lit(MAX_SESSIONS_PER_DAY),
    )
    start_ms = _day_ms(p.start_date)
    sessions = (
        spark.range(0, n_users * days, numPartitions=partitions)
        .select(ud.alias("ud"), user.alias("user_idx"), day.alias("day"), k.alias("k"))
        .where(F.col("k") > 0)
        .select("*", F.explode(F.sequence(F.lit(0), F.col("k") - 1)).alias("j"))
    )
    sid = F.col("ud") * SLOTS_PER_DAY + F.col("j")
    rot = F.floor(uniform(seed, "rot", F.col("ud")) * SLOTS_PER_DAY)
    slot = F.pmod(F.col("j") + rot, F.lit(SLOTS_PER_DAY))
    u_cat = uniform(seed, "cat", sid)
    user_col = F.col("user_idx")
    fav_u = [
        F.pmod(F.xxhash64(F.lit(seed), F.lit(f"fav{i}"), user_col), F.lit(p.categories))
        for i in range(3)
    ]
    category = (
        F.when(u_cat < 0.50, fav_u[0])
        .when(u_cat < 0.75, fav_u[1])
        .when(u_cat < 0.90, fav_u[2])
        .otherwise(F.pmod(F.xxhash64(F.lit(seed), F.lit("anycat"), sid), F.lit(p.categories)))
    )
    return sessions.select(
        sid.alias("sid"),
        "user_idx",
        "day",
        (
            F.lit(start_ms)
            + F.col("day") * 86_400_000
            + slot * SLOT_MS
            + F.floor(uniform(seed, "offset", sid) * SLOT_OFFSET_MS)
        ).alias("start_ms"),
        category.alias("category"),
        F.pmod(F.xxhash64(F.lit(seed), F.lit("style"), user_col), F.lit(STYLES)).alias("style"),
    )


def _session_events(sessions: DataFrame, p: GeneratorPlan) -> DataFrame:
    """Explode sessions into funnel events: (sid, user_idx, day, i, event_type, item_idx, qty, epoch_ms).

    A session is an optional search, then views j = 0..extra, each followed by its click, cart
    and buy when the funnel gets that far; event i is the i-th of that sequence. No higher-order
    functions (Spark interprets those row by row): a view's events are a fixed array of four
    slots whose filled slots are always a prefix (no cart without a click, no buy without a
    cart), and view j's first position is the search flag plus the events of views 0..j-1,
    summed from the same per-(session, view) draws.
    """
    seed, n_items, n_cat = p.spec.seed, p.items, p.categories
    sid, cat, style = F.col("sid"), F.col("category"), F.col("style")
    n_in_cat = F.floor((F.lit(n_items - 1) - cat) / n_cat) + 1
    extra = F.least(
        F.floor(F.log(F.lit(1.0) - uniform(seed, "views", sid)) / math.log(P_MORE_VIEWS)),
        F.lit(MAX_EXTRA_VIEWS),
    ).cast("int")
    searched = (uniform(seed, "search", sid) < P_SEARCH).cast("int")

    def steps(j: Column) -> tuple[Column, Column, Column]:
        click = uniform(seed, "click", sid, j) < P_CLICK
        cart = click & (uniform(seed, "cart", sid, j) < P_CART)
        return click, cart, cart & (uniform(seed, "buy", sid, j) < P_BUY)

    def view_item(j: Column) -> Column:
        rank = F.floor(n_in_cat * F.pow(uniform(seed, "rank", sid, j), 3))
        styled = rank - F.pmod(rank, F.lit(STYLES)) + style
        rank = F.when(
            (uniform(seed, "styled", sid, j) < P_STYLE) & (styled < n_in_cat), styled
        ).otherwise(rank)
        return (cat + rank * n_cat).cast("long")

    def events_of_view(j: int) -> Column:
        click, cart, buy = steps(F.lit(j))
        n = 1 + click.cast("int") + cart.cast("int") + buy.cast("int")
        return F.when(F.col("extra") >= j, n).otherwise(F.lit(0))

    # first(j) = searched + events of views 0..j-1, for every possible view
    first = [F.col("searched")]
    for view in range(MAX_EXTRA_VIEWS):
        first.append(first[-1] + events_of_view(view))
    views = sessions.select("*", extra.alias("extra"), searched.alias("searched")).select(
        "sid",
        "user_idx",
        "day",
        "start_ms",
        "category",
        "style",
        "searched",
        F.array(*first).alias("first"),
        F.explode(F.sequence(F.lit(0), F.col("extra"))).alias("j"),
    )
    j = F.col("j")
    click, cart, buy = steps(j)
    item = view_item(j)
    qty = (F.lit(1) + (uniform(seed, "qty", sid, j) < 0.2).cast("int")).cast("int")

    def ev(kind: str, when: Column, q: Column | None = None) -> Column:
        return F.when(
            when,
            F.struct(
                F.lit(kind).alias("t"), (q if q is not None else F.lit(None).cast("int")).alias("q")
            ),
        )

    # slot 0: the session's search (before view 0, naming view 0's item); slots 1-4: the view
    slots = F.array(
        ev(S.SEARCH, (j == 0) & (F.col("searched") == 1)),
        ev(S.VIEW, F.lit(True)),
        ev(S.CLICK, click),
        ev(S.CART, cart, F.lit(1)),
        ev(S.PURCHASE, buy, qty),
    )
    position = F.when(F.col("slot") == 0, F.lit(0)).otherwise(
        F.element_at(F.col("first"), j + 1) + F.col("slot") - 1
    )
    return (
        views.select(
            "sid",
            "user_idx",
            "day",
            "start_ms",
            "first",
            "j",
            item.alias("item_idx"),
            F.posexplode(slots).alias("slot", "e"),
        )
        .where(F.col("e").isNotNull())
        .select(
            "sid", "user_idx", "day", "start_ms", position.cast("int").alias("i"), "e", "item_idx"
        )
        .select(
            "sid",
            "user_idx",
            "day",
            "i",
            F.col("e.t").alias("event_type"),
            "item_idx",
            F.col("e.q").alias("quantity"),
            (
                F.col("start_ms")
                + F.col("i") * EVENT_SPACING_MS
                + F.floor(uniform(seed, "jitter", sid, F.col("i")) * EVENT_JITTER_MS)
            )
            .cast("long")
            .alias("epoch_ms"),
        )
    )


# -- rendering records --------------------------------------------------------------------------


def format_time(seed: int, epoch_ms: Column, key: Column) -> Column:
    """Render an instant as ISO 8601 'Z' (60%), ISO 8601 with an offset (30%) or unix millis (10%)."""
    u = uniform(seed, "tsfmt", key)
    ts = F.timestamp_millis(epoch_ms)
    iso_z = F.concat(F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSS"), F.lit("Z"))
    off = pick(OFFSETS_MIN, uniform(seed, "tsoff", key)).cast("long")
    local = F.timestamp_millis(epoch_ms + off * 60_000)
    sign = F.when(off < 0, F.lit("-")).otherwise(F.lit("+"))
    off_abs = F.abs(off)
    iso_off = F.concat(
        F.date_format(local, "yyyy-MM-dd'T'HH:mm:ss.SSS"),
        sign,
        F.lpad((off_abs / 60).cast("int").cast("string"), 2, "0"),
        F.lit(":"),
        F.lpad((off_abs % 60).cast("string"), 2, "0"),
    )
    return F.when(u < 0.6, iso_z).when(u < 0.9, iso_off).otherwise(epoch_ms.cast("string"))


def _query_text(seed: int, item_idx: Column, categories: int) -> Column:
    word = F.when(
        uniform(seed, "qword", item_idx) < 0.5, pick(COLOURS, uniform(seed, "colour", item_idx))
    ).otherwise(pick(ADJECTIVES, uniform(seed, "adj", item_idx)))
    return F.concat(word, F.lit(" "), category_name(item_idx % categories))


def _pii_text(seed: int, key: Column) -> Column:
    email = F.format_string(
        "%s.%s%d@%s",
        pick(FIRST_NAMES, uniform(seed, "pii-f", key)),
        pick(LAST_NAMES, uniform(seed, "pii-l", key)),
        F.floor(uniform(seed, "pii-n", key) * 100).cast("int"),
        pick(DOMAINS, uniform(seed, "pii-d", key)),
    )
    digits = F.floor(uniform(seed, "pii-p", key) * 10_000).cast("int")
    phone = F.when(
        uniform(seed, "pii-pf", key) < 0.5, F.format_string("+44 20 7946 %04d", digits)
    ).otherwise(F.format_string("(555) 123-%04d", digits))
    return F.when(uniform(seed, "pii-kind", key) < 0.5, email).otherwise(phone)


def _record(
    event_id: Column,
    event_time: Column,
    user: Column,
    item: Column,
    event_type: Column,
    price: Column,
    quantity: Column,
    query: Column,
) -> Column:
    return raw_record(
        event_id=event_id,
        event_time=event_time,
        user_id=user,
        item_id=item,
        event_type=event_type,
        price=price,
        quantity=quantity,
        query=query,
    )


def _copy_kind(seed: int, key: Column, rates: Mapping[str, float]) -> Column:
    u = uniform(seed, "defect", key)
    kind: Column | None = None
    bound = 0.0
    for name in COPY_DEFECTS:
        if rates[name] <= 0:
            continue
        bound += rates[name]
        kind = F.when(u < bound, F.lit(name)) if kind is None else kind.when(u < bound, F.lit(name))
    return kind if kind is not None else F.lit(None).cast("string")


def natural_records(spark: SparkSession, p: GeneratorPlan, partitions: int) -> DataFrame:
    """(dt, kind, rec, unknown_item, pii_query): natural rows and their injected copies."""
    seed, rates = p.spec.seed, p.spec.rates
    events = _session_events(_sessions(spark, p, partitions), p)
    key = F.col("event_id")
    is_search = F.col("event_type") == S.SEARCH
    unknown_item = ~is_search & (uniform(seed, UNKNOWN_ITEM, key) < rates[UNKNOWN_ITEM])
    pii = is_search & (uniform(seed, PII_QUERY, key) < rates[PII_QUERY])
    item_idx = F.col("item_idx")
    u_syn = uniform(seed, "syn", key)
    type_text = F.col("event_type")
    for canonical, variants in TYPE_VARIANTS.items():
        type_text = F.when(
            (F.col("event_type") == canonical) & (u_syn < 0.1),
            pick(variants, uniform(seed, "synpick", key)),
        ).otherwise(type_text)
    query = F.when(is_search, _query_text(seed, item_idx, p.categories))
    query = F.when(pii, F.concat(query, F.lit(" "), _pii_text(seed, key))).otherwise(query)
    item = F.when(unknown_item, F.concat(F.lit("x"), key)).when(~is_search, item_id(item_idx))
    price = F.when(~is_search, item_price(seed, item_idx, item_idx % p.categories))
    epoch_ms = F.col("epoch_ms")

    base = events.select(_hex_key("e", F.col("sid"), F.col("i")).alias("event_id"), "*").select(
        F.date_add(F.lit(p.start_date), F.col("day").cast("int")).alias("dt"),
        "event_id",
        "epoch_ms",
        is_search.alias("is_search"),
        unknown_item.alias(UNKNOWN_ITEM),
        pii.alias(PII_QUERY),
        _record(
            key,
            format_time(seed, epoch_ms, key),
            user_id(F.col("user_idx")),
            item,
            type_text,
            price,
            F.col("quantity"),
            query,
        ).alias("rec"),
        _copy_kind(seed, key, rates).alias("copy_kind"),
    )
    r = F.col("rec")
    u = uniform(seed, "copy", key)
    copy_time = (
        F.when(
            F.col("copy_kind") == C.DOUBLE_FIRE,
            format_time(
                seed, epoch_ms + 50 + F.floor(u * 850).cast("long"), F.concat(key, F.lit("r"))
            ),
        )
        .when(F.col("copy_kind") == C.UNPARSEABLE_TIMESTAMP, pick(BAD_TIMESTAMPS, u))
        .when(
            F.col("copy_kind") == C.FUTURE_TIMESTAMP,
            format_time(seed, epoch_ms + (2 + F.floor(u * 400).cast("long")) * 86_400_000, key),
        )
        .otherwise(r["event_time"])
    )
    blank = pick(("", "  "), uniform(seed, "blank", key))
    blank_or_null = F.when(
        uniform(seed, "blanknull", key) < 0.5, F.lit(None).cast("string")
    ).otherwise(blank)
    drop_user = (F.col("copy_kind") == C.MISSING_ID) & (F.col("is_search") | (u < 0.5))
    drop_item = (F.col("copy_kind") == C.MISSING_ID) & ~drop_user
    copy = _record(
        F.when(F.col("copy_kind") == C.DOUBLE_FIRE, F.concat(key, F.lit("-r"))).otherwise(
            r["event_id"]
        ),
        copy_time,
        F.when(drop_user, blank_or_null).otherwise(r["user_id"]),
        F.when(drop_item, blank_or_null).otherwise(r["item_id"]),
        F.when(F.col("copy_kind") == C.UNKNOWN_EVENT_TYPE, pick(UNKNOWN_TYPES, u)).otherwise(
            r["event_type"]
        ),
        F.when(
            F.col("copy_kind") == C.INVALID_PRICE,
            F.when(u < 0.5, -(F.abs(F.coalesce(r["price"], F.lit(1.0))) + 0.01)).otherwise(
                F.lit(1.0e7) + F.coalesce(r["price"], F.lit(0.0))
            ),
        ).otherwise(r["price"]),
        r["quantity"],
        r["query"],
    )
    both = F.array(
        F.struct(F.lit(NATURAL).alias("kind"), r.alias("rec")),
        F.when(
            F.col("copy_kind").isNotNull(),
            F.struct(F.col("copy_kind").alias("kind"), copy.alias("rec")),
        ),
    )
    # explode, then filter: a higher-order function (F.filter) in the generator would make Spark
    # interpret the whole record expression row by row instead of compiling it
    return (
        base.select("dt", UNKNOWN_ITEM, PII_QUERY, F.explode(both).alias("x"))
        .where(F.col("x").isNotNull())
        .select(
            "dt",
            F.col("x.kind").alias("kind"),
            F.col("x.rec").alias("rec"),
            (F.col(UNKNOWN_ITEM) & (F.col("x.kind") == NATURAL)).alias(UNKNOWN_ITEM),
            (F.col(PII_QUERY) & (F.col("x.kind") == NATURAL)).alias(PII_QUERY),
        )
    )


def bot_records(spark: SparkSession, p: GeneratorPlan) -> DataFrame:
    """(dt, kind, rec, unknown_item, pii_query) rows of bot users: bursts at ~100 events/minute."""
    seed = p.spec.seed
    if p.bot_days == 0:
        return spark.createDataFrame([], natural_records(spark, p, 1).schema)
    days = p.spec.days
    start_ms = _day_ms(p.start_date)
    bd = F.col("id")
    bot, day = (bd / days).cast("long"), bd % days
    bursts = (
        spark.range(p.bot_days)
        .select(
            bd.alias("bd"),
            (F.lit(p.users) + bot).alias("user_idx"),
            day.alias("day"),
            (
                F.lit(start_ms)
                + day * 86_400_000
                + F.floor(uniform(seed, "botstart", bd) * 20 * 3600 * 1000)
            )
            .cast("long")
            .alias("t0"),
        )
        .select("*", F.explode(F.sequence(F.lit(0), F.lit(p.bot_events_per_day - 1))).alias("i"))
    )
    key = _hex_key("b", F.col("bd"), F.col("i"))
    item_idx = F.floor(uniform(seed, "botitem", key) * p.items).cast("long")
    epoch_ms = (
        F.col("t0")
        + F.col("i") * BOT_SPACING_MS
        + F.floor(uniform(seed, "botjit", key) * BOT_JITTER_MS).cast("long")
    )
    return bursts.select(
        F.date_add(F.lit(p.start_date), F.col("day").cast("int")).alias("dt"),
        F.lit(BOT).alias("kind"),
        _record(
            key,
            format_time(seed, epoch_ms, key),
            user_id(F.col("user_idx")),
            item_id(item_idx),
            F.when(uniform(seed, "bottype", key) < 0.8, F.lit(S.VIEW)).otherwise(F.lit(S.CLICK)),
            item_price(seed, item_idx, item_idx % p.categories),
            F.lit(None),
            F.lit(None),
        ).alias("rec"),
        F.lit(False).alias(UNKNOWN_ITEM),
        F.lit(False).alias(PII_QUERY),
    )


def generate_records(spark: SparkSession, p: GeneratorPlan, partitions: int) -> DataFrame:
    """All raw rows: (dt, kind, rec, unknown_item, pii_query)."""
    return natural_records(spark, p, partitions).unionByName(bot_records(spark, p))


def render_lines(records: DataFrame, p: GeneratorPlan) -> DataFrame:
    """(dt, kind, rec, ...) -> (dt, value): JSON lines or header-less CSV; malformed copies broken."""
    seed = p.spec.seed
    r = F.col("rec")
    if p.spec.output_format == "json":
        line = json_line(r)
        # Cutting at least the closing brace always leaves invalid JSON.
        cut = (F.lit(1) + F.floor(uniform(seed, "cut", r["event_id"]) * 5)).cast("int")
        broken = line.substr(F.lit(1), F.length(line) - cut)
    else:
        line = F.to_csv(r)
        broken = F.concat(line, F.lit(",extra,fields"))
    return records.select(
        "dt", F.when(F.col("kind") == C.MALFORMED_RECORD, broken).otherwise(line).alias("value")
    )


KINDS: tuple[str, ...] = (NATURAL, BOT, *COPY_DEFECTS)


def observe_ledger(records: DataFrame, days: Sequence[dt.date]) -> tuple[DataFrame, Observation]:
    """``records`` counting its rows per kind, per day (``days``) and per in-place modification
    as the next action passes over it (no pass of its own), and the ``Observation`` that holds
    the counts after that action."""
    observation = Observation("generate_ledger")
    counts = [F.count(F.lit(1)).alias("rows")]
    counts += [F.sum((F.col("kind") == k).cast("long")).alias(f"kind/{k}") for k in KINDS]
    counts += [
        F.sum((F.col("dt") == F.lit(d)).cast("long")).alias(f"day/{d.isoformat()}") for d in days
    ]
    counts += [F.sum(F.col(m).cast("long")).alias(f"modified/{m}") for m in MODIFICATIONS]
    return records.observe(observation, *counts), observation


@dataclass(frozen=True)
class Ledger:
    """The generator's exact ledger: raw rows in all, per kind, per day, per modification."""

    rows: int
    by_kind: dict[str, int]
    by_day: dict[str, int]
    modified: dict[str, int]


def ledger(observation: Observation) -> Ledger:
    """An ``observe_ledger`` observation after its action, as a ``Ledger``; raises if the
    counts do not add up (a row of no known kind, or outside the days)."""
    parts: dict[str, dict[str, int]] = {"kind": {}, "day": {}, "modified": {}}
    values = observation.get
    for key, n in values.items():
        if "/" in key:
            group, name = key.split("/", 1)
            parts[group][name] = int(n or 0)
    result = Ledger(int(values["rows"]), parts["kind"], parts["day"], parts["modified"])
    for group in ("kind", "day"):
        if sum(parts[group].values()) != result.rows:
            raise RuntimeError(
                f"generator ledger does not add up: {result.rows} rows, "
                f"{sum(parts[group].values())} counted by {group} ({parts[group]})"
            )
    return result


def session_count(spark: SparkSession, p: GeneratorPlan, partitions: int) -> DataFrame:
    """A one-row frame with the number of natural sessions (``sessions``)."""
    return _sessions(spark, p, partitions).agg(F.count(F.lit(1)).alias("sessions"))
