"""Table contracts: every table cartwheel reads or writes, declared once, as a ``Contract``.

A contract is a table's name and Spark schema; every other form derives from it: the column list
a writer ends with (``contract.select(frame)``), the schema a reader applies, the name/type list
a manifest records and checks (``fields`` / ``differences``), the input columns of the Petastorm
reader and of the logged model (``HISTORY_COLUMNS`` inside ``EXAMPLES``), and narrower tables
of the same columns (``only`` / ``without``: the shard files are the examples without
``split``; the scoring UDF emits ``USER_TOPK`` without the model columns). No column is picked
by position. Raw logs are read with ``RAW_EVENTS`` (every field a string), so a bad value is a
quarantinable record, never a reader crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

# defined without pyspark (so the torch model imports them where Spark is not installed), and
# part of the contracts: re-exported here
from pipelines.common import FIRST_INDEX, OOV, PAD, option  # noqa: F401


@dataclass(frozen=True)
class Contract:
    """One table's contract: its name (as the data-root layout names it) and Spark schema."""

    table: str
    schema: T.StructType

    @property
    def columns(self) -> list[str]:
        """Column names, in contract order."""
        return [f.name for f in self.schema.fields]

    def select(self, frame: DataFrame) -> DataFrame:
        """``frame`` narrowed to exactly this contract's columns, in contract order."""
        return frame.select(*self.columns)

    def only(self, table: str, *names: str) -> Contract:
        """The contract of a narrower table: ``names`` (in that order) with their types."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise KeyError(f"{self.table} has no column(s) {missing}")
        return Contract(table, T.StructType([self.schema[n] for n in names]))

    def without(self, table: str, *names: str) -> Contract:
        """The contract of this table less ``names``."""
        return self.only(table, *[c for c in self.columns if c not in names])

    def fields(self) -> list[dict[str, str]]:
        """``[{"name": ..., "type": ...}]`` in contract order: the form manifests record."""
        return [{"name": f.name, "type": f.dataType.simpleString()} for f in self.schema.fields]

    def differences(self, recorded: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(name, type) pairs on one side only, between this contract and ``recorded`` fields;
        [] when they agree. Same pairs in another order differ as ``("<order>", names)``."""
        got = [(str(f["name"]), str(f["type"])) for f in recorded]
        want = [(f["name"], f["type"]) for f in self.fields()]
        if got == want:
            return []
        return sorted(set(want) ^ set(got)) or [("<order>", ", ".join(n for n, _ in got))]


def _table(name: str, *columns: tuple[str, T.DataType, bool]) -> Contract:
    return Contract(name, T.StructType([T.StructField(*c) for c in columns]))


STRING, INT, LONG, FLOAT, DOUBLE = (
    T.StringType(),
    T.IntegerType(),
    T.LongType(),
    T.FloatType(),
    T.DoubleType(),
)
BOOL, DATE, TIMESTAMP = T.BooleanType(), T.DateType(), T.TimestampType()
INT_LIST = T.ArrayType(INT, False)
STRING_LIST, FLOAT_LIST = T.ArrayType(STRING, False), T.ArrayType(FLOAT, False)

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
RAW_EVENTS = _table(
    "raw/events", *[(name, STRING, True) for name in (*RAW_EVENT_FIELDS, CORRUPT_COLUMN)]
)
# Suffixes the clean step understands, and the parser each selects.
JSON_SUFFIXES: tuple[str, ...] = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")

# -- catalog (raw/catalog/*.parquet) -----------------------------------------------------------
CATALOG = _table(
    "raw/catalog",
    ("item_id", STRING, False),
    ("title", STRING, True),
    ("category", STRING, True),
    ("price", DOUBLE, True),
    ("is_sellable", BOOL, True),
)

# -- clean events (clean/events/dt=YYYY-MM-DD/*.parquet) ---------------------------------------
CLEAN_EVENTS = _table(
    "clean/events",
    ("event_id", STRING, False),
    ("user_id", STRING, False),
    ("item_id", STRING, True),
    ("event_type", STRING, False),
    ("event_time", TIMESTAMP, False),
    ("session_id", STRING, False),
    ("price", DOUBLE, True),
    ("quantity", INT, True),
    ("query", STRING, True),
    ("category", STRING, True),
    ("is_known_item", BOOL, True),
    ("dt", DATE, False),
)

# -- quarantine (quarantine/events/dt=YYYY-MM-DD/*.parquet) ------------------------------------
QUARANTINE = _table(
    "quarantine/events",
    ("raw_record", STRING, True),
    ("reason", STRING, False),
    ("source_file", STRING, False),
    ("dt", DATE, False),
)

