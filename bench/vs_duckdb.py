"""cartwheel's clean and label steps against DuckDB twins of the same rules, on the same input.

The clean twin (``twin_clean``) is an independent SQL implementation of ``pipelines/clean.py``
over the raw JSON-lines files: the record reasons in their precedence (blank and malformed
lines, missing ids, ignored and unknown event types through the synonym map, the time formats,
future times, prices, quantities, oversized queries), the content id of a record without an
event id, the bot rule as a GROUP BY over user-day minutes, exact duplicates, double fires,
sessions at inactivity gaps, the catalog join, the PII scrub of kept queries and the line a
quarantined row keeps, plus the step's per-day counts and quality figures. The PII patterns
are java.util.regex in the step; the twin runs their Python ``re`` translation on the rows
that can hold PII (a query with a digit or an @, and quarantined lines), its only Python. It
reads JSON lines only (the generator's format; a line holding the byte 0x01 would split).

The label twin (``twin_label``) implements ``pipelines/label.py``'s rules: the train-period
vocabulary (items seen ``min_item_count``+ times, indexed by count), the user's item events
numbered by (time, event id), a group's history (the L item events before the group's first
one: its UTC day, or its timestamp with ``--history-cutoff event``), the ``min_history`` and
``max_targets_per_user`` rules, and the time splits. It builds histories only for the groups
that hold an emitted target, and writes the examples as Parquet partitioned by split plus its
vocabulary, like the step.

Each round runs the cartwheel step and its twin as separate processes, in turn, on one data
root, times both (wall seconds, peak RSS of the process tree) and checks the outputs before the
times count: for clean, the clean events and the quarantine as multisets of rows (every column
of their contracts) and the rows per day and disposition against the step's manifest; for
label, the examples (every column of the examples contract). ``bench/results/vs-duckdb.json``
keeps, per step, the ratio of the fastest cartwheel round to the fastest twin round, the rounds,
and whether every round's rows were equal; a run updates the steps it measured and keeps the
others. Clean is measured first (label reads the clean events it wrote).

The data root is made by ``generate`` + ``clean`` (not timed) unless ``--root`` names one that
has raw and clean events for the window.

usage: python bench/vs_duckdb.py [--rows 1000000] [--days 7] [--rounds 3] [--steps clean,label]
                                 [--work-dir DIR] [--root DATA_ROOT]
       python bench/vs_duckdb.py twin-clean --root R --run-date D --days N --rules JSON --out DIR
       python bench/vs_duckdb.py twin-label --root R --run-date D --rules JSON --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

END = "2026-11-21"
RESULT = "vs-duckdb"


# -- the twin (runs in its own process; imports nothing but duckdb) -----------------------------


def twin_label(root: Path, run_date: dt.date, rules: dict[str, Any], out: Path) -> dict[str, int]:
    """Label the window ending at ``run_date`` with DuckDB; write ``out/examples`` (Parquet,
    ``split=`` folders) and ``out/vocab_items``; return examples per split."""

    L = rules["history_length"]
    days = [run_date - dt.timedelta(days=k) for k in range(rules["lookback_days"] - 1, -1, -1)]
    folders = [root / "clean" / "events" / f"dt={d}" for d in days]
    files = [str(f / "*.parquet") for f in folders if f.is_dir()]
    if not files:
        raise SystemExit(
            f"no clean events under {root / 'clean' / 'events'} for {days[0]} .. {days[-1]}"
        )
    test_start = run_date - dt.timedelta(days=rules["test_days"] - 1)
    val_start = test_start - dt.timedelta(days=rules["val_days"])
    types = {"view": 1, "click": 2, "cart": 3, "purchase": 4}
    type_case = (
        "CASE event_type " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in types.items()) + " END"
    )
    weight_case = (
        "CASE event_type "
        + " ".join(f"WHEN '{k}' THEN {float(v)!r}" for k, v in rules["label_weights"].items())
        + " END"
    )
    targets = ", ".join(f"'{t}'" for t in rules["target_types"])
    day = rules["history_cutoff"] == "day"
    group = "CAST(event_time AS DATE)" if day else "event_time"
    t_ref = "date_trunc('day', event_time)" if day else "event_time"
    secs = "CAST(epoch_us({}) AS DOUBLE) / CAST(1000000 AS DOUBLE)"  # Spark's timestamp -> double

    con = _connect()
    con.execute(
        f"""
        CREATE TEMP TABLE ev AS
        SELECT event_id, user_id, item_id, event_type, event_time, category, is_known_item
        FROM read_parquet({files!r}, hive_partitioning = false)
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE counts AS
        SELECT item_id, count(*) AS cnt, min(category) AS category FROM ev
        WHERE item_id IS NOT NULL AND is_known_item AND event_time < TIMESTAMPTZ '{val_start} 00:00:00+00'
        GROUP BY item_id HAVING count(*) >= {rules["min_item_count"]};
        CREATE TEMP TABLE categories AS
        SELECT category, CAST(row_number() OVER (ORDER BY sum(cnt) DESC, category) + 1 AS INTEGER)
            AS category_idx
        FROM counts WHERE category IS NOT NULL GROUP BY category;
        CREATE TEMP TABLE vocab AS
        SELECT c.item_id, CAST(row_number() OVER (ORDER BY c.cnt DESC, c.item_id) + 1 AS INTEGER)
            AS item_idx, c.category, coalesce(k.category_idx, 1) AS category_idx, c.cnt AS count
        FROM counts c LEFT JOIN categories k USING (category);
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE it AS
        SELECT e.user_id, e.item_id, e.event_type, e.event_time, v.item_idx,
            coalesce(v.category_idx, 1) AS category_idx, coalesce(v.item_idx, 1) AS idx,
            {type_case} AS type_idx, {secs.format("e.event_time")} AS t,
            {secs.format(t_ref)} AS t_ref,
            row_number() OVER (PARTITION BY e.user_id ORDER BY e.event_time, e.event_id) AS pos,
            rank() OVER (PARTITION BY e.user_id ORDER BY {group}) AS tie_start,
            e.event_id
        FROM ev e LEFT JOIN vocab v USING (item_id)
        WHERE e.item_id IS NOT NULL;
        CREATE TEMP TABLE targets AS
        SELECT * FROM (
            SELECT *, sum(CAST(emittable AS INTEGER)) OVER (
                PARTITION BY user_id ORDER BY event_time DESC, event_id DESC
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS recent_rank
            FROM (
                SELECT *, event_type IN ({targets}) AND item_idx IS NOT NULL
                    AND least(tie_start - 1, {L}) >= {rules["min_history"]} AS emittable
                FROM it))
        WHERE emittable AND recent_rank <= {rules["max_targets_per_user"]};
        CREATE TEMP TABLE histories AS
        SELECT a.user_id, a.tie_start,
            list(h.idx ORDER BY h.pos DESC) AS items,
            list(h.type_idx ORDER BY h.pos DESC) AS types,
            list(CAST(trunc(least(a.t_ref - h.t, 2147483647.0)) AS INTEGER) ORDER BY h.pos DESC)
                AS ages
        FROM (SELECT DISTINCT user_id, tie_start, t_ref FROM targets) a
        JOIN it h ON h.user_id = a.user_id AND h.pos >= a.tie_start - {L} AND h.pos < a.tie_start
        GROUP BY a.user_id, a.tie_start;
        """
    )

    def padded(name: str) -> str:
        return f"list_resize(coalesce(h.{name}, []::INTEGER[]), {L}, 0)"

    con.execute(
        f"""
        CREATE TEMP TABLE examples AS
        SELECT t.user_id, t.item_id AS target_item_id, t.item_idx AS target_item_idx,
            t.category_idx AS target_category_idx, t.event_type AS target_type,
            t.type_idx AS target_type_idx, CAST({weight_case} AS FLOAT) AS label_weight,
            t.event_time AS target_time, {padded("items")} AS hist_item_idx,
            {padded("types")} AS hist_type_idx, {padded("ages")} AS hist_age_s,
            CAST(least(t.tie_start - 1, {L}) AS INTEGER) AS hist_len,
            CASE WHEN t.event_time >= TIMESTAMPTZ '{test_start} 00:00:00+00' THEN 'test'
                 WHEN t.event_time >= TIMESTAMPTZ '{val_start} 00:00:00+00' THEN 'val'
                 ELSE 'train' END AS split
        FROM targets t LEFT JOIN histories h USING (user_id, tie_start)
        """
    )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con.execute(f"COPY examples TO '{out / 'examples'}' (FORMAT PARQUET, PARTITION_BY (split))")
    con.execute(
        f"COPY (SELECT * FROM vocab ORDER BY item_idx) TO '{out / 'vocab_items.parquet'}' (FORMAT PARQUET)"
    )
    return dict(con.execute("SELECT split, count(*) FROM examples GROUP BY split").fetchall())


# -- the clean twin -------------------------------------------------------------------------------

# java.util.regex -> Python re, for the PII patterns of ``pipelines/clean.py`` (the twin's only
# Python, run on the few rows that can hold PII): \p{L}\p{N} -> [^\W_], \p{L} -> [^\W\d_],
# \p{Nd} -> \d (Unicode digits in Python), Java's ASCII \s spelt out.
_J_SPACE = " \\t\\n\\x0b\\f\\r"
_EC = r"[\w.%+\-]"
_PY_EMAIL = rf"(?<!{_EC}){_EC}++@(?:[^\W_]|-)(?:[^\W_]|[.\-])*\.[^\W\d_]{{2,}}"
_SEP = _J_SPACE + "\u00a0\u2007\u202f\u3000().\\-/\u2010-\u2015\uff0d"
_PY_PHONE = (
    rf"(?<![\d+\uff0b])(?![0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}(?![0-9]))[+\uff0b]?\(?"
    rf"(?=(?:[{_SEP}]{{0,3}}\d){{8}})\d[\d{_SEP}]*\d"
)
_PY_TAIL = rf"(?<![^{_J_SPACE},;\"'])[^{_J_SPACE},;\"']*+$"


def _connect() -> Any:
    """A DuckDB connection in UTC, without a progress bar."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def _multiset_diff(con: Any, a: str, b: str) -> dict[str, int]:
    """Each query's rows, and the rows only in ``a`` and only in ``b`` as multisets."""

    def count(sql: str) -> int:
        row = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        assert row is not None  # a count always returns one row
        return int(row[0])

    return {
        "cartwheel_rows": count(a),
        "twin_rows": count(b),
        "only_cartwheel": count(f"{a} EXCEPT ALL {b}"),
        "only_twin": count(f"{b} EXCEPT ALL {a}"),
    }


def _scrubbers(limit: int) -> tuple[Any, Any]:
    """(scrub_text, quarantine_record) in plain Python: the clean rules' PII scrubber and the
    line a quarantined row keeps (truncated beyond ``limit`` characters)."""
    import re

    email, phone, tail = re.compile(_PY_EMAIL), re.compile(_PY_PHONE), re.compile(_PY_TAIL)

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        return phone.sub("[phone]", email.sub("[email]", text))

    def quarantine(line: str, malformed: bool, query: str | None, fields_json: str) -> str:
        if len(line) > limit:
            head = tail.sub("", line[:limit])
            return str(scrub(f"{head} ...[truncated: {len(line)} chars]"))
        if malformed:
            return str(scrub(line))
        clean_query = scrub(query)
        if query is None or clean_query == query:
            kept = line
        elif query in line:
            kept = line.replace(query, str(clean_query))
        else:  # re-serialised from the parsed fields, the query scrubbed, nulls left out
            fields = json.loads(fields_json)
            fields["query"] = clean_query
            kept = json.dumps(
                {k: v for k, v in fields.items() if v is not None},
                separators=(",", ":"),
                ensure_ascii=False,
            )
        return email.sub("[email]", kept)

    return scrub, quarantine


def twin_clean(
    root: Path, run_date: dt.date, days: int, rules: dict[str, Any], out: Path
) -> dict[str, int]:
    """Clean the ``days`` raw days ending at ``run_date`` with DuckDB; write ``out/events`` and
    ``out/quarantine`` (Parquet, ``dt=`` folders), ``out/dispositions.json`` (rows per day and
    disposition) and ``out/quality.json`` (per-day figures like the step's quality report);
    return the rows per disposition."""

    from_dates = [run_date - dt.timedelta(days=k) for k in range(days - 1, -1, -1)]
    files = sorted(
        str(f.resolve())
        for d in from_dates
        for f in (root / "raw" / "events" / f"dt={d}").glob("*")
        if f.is_file() and not f.name.startswith(("_", "."))
    )
    if not files:
        raise SystemExit(f"no raw events under {root / 'raw' / 'events'} for {from_dates}")
    other = [f for f in files if not f.endswith(tuple(rules["json_suffixes"]))]
    if other:
        raise SystemExit(f"the twin reads JSON lines only, not {other[0]}")
    fields = rules["raw_fields"]
    synonyms = {k.lower(): v for k, v in rules["event_type_synonyms"].items()}
    canonical = rules["canonical_types"]
    ignored = [t.lower() for t in rules["ignored_event_types"]]

    def strings(values: Any) -> str:
        return ", ".join("'" + v.replace("'", "''") + "'" for v in values)

    mapped = (
        "CASE lower(trim(raw_event_type)) "
        + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in sorted(synonyms.items()))
        + " ELSE lower(trim(raw_event_type)) END"
    )

    def blank(c: str) -> str:
        return f"({c} IS NULL OR trim({c}) = '')"

    def null_if_blank(c: str) -> str:
        return f"CASE WHEN {blank(c)} THEN NULL ELSE trim({c}) END"

    # Spark's to_json of the raw fields (nulls left out): the content id of a record without one
    content_json = (
        "'{' || concat_ws(',', "
        + ", ".join(
            f"CASE WHEN raw_{n} IS NOT NULL THEN '\"raw_{n}\":' || to_json(raw_{n}) END"
            for n in fields
        )
        + ") || '}'"
    )
    skew = int(rules["max_clock_skew_minutes"])
    t = "trim(raw_event_time)"
    event_time = (
        f"CASE WHEN regexp_full_match({t}, '[1-9][0-9]{{8,10}}') THEN to_timestamp(CAST({t} AS BIGINT))::TIMESTAMP "
        f"WHEN regexp_full_match({t}, '[1-9][0-9]{{11,13}}') THEN make_timestamp(CAST(trunc(CAST({t} AS BIGINT) / 1000.0 * 1000000.0) AS BIGINT)) "
        f"WHEN regexp_matches({t}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}($|[T ])') THEN TRY_CAST({t} AS TIMESTAMPTZ)::TIMESTAMP END"
    )  # fmt: skip
    price, quantity = (
        "TRY_CAST(trim(raw_price) AS DOUBLE)",
        "TRY_CAST(trim(raw_quantity) AS DOUBLE)",
    )
    price_bad = (
        f"NOT {blank('raw_price')} AND ({price} IS NULL OR isnan({price}) OR {price} < 0 "
        f"OR {price} > {float(rules['max_price'])!r})"
    )
    quantity_bad = (
        f"NOT {blank('raw_quantity')} AND ({quantity} IS NULL OR isnan({quantity}) "
        f"OR {quantity} <> floor({quantity}) OR {quantity} < 1 OR {quantity} > {int(rules['max_quantity'])})"
    )
    reason = f"""CASE WHEN is_blank THEN 'blank_line' WHEN is_malformed THEN 'malformed_record'
        WHEN {blank("raw_user_id")} THEN 'missing_id'
        WHEN et IN ({strings(ignored) or "NULL"}) THEN 'ignored_event_type'
        WHEN et IS NULL OR et NOT IN ({strings(canonical)}) THEN 'unknown_event_type'
        WHEN et <> 'search' AND {blank("raw_item_id")} THEN 'missing_id'
        WHEN event_time IS NULL THEN 'unparseable_timestamp'
        WHEN event_time > CAST(dt + 1 AS TIMESTAMP) + INTERVAL {skew} MINUTE THEN 'future_timestamp'
        WHEN {price_bad} THEN 'invalid_price' WHEN {quantity_bad} THEN 'invalid_quantity'
        WHEN length(raw_query) > {int(rules["max_query_chars"])} THEN 'oversized_query' END"""

    con = _connect()
    scrub, quarantine = _scrubbers(int(rules["max_quarantine_record_chars"]))
    # null_handling "special": the functions see nulls (a null query is not a null record); the
    # string form works on every duckdb this project allows, the enum's module moved (1.x -> 2.x)
    con.create_function("scrub_text", scrub, ["VARCHAR"], "VARCHAR", null_handling="special")
    con.create_function(
        "quarantine_record", quarantine, ["VARCHAR", "BOOLEAN", "VARCHAR", "VARCHAR"], "VARCHAR",
        null_handling="special",
    )  # fmt: skip
    paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    extract = ", ".join(f"'$.{n}'" for n in fields)
    con.execute(
        f"""
        CREATE TEMP TABLE parsed AS
        SELECT raw_record, source_file, dt, is_blank, is_malformed,
            {", ".join(f"CASE WHEN is_malformed THEN NULL ELSE v[{i + 1}] END AS raw_{n}" for i, n in enumerate(fields))}
        FROM (
            SELECT value AS raw_record, 'file:' || filename AS source_file,
                CAST(regexp_extract(filename, 'dt=([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})', 1) AS DATE) AS dt,
                trim(value) = '' AS is_blank,
                trim(value) <> '' AND coalesce(TRY(json_type(value)), '') <> 'OBJECT' AS is_malformed,
                TRY(json_extract_string(value, [{extract}])) AS v
            FROM (  -- a blank line reads as null
                SELECT coalesce(value, '') AS value, filename
                FROM read_csv([{paths}], columns = {{'value': 'VARCHAR'}}, header = false,
                    delim = '\x01', quote = '', escape = '', auto_detect = false,
                    filename = true, hive_partitioning = false)))
        """
    )  # fmt: skip
    con.execute(
        f"""
        CREATE TEMP TABLE typed AS
        SELECT *, {reason} AS reason FROM (
            SELECT *, coalesce({null_if_blank("raw_event_id")}, substr(sha256({content_json}), 1, 32)) AS event_id,
                trim(raw_user_id) AS user_id,
                CASE WHEN et = 'search' THEN {null_if_blank("raw_item_id")} ELSE trim(raw_item_id) END AS item_id,
                et AS event_type, {event_time} AS event_time,
                {null_if_blank("raw_session_id")} AS raw_session, {price} AS price,
                CAST({quantity} AS INTEGER) AS quantity, {null_if_blank("raw_query")} AS query_raw,
                coalesce(trim(raw_user_id), raw_record) AS user_key
            FROM (SELECT *, {mapped} AS et FROM parsed))
        """
    )  # fmt: skip
    con.execute("DROP TABLE parsed")
    per_minute, per_day = (
        int(rules["bot_max_events_per_minute"]),
        int(rules["bot_max_events_per_day"]),
    )
    over = " OR ".join(
        [f"max(n) > {per_minute}"] * (per_minute > 0) + [f"sum(n) > {per_day}"] * (per_day > 0)
    )  # fmt: skip
    if over:
        con.execute(
            f"""
            UPDATE typed SET reason = 'bot_user' FROM (
                SELECT dt, user_key FROM (
                    SELECT dt, user_key, count(*) AS n FROM typed WHERE reason IS NULL
                    GROUP BY dt, user_key, date_trunc('minute', event_time))
                GROUP BY dt, user_key HAVING {over}) b
            WHERE typed.reason IS NULL AND typed.dt = b.dt AND typed.user_key = b.user_key
            """
        )
    raw = ", ".join(f"raw_{n}" for n in fields)
    con.execute(
        f"""
        UPDATE typed SET reason = 'exact_duplicate' FROM (
            SELECT rowid AS r FROM (
                SELECT rowid, row_number() OVER (PARTITION BY dt, user_key, {raw}
                    ORDER BY source_file, raw_record) AS k
                FROM typed WHERE reason IS NULL) WHERE k > 1) d
        WHERE typed.rowid = d.r
        """
    )
    con.execute(
        f"""
        UPDATE typed SET reason = 'double_fire' FROM (
            SELECT rowid AS r FROM (
                SELECT rowid, epoch_us(event_time) / 1e6 - lag(epoch_us(event_time) / 1e6) OVER (
                    PARTITION BY dt, user_key, event_type,
                        coalesce(item_id, 'query:' || lower(coalesce(query_raw, '')))
                    ORDER BY event_time, event_id) AS gap
                FROM typed WHERE reason IS NULL) WHERE gap < {float(rules['double_fire_seconds'])!r}) d
        WHERE typed.rowid = d.r
        """
    )  # fmt: skip
    gap_s = int(rules["session_gap_minutes"]) * 60
    con.execute(
        f"""
        CREATE TEMP TABLE kept AS
        SELECT k.event_id, k.user_id, k.item_id, k.event_type, k.event_time,
            coalesce(k.raw_session, k.user_id || '-' || strftime(k.dt, '%Y%m%d') || '-' ||
                CAST(sum(k.starts) OVER (PARTITION BY k.dt, k.user_key ORDER BY k.event_time, k.event_id
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS VARCHAR)) AS session_id,
            k.price, k.quantity,
            CASE WHEN regexp_matches(k.query_raw, '[@\\p{{Nd}}]') THEN scrub_text(k.query_raw) ELSE k.query_raw END AS query,
            c.category,
            CASE WHEN k.item_id IS NULL THEN NULL ELSE c.item_id IS NOT NULL END AS is_known_item,
            k.dt
        FROM (
            SELECT *, CASE WHEN gap IS NULL OR gap > {gap_s} THEN 1 ELSE 0 END AS starts FROM (
                SELECT *, epoch_us(event_time) // 1000000 - lag(epoch_us(event_time) // 1000000)
                    OVER (PARTITION BY dt, user_key ORDER BY event_time, event_id) AS gap
                FROM typed WHERE reason IS NULL)) k
        LEFT JOIN (
            SELECT item_id, min(category) AS category
            FROM read_parquet('{root / "raw" / "catalog"}/*.parquet') GROUP BY item_id) c
        ON k.item_id = c.item_id
        """
    )  # fmt: skip
    quarantine_reasons = rules["quarantine_reasons"]
    fields_json = "json_object(" + ", ".join(f"'{n}', raw_{n}" for n in fields) + ")"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con.execute(f"COPY kept TO '{out / 'events'}' (FORMAT PARQUET, PARTITION_BY (dt))")
    con.execute(
        f"""
        COPY (
            SELECT quarantine_record(raw_record, is_malformed, raw_query, {fields_json}) AS raw_record,
                reason, source_file, dt
            FROM typed WHERE reason IN ({strings(quarantine_reasons)}))
        TO '{out / 'quarantine'}' (FORMAT PARQUET, PARTITION_BY (dt))
        """
    )  # fmt: skip
    # the step's data-quality figures per day (its clean_quality.json), so both do the same work
    cursor = con.execute(
        f"""
        SELECT CAST(dt AS VARCHAR) AS dt, count(*) AS rows,
            {", ".join(f"count_if(event_type = '{t}') AS type_{t}" for t in canonical)},
            {", ".join(f"count_if({c} IS NULL) AS null_{c}" for c in ("item_id", "price", "quantity", "query", "category"))},
            count_if(NOT is_known_item) AS unknown_items,
            approx_count_distinct(user_id) AS users_approx, count(DISTINCT session_id) AS sessions
        FROM kept GROUP BY dt ORDER BY dt
        """
    )  # fmt: skip
    names = [d[0] for d in cursor.description or []]
    quality = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    (out / "quality.json").write_text(json.dumps(quality, sort_keys=True))
    per_day_rows = con.execute(
        "SELECT CAST(dt AS VARCHAR), coalesce(reason, 'kept'), count(*) FROM typed GROUP BY ALL"
    ).fetchall()
    dispositions: dict[str, dict[str, int]] = {}
    for day, disposition, n in per_day_rows:
        dispositions.setdefault(day, {})[disposition] = int(n)
    (out / "dispositions.json").write_text(json.dumps(dispositions, sort_keys=True))
    totals: dict[str, int] = {}
    for counts in dispositions.values():
        for k, n in counts.items():
            totals[k] = totals.get(k, 0) + n
    return totals


