"""Table contracts: every column name and schema cartwheel reads or writes, declared once.

Writers end with ``select(*columns_of(SCHEMA))`` so a table never carries a column its contract
does not name. Raw logs are read with ``RAW_EVENT_READ_SCHEMA`` (every field a string), so a bad
value is a quarantinable record, never a reader crash.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from pyspark.sql import types as T

# -- event types -------------------------------------------------------------------------------
VIEW, CLICK, CART, PURCHASE, SEARCH = "view", "click", "cart", "purchase", "search"
CANONICAL_EVENT_TYPES: tuple[str, ...] = (VIEW, CLICK, CART, PURCHASE, SEARCH)

# -- raw events (raw/events/dt=YYYY-MM-DD/*.json.gz | *.csv.gz) ---------------------------------
# JSON lines carry these keys; CSV files carry these columns in this order, without a header.
RAW_EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "user_id",
    "item_id",
    "event_type",
    "session_id",
    "price",
    "quantity",
    "query",
)
CORRUPT_COLUMN = "_corrupt_record"
RAW_EVENT_READ_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType(), True) for name in RAW_EVENT_FIELDS]
    + [T.StructField(CORRUPT_COLUMN, T.StringType(), True)]
)
# Suffixes the clean step understands, and the parser each selects.
JSON_SUFFIXES: tuple[str, ...] = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")

# -- catalog (raw/catalog/*.parquet) -----------------------------------------------------------
CATALOG_SCHEMA = T.StructType(
    [
        T.StructField("item_id", T.StringType(), False),
        T.StructField("title", T.StringType(), True),
        T.StructField("category", T.StringType(), True),
        T.StructField("price", T.DoubleType(), True),
        T.StructField("is_sellable", T.BooleanType(), True),
    ]
)

# -- clean events (clean/events/dt=YYYY-MM-DD/*.parquet) ---------------------------------------
CLEAN_EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("user_id", T.StringType(), False),
        T.StructField("item_id", T.StringType(), True),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("session_id", T.StringType(), False),
        T.StructField("price", T.DoubleType(), True),
        T.StructField("quantity", T.IntegerType(), True),
        T.StructField("query", T.StringType(), True),
        T.StructField("category", T.StringType(), True),
        T.StructField("is_known_item", T.BooleanType(), True),
        T.StructField("dt", T.DateType(), False),
    ]
)

# -- quarantine (quarantine/events/dt=YYYY-MM-DD/*.parquet) ------------------------------------
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("raw_record", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("dt", T.DateType(), False),
    ]
)


def columns_of(schema: T.StructType) -> list[str]:
    """Column names of a contract schema, in contract order."""
    return [field.name for field in schema.fields]


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with a default and the help text its flag shows (``meta``: e.g.
    ``aliases=("--old-name",)``); rules and specs in ``pipelines/`` are also step configs."""
    return field(default=default, metadata={"help": help, **meta})
