"""Adapters: public datasets -> the raw layout (``dt``, JSON line) and a catalog.

Adapters translate; they do not clean. Every source row becomes exactly one raw line, defects
included, so the clean step's quarantine and filters account for the dataset's real problems.
A source line the adapter cannot even split into fields is passed through verbatim (the clean
step quarantines it as ``malformed_record`` with its original text).

Each adapter assigns a row to the partition of its event's UTC date; a row whose time cannot be
read, or lies after the ingest run date, goes to the run date's partition (a log receiver files
a record on the day it arrives), where clean quarantines it with the matching reason.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines import schemas as S
from pipelines.raw import json_line, raw_record

ONLINE_RETAIL = "online-retail"
TAOBAO = "taobao"
MOVIELENS = "movielens"
FORMATS: tuple[str, ...] = (ONLINE_RETAIL, TAOBAO, MOVIELENS)

# The exclusion rule (``recs.EXCLUDE_RULES``) that suits each source, which score and evaluate
# use under ``--exclude auto``: what a user must not be shown again, and why.
SOURCE_EXCLUDE: dict[str, tuple[str, str]] = {
    ONLINE_RETAIL: (
        "none",
        "wholesale customers re-order the same lines: a re-order is the strongest signal",
    ),
    TAOBAO: ("purchased", "a marketplace: an item bought is not offered again"),
    MOVIELENS: (
        "interacted",
        "a rating, low or high, means the user has seen the film: every rated film is hidden",
    ),
}

# -- source contracts --------------------------------------------------------------------------
ONLINE_RETAIL_SCHEMA = T.StructType(
    [
        T.StructField("InvoiceNo", T.StringType()),
        T.StructField("StockCode", T.StringType()),
        T.StructField("Description", T.StringType()),
        T.StructField("Quantity", T.LongType()),
        T.StructField("InvoiceDate", T.StringType()),
        T.StructField("UnitPrice", T.DoubleType()),
        T.StructField("CustomerID", T.DoubleType()),
        T.StructField("Country", T.StringType()),
    ]
)
ONLINE_RETAIL_TIMEZONE = "Europe/London"
TAOBAO_COLUMNS: tuple[str, ...] = (
    "user_id",
    "item_id",
    "category_id",
    "behavior_type",
    "timestamp",
)
MOVIELENS_RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIELENS_MOVIES_SCHEMA = T.StructType(
    [
        T.StructField("movieId", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("genres", T.StringType()),
    ]
)
# Rating -> interaction strength: liked (>= 4) counts as a purchase, then cart, click, view.
MOVIELENS_RATING_TYPES: tuple[tuple[float, str], ...] = (
    (4.0, S.PURCHASE),
    (3.0, S.CART),
    (2.0, S.CLICK),
)

_CSV_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": S.CORRUPT_COLUMN}
# UTF-8 text that was decoded as Latin-1 once: 'Â£' for '£', 'Ã©' for 'é'.
MOJIBAKE_PATTERN = "[\u00c2\u00c3][\u0080-\u00bf]"


def _partition_day(event_time: Column, run_date: dt.date) -> Column:
    day = F.to_date(event_time)
    return F.when(day.isNull() | (day > F.lit(run_date)), F.lit(run_date)).otherwise(day)


def _iso_utc(ts: Column) -> Column:
    return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss'Z'")


def _csv_fields(lines: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    ddl = ", ".join(f"`{c}` STRING" for c in (*columns, S.CORRUPT_COLUMN))
    parsed = F.from_csv(F.col("value"), ddl, _CSV_OPTIONS)
    return lines.select(
        "value",
        (parsed[S.CORRUPT_COLUMN].isNotNull() | (F.trim(F.col("value")) == "")).alias(
            "unsplittable"
        ),
        *[F.trim(parsed[c]).alias(c) for c in columns],
    )


def fix_mojibake(text: Column) -> Column:
    """Undo one round of UTF-8-read-as-Latin-1 ('Â£40' -> '£40'); other text is unchanged."""
    return F.when(
        text.rlike(MOJIBAKE_PATTERN), F.decode(F.encode(text, "ISO-8859-1"), "UTF-8")
    ).otherwise(text)


# -- UCI Online Retail ----------------------------------------------------------------------------


def online_retail_events(src: DataFrame, run_date: dt.date) -> DataFrame:
    """Invoice lines -> (dt, value): customer = user, StockCode = item, invoice = session,
    purchase (or ``cancel`` for 'C' invoices), UK local time converted to UTC."""
    local = F.to_timestamp(F.col("InvoiceDate"), "yyyy-MM-dd HH:mm:ss")
    utc = F.to_utc_timestamp(local, ONLINE_RETAIL_TIMEZONE)
    record = raw_record(
        event_time=F.coalesce(_iso_utc(utc), F.col("InvoiceDate")),
        user_id=F.when(
            F.col("CustomerID").isNotNull(), F.format_string("%d", F.col("CustomerID").cast("long"))
        ),
        item_id=F.col("StockCode"),
        event_type=F.when(F.upper(F.col("InvoiceNo")).startswith("C"), F.lit("cancel")).otherwise(
            F.lit(S.PURCHASE)
        ),
        session_id=F.col("InvoiceNo"),
        price=F.col("UnitPrice"),
        quantity=F.col("Quantity"),
    )
    return src.select(_partition_day(utc, run_date).alias("dt"), json_line(record).alias("value"))


def online_retail_catalog(src: DataFrame) -> DataFrame:
    """StockCode -> its most frequent description (mojibake fixed), the last word of it as the
    category, median positive unit price; only 5-digit product codes are sellable (postage,
    fees, vouchers and manual adjustments are not)."""
    titles = (
        src.where(F.col("StockCode").isNotNull())
        .groupBy("StockCode", "Description")
        .agg(F.count(F.lit(1)).alias("n"))
        .groupBy("StockCode")
        .agg(
            F.max(
                F.struct(
                    F.when(F.col("Description").isNotNull(), F.col("n")).otherwise(0), "Description"
                )
            ).alias("best")
        )
    )
    prices = (
        src.where(F.col("UnitPrice") > 0)
        .groupBy("StockCode")
        .agg(F.median("UnitPrice").alias("price"))
    )
    title = F.trim(fix_mojibake(F.col("best.Description")))
    return titles.join(prices, on="StockCode", how="left").select(
        F.col("StockCode").alias("item_id"),
        title.alias("title"),
        F.lower(F.element_at(F.split(title, r"\s+"), -1)).alias("category"),
        F.round(F.col("price"), 2).alias("price"),
        F.col("StockCode").rlike(r"^\d{5}[A-Za-z]{0,2}$").alias("is_sellable"),
    )


def mojibake_titles() -> Column:
    """Aggregate: distinct source descriptions that carry mojibake (for the ingest manifest)."""
    return F.countDistinct(
        F.when(F.col("Description").rlike(MOJIBAKE_PATTERN), F.col("Description"))
    )


# -- Taobao UserBehavior ------------------------------------------------------------------------


def epoch_seconds(value: Column) -> Column:
    """A 9-11 digit unix-seconds string as a timestamp; anything else null (clean quarantines it)."""
    return F.when(value.rlike(r"^\d{9,11}$"), F.timestamp_seconds(value.cast("long")))


def taobao_events(lines: DataFrame, run_date: dt.date) -> DataFrame:
    """Header-less 'user,item,category,behavior,unix seconds' lines -> (dt, value); behaviour
    names (pv, cart, fav, buy) are kept for clean's synonym mapping."""
    f = _csv_fields(lines, TAOBAO_COLUMNS)
    ts = epoch_seconds(F.col("timestamp"))
    record = raw_record(
        event_time=F.col("timestamp"),
        user_id=F.col("user_id"),
        item_id=F.col("item_id"),
        event_type=F.col("behavior_type"),
    )
    value = F.when(F.col("unsplittable"), F.col("value")).otherwise(json_line(record))
    return f.select(_partition_day(ts, run_date).alias("dt"), value.alias("value"))