def compare_examples(cartwheel: Path, twin: Path) -> dict[str, int]:
    """Rows only in cartwheel's examples, only in the twin's (multisets), and each side's rows."""
    from pipelines.schemas import EXAMPLES

    cols = ", ".join(EXAMPLES.columns)
    a = f"SELECT {cols} FROM read_parquet('{cartwheel}/split=*/*.parquet', hive_partitioning = true)"
    b = f"SELECT {cols} FROM read_parquet('{twin}/split=*/*.parquet', hive_partitioning = true)"
    return _multiset_diff(_connect(), a, b)


def compare_clean(root: Path, twin: Path, days: list[dt.date]) -> dict[str, int]:
    """Rows only in cartwheel's clean events / quarantine of ``days``, only in the twin's
    (multisets, every column), and each side's rows."""
    from pipelines.schemas import CLEAN_EVENTS, QUARANTINE

    con = _connect()

    def select(folder: Path, columns: list[str]) -> str:
        parts = [
            str(folder / f"dt={d}" / "*.parquet") for d in days if (folder / f"dt={d}").is_dir()
        ]
        cols = ", ".join(
            "CAST(event_time AS TIMESTAMP) AS event_time" if c == "event_time" else
            "CAST(dt AS DATE) AS dt" if c == "dt" else
            # the file under the data root: the quarantine of a copied root names the original's
            "regexp_extract(source_file, '/(raw/events/.*)$', 1) AS source_file"
            if c == "source_file" else c
            for c in columns
        )  # fmt: skip
        return f"SELECT {cols} FROM read_parquet({parts!r}, hive_partitioning = true)"

    out: dict[str, int] = {}
    for name, table, columns in (
        ("events", "clean/events", CLEAN_EVENTS.columns),
        ("quarantine", "quarantine/events", QUARANTINE.columns),
    ):
        diff = _multiset_diff(con, select(root / table, columns), select(twin / name, columns))
        out.update({f"{name}_{k}": n for k, n in diff.items()})
    return out