# -- the per-user history state (state/user_history/dt=YYYY-MM-DD/, pipelines.user_state) -----
# One row per user active in the window; ``events`` holds the last L item events, most recent
# first. The entry's field order is its sort order (time, then event id).
STATE_ENTRY = T.StructType(
    [
        T.StructField("event_time", TIMESTAMP, False),
        T.StructField("event_id", STRING, False),
        T.StructField("item_id", STRING, False),
        T.StructField("event_type", STRING, False),
    ]
)
USER_HISTORY = _table(
    "state/user_history",
    ("user_id", STRING, False),
    ("last_event_time", TIMESTAMP, False),
    ("events", T.ArrayType(STATE_ENTRY, False), False),
)

# -- vocabularies (vocab/dt=YYYY-MM-DD/{items,categories}/) -------------------------------------
VOCAB_ITEMS = _table(
    "vocab/items",
    ("item_id", STRING, False),
    ("item_idx", INT, False),
    ("category", STRING, True),
    ("category_idx", INT, False),
    ("count", LONG, False),
    ("target_count", LONG, False),
)
VOCAB_CATEGORIES = _table(
    "vocab/categories",
    ("category", STRING, False),
    ("category_idx", INT, False),
    ("count", LONG, False),
)

# -- examples (examples/dt=YYYY-MM-DD/split=S/) and their shards (shards/<run_id>/) --------------
# The model input: the label examples, the scoring inputs, the Petastorm reader, the logged model
# and its MLflow signature all take these names from here. Every list holds exactly
# history_length values (recorded in the examples' _meta.json and the shard manifest).
HISTORY_LISTS: tuple[str, ...] = ("hist_item_idx", "hist_type_idx", "hist_age_s")
HISTORY_LENGTH = "hist_len"
HISTORY_COLUMNS: tuple[str, ...] = (*HISTORY_LISTS, HISTORY_LENGTH)
EXAMPLES = _table(
    "examples",
    ("user_id", STRING, False),
    ("target_item_id", STRING, False),
    ("target_item_idx", INT, False),
    ("target_category_idx", INT, False),
    ("target_type", STRING, False),
    ("target_type_idx", INT, False),
    ("label_weight", FLOAT, False),
    ("target_time", TIMESTAMP, False),
    *[(name, INT_LIST, False) for name in HISTORY_LISTS],
    (HISTORY_LENGTH, INT, False),
    ("split", STRING, False),
)
SHARDS = EXAMPLES.without("shards", "split")  # one folder per split instead

# -- recommendation tables (recs/{user_topk,item_similar}/dt=YYYY-MM-DD/) -----------------------
MODEL_COLUMNS: tuple[str, ...] = ("model_name", "model_version", "run_date")
USER_TOPK = _table(
    "recs/user_topk",
    ("user_id", STRING, False),
    ("rank", INT, False),
    ("item_id", STRING, False),
    ("score", FLOAT, True),
    ("source", STRING, False),
    ("model_name", STRING, False),
    ("model_version", STRING, False),
    ("run_date", DATE, False),
)
ITEM_SIMILAR = _table(
    "recs/item_similar",
    ("item_id", STRING, False),
    ("rank", INT, False),
    ("similar_item_id", STRING, False),
    ("score", FLOAT, False),
    ("model_name", STRING, False),
    ("model_version", STRING, False),
    ("run_date", DATE, False),
)
# What the scoring UDFs emit; score adds the model columns.
SCORED = USER_TOPK.without("scored users", *MODEL_COLUMNS)
SIMILAR_SCORED = ITEM_SIMILAR.without("scored items", *MODEL_COLUMNS)

# -- the second stage's lists (ranker/dt=YYYY-MM-DD/split={fit,select}/) ------------------------
# One row per candidate of a list (a user at one cutoff, ``group_id``): its features
# (``pipelines.candidates.feature_names`` of the generators, recorded in the step's manifest),
# whether the user's targets after the cutoff hold it (``label``) and how many targets the user
# has (``relevant``, proposed or not). Files hold whole lists, rows ordered by ``group_id``.
RANKER_LISTS = _table(
    "ranker lists",
    ("group_id", LONG, False),
    ("cutoff", DATE, False),
    ("user_id", STRING, False),
    ("item_id", STRING, False),
    ("sources", STRING_LIST, False),
    ("features", FLOAT_LIST, False),
    ("label", FLOAT, False),
    ("relevant", INT, False),
)

# -- evaluation (reports/dt=YYYY-MM-DD/metrics.json holds METRICS rows as a table) ---------------
RANKED_LISTS = _table(
    "ranked lists",
    ("method", STRING, False),
    ("user_id", STRING, False),
    ("item_id", STRING, False),
    ("rank", INT, False),
)
METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "map", "hit_rate", "coverage")
METRICS = _table(
    "metrics",
    ("method", STRING, False),
    ("k", INT, False),
    ("users", LONG, False),
    *[(name, DOUBLE, True) for name in METRIC_NAMES],
)
