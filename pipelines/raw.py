"""Building raw-layout records (the ``raw/events`` contract) from typed columns."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines import schemas as S

# Types a producer writes each raw field with; the clean step reads them all back as strings.
RAW_FIELD_TYPES: dict[str, str] = {name: "string" for name in S.RAW_EVENT_FIELDS} | {
    "price": "double",
    "quantity": "int",
}


def raw_record(**fields: Column) -> Column:
    """A struct with every raw event field in contract order; fields not given are null."""
    unknown = set(fields) - set(S.RAW_EVENT_FIELDS)
    if unknown:
        raise ValueError(f"not raw event fields: {sorted(unknown)}")
    return F.struct(
        *[
            fields.get(name, F.lit(None)).cast(RAW_FIELD_TYPES[name]).alias(name)
            for name in S.RAW_EVENT_FIELDS
        ]
    )


def json_line(record: Column) -> Column:
    """One JSON-lines line for a raw record (null fields omitted)."""
    return F.to_json(record)