# -- the comparison -----------------------------------------------------------------------------


def label_rules(rules: Any) -> dict[str, Any]:
    """A ``pipelines.label.LabelRules`` (or a label config) as the twin's plain rules."""
    from pipelines.label import LabelRules

    plain = {f.name: getattr(rules, f.name) for f in dataclasses.fields(LabelRules)}
    plain["label_weights"] = dict(plain["label_weights"])
    plain["target_types"] = list(plain["target_types"])
    return plain


def clean_rules(rules: Any) -> dict[str, Any]:
    """A ``pipelines.clean.CleanRules`` (or a clean config) as the twin's plain rules, with the
    contract the twin implements (raw fields, canonical types, quarantine reasons, the
    quarantined line's limit, the JSON suffixes) taken from the code, not copied: the twin's
    process imports nothing but duckdb."""
    from pipelines import clean as C
    from pipelines import schemas as S

    plain = {f.name: getattr(rules, f.name) for f in dataclasses.fields(C.CleanRules)}
    plain["event_type_synonyms"] = dict(plain["event_type_synonyms"])
    plain["ignored_event_types"] = list(plain["ignored_event_types"])
    return {
        **plain,
        "raw_fields": list(S.RAW_EVENT_FIELDS),
        "canonical_types": list(S.CANONICAL_EVENT_TYPES),
        "quarantine_reasons": list(C.QUARANTINE_REASONS),
        "max_quarantine_record_chars": C.MAX_QUARANTINE_RECORD_CHARS,
        "json_suffixes": list(S.JSON_SUFFIXES),
    }