def taobao_catalog(lines: DataFrame) -> DataFrame:
    """item -> its category id (the smallest, if the log names several); no titles or prices."""
    f = _csv_fields(lines, TAOBAO_COLUMNS).where(~F.col("unsplittable") & (F.col("item_id") != ""))
    return (
        f.groupBy("item_id")
        .agg(F.min("category_id").alias("category"))
        .select(
            "item_id",
            F.lit(None).cast("string").alias("title"),
            "category",
            F.lit(None).cast("double").alias("price"),
            F.lit(True).alias("is_sellable"),
        )
    )


# -- MovieLens ------------------------------------------------------------------------------------


def movielens_events(lines: DataFrame, run_date: dt.date) -> DataFrame:
    """ratings.csv lines (header removed) -> (dt, value): a rating is an interaction whose type
    grows with the rating (>= 4 purchase, >= 3 cart, >= 2 click, else view)."""
    f = _csv_fields(lines, ("userId", "movieId", "rating", "timestamp"))
    rating = F.col("rating").cast("double")
    event_type = F.lit(S.VIEW)
    for threshold, kind in reversed(MOVIELENS_RATING_TYPES):
        event_type = F.when(rating >= threshold, F.lit(kind)).otherwise(event_type)
    ts = epoch_seconds(F.col("timestamp"))
    record = raw_record(
        event_time=F.col("timestamp"),
        user_id=F.col("userId"),
        item_id=F.col("movieId"),
        event_type=event_type,
    )
    # A rating that is not a number cannot be translated: pass the line on for clean to quarantine.
    verbatim = F.col("unsplittable") | rating.isNull()
    value = F.when(verbatim, F.col("value")).otherwise(json_line(record))
    return f.select(_partition_day(ts, run_date).alias("dt"), value.alias("value"))


def movielens_catalog(movies: DataFrame) -> DataFrame:
    """movies.csv -> catalog: title, first listed genre as the category."""
    first_genre = F.element_at(F.split(F.col("genres"), r"\|"), 1)
    return movies.where(F.col("movieId").isNotNull()).select(
        F.trim(F.col("movieId")).alias("item_id"),
        F.col("title"),
        F.when(first_genre == "(no genres listed)", F.lit(None))
        .otherwise(F.lower(first_genre))
        .alias("category"),
        F.lit(None).cast("double").alias("price"),
        F.lit(True).alias("is_sellable"),
    )