def _timed(command: list[str], log: Path, what: str, twin: bool = False) -> dict[str, float]:
    """Run one side of a round as its own process: wall seconds and peak RSS (MB)."""
    from bench.common import run_sampled

    extra = {"command": [sys.executable, __file__]} if twin else {}
    wall, code, samples = run_sampled(command, log, **extra)
    if code != 0:
        raise SystemExit(f"{what} failed (exit {code}): see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(max(r for _, r in samples) / 2**20, 1)}


def _summary(runs: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    best_cw = min(r["cartwheel"]["wall_s"] for r in runs)
    best_tw = min(r["duckdb"]["wall_s"] for r in runs)
    return {
        "ratio": round(best_cw / best_tw, 2),
        "rounds": rounds,
        "rows_equal": all(r["rows_equal"] for r in runs),
        "cartwheel_best_wall_s": best_cw,
        "duckdb_best_wall_s": best_tw,
    }


def measure_clean(root: Path, days: int, rounds: int, work: Path) -> dict[str, Any]:
    from jobs.runtime.readers import date_window
    from pipelines.clean import CleanRules

    rules = clean_rules(CleanRules())
    window = date_window(dt.date.fromisoformat(END), days)
    twin_out = work / "twin-clean"
    runs: list[dict[str, Any]] = []
    for n in range(1, rounds + 1):
        log = work / "logs" / f"clean-{n}.log"
        cmd = ["clean", "--data-root", str(root), "--run-date", END, "--days", str(days)]
        cw = _timed(cmd, log, "cartwheel clean")
        twin_cmd = [
            "twin-clean", "--root", str(root), "--run-date", END, "--days", str(days),
            "--rules", json.dumps(rules), "--out", str(twin_out),
        ]  # fmt: skip
        tw = _timed(twin_cmd, work / "logs" / f"twin-clean-{n}.log", "the DuckDB twin", twin=True)
        eq = compare_clean(root, twin_out, window)
        manifest = json.loads((root / "_runs" / END / "clean.json").read_text())
        twin_days = json.loads((twin_out / "dispositions.json").read_text())
        counts_equal = manifest["per_day"] == twin_days
        equal = counts_equal and all(
            eq[f"{t}_only_cartwheel"] == eq[f"{t}_only_twin"] == 0
            and eq[f"{t}_cartwheel_rows"] == eq[f"{t}_twin_rows"]
            for t in ("events", "quarantine")
        )
        runs.append(
            {"round": n, "cartwheel": cw, "duckdb": tw, "rows_equal": equal,
             "dispositions_equal": counts_equal, **eq}
        )  # fmt: skip
        print(
            f"  clean round {n}: cartwheel {cw['wall_s']:.1f}s, DuckDB {tw['wall_s']:.1f}s, "
            f"{eq['events_cartwheel_rows']:,} clean events, equal {equal}",
            flush=True,
        )
    return {
        **_summary(runs, rounds),
        "raw_rows": manifest["rows_in"],
        "clean_events": manifest["rows_out"],
        "quarantined": manifest["rows_quarantined"],
        "rules": rules,
        "runs": runs,
    }


def measure_label(root: Path, days: int, rounds: int, work: Path) -> dict[str, Any]:
    from pipelines.label import LabelRules

    rules = label_rules(LabelRules(lookback_days=days))
    twin_out = work / "twin-label"
    runs: list[dict[str, Any]] = []
    for n in range(1, rounds + 1):
        lab = ["label", "--data-root", str(root), "--run-date", END, "--lookback-days", str(days)]
        cw = _timed(lab, work / "logs" / f"label-{n}.log", "cartwheel label")
        twin_cmd = [
            "twin-label", "--root", str(root), "--run-date", END, "--rules", json.dumps(rules),
            "--out", str(twin_out),
        ]  # fmt: skip
        tw = _timed(twin_cmd, work / "logs" / f"twin-label-{n}.log", "the DuckDB twin", twin=True)
        eq = compare_examples(root / "examples" / f"dt={END}", twin_out / "examples")
        equal = (
            eq["only_cartwheel"] == eq["only_twin"] == 0 and eq["cartwheel_rows"] == eq["twin_rows"]
        )
        runs.append({"round": n, "cartwheel": cw, "duckdb": tw, "rows_equal": equal, **eq})
        print(
            f"  label round {n}: cartwheel {cw['wall_s']:.1f}s, DuckDB {tw['wall_s']:.1f}s, "
            f"{eq['cartwheel_rows']:,} examples, equal {equal}",
            flush=True,
        )
    manifest = json.loads((root / "_runs" / END / "label.json").read_text())
    return {
        **_summary(runs, rounds),
        "clean_events": manifest["rows_in"],
        "examples": manifest["rows_out"],
        "rules": rules,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["twin-label"], ["twin-clean"]):
        p = argparse.ArgumentParser(prog=f"vs_duckdb.py {argv[0]}")
        p.add_argument("--root", type=Path, required=True)
        p.add_argument("--run-date", type=dt.date.fromisoformat, required=True)
        p.add_argument("--days", type=int, default=1, help="(twin-clean) raw days to clean")
        p.add_argument("--rules", type=json.loads, required=True)
        p.add_argument("--out", type=Path, required=True)
        a = p.parse_args(argv[1:])
        if argv[0] == "twin-label":
            print(json.dumps(twin_label(a.root, a.run_date, a.rules, a.out)))
        else:
            print(json.dumps(twin_clean(a.root, a.run_date, a.days, a.rules, a.out)))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="raw rows to generate")
    p.add_argument("--days", type=int, default=7, help="days of log (the clean and label window)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--steps", default="clean,label", help="which steps to measure (clean, label or both)"
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/cartwheel-vs-duckdb"))
    p.add_argument("--root", type=Path, help="an existing data root with raw and clean events")
    a = p.parse_args(argv)
    steps_wanted = [s.strip() for s in a.steps.split(",") if s.strip()]
    unknown = set(steps_wanted) - {"clean", "label"}
    if unknown or not steps_wanted:
        p.error(f"--steps: one or both of clean, label (not {a.steps!r})")
    from bench.common import RESULTS, cleaned_root, write_result
    from jobs.runtime.manifest import code_version

    root = a.root or cleaned_root(
        a.work_dir / f"vs-duckdb-{a.rows}", a.rows, a.days, END, a.work_dir / "logs"
    )
    previous = RESULTS / f"{RESULT}.json"
    doc = json.loads(previous.read_text()) if previous.exists() else {}
    steps = {k: doc[k] for k in ("clean", "label") if k in doc}
    for step in ("clean", "label"):  # clean first: label reads what it wrote
        if step not in steps_wanted:
            continue
        print(f"{step} vs its DuckDB twin on {root}: {a.rounds} rounds ...", flush=True)
        measure = measure_clean if step == "clean" else measure_label
        result = measure(root, a.days, a.rounds, a.work_dir)
        steps[step] = {
            "rows_target": a.rows if a.root is None else None,
            "days": a.days,
            # a run may measure one step and keep the other's figures: each says when and on what
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "code_version": code_version(),
            **result,
        }
        print(f"  {step}: {result['ratio']}x DuckDB, rows equal {result['rows_equal']}", flush=True)
    path = write_result(RESULT, steps)
    print(f"-> {path}")
    return 0 if all(steps[s]["rows_equal"] for s in steps_wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
