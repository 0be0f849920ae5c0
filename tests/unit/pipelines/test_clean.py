"""Every clean rule on a few hand-made raw lines."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines import clean as C
from pipelines import schemas as S
from pipelines.errors import ConfigError
from tests.helpers import CSV_FILE, DAY, catalog, event, lines

pytestmark = pytest.mark.unit


def label(spark: SparkSession, raw: DataFrame, rules: C.CleanRules | None = None) -> DataFrame:
    return C.compact_labeled(C.label_events(raw, catalog(spark), rules or C.CleanRules()))


def reasons(labeled: DataFrame) -> dict[str, str | None]:
    """event id (or the raw line, for rows without one) -> reason."""
    rows = labeled.select(F.coalesce("event_id", "raw_record").alias("k"), "reason").collect()
    return {r["k"]: r["reason"] for r in rows}


def kept(labeled: DataFrame) -> list[dict]:
    return [r.asDict() for r in C.clean_events(labeled).orderBy("event_time", "event_id").collect()]


# -- parsing and normalising --------------------------------------------------------------------


def test_valid_line_becomes_the_contract_row_in_utc(spark: SparkSession) -> None:
    raw = lines(
        spark, event(event_time="2026-11-20T13:45:12.345+05:30", event_type="pv", quantity=None)
    )
    out = C.clean_events(label(spark, raw))
    expected = spark.createDataFrame(
        [
            (
                "e1",
                "u1",
                "i1",
                "view",
                dt.datetime(2026, 11, 20, 8, 15, 12, 345000),
                "u1-20261120-1",
                9.5,
                None,
                None,
                "shoes",
                True,
                DAY,
            )
        ],
        S.CLEAN_EVENTS.schema,
    )
    assertDataFrameEqual(out, expected)


def one_line_per_case(spark: SparkSession, field: str, values: list, **fields: object) -> DataFrame:
    """Labeled rows of one line per value of ``field``: event id ``c<n>`` for the n-th value,
    each by its own user (so no row-set rule links them). One Spark run checks every variant
    of a rule; a failing assertion names the case by its event id."""
    return label(
        spark,
        lines(
            spark,
            *[
                event(**{"event_id": f"c{n}", "user_id": f"u{n}", **fields, field: v})
                for n, v in enumerate(values)
            ],
        ),
    )


def case_reasons(spark: SparkSession, field: str, values: list, **fields: object) -> dict:
    """value -> reason, for one line per value (see ``one_line_per_case``)."""
    got = reasons(one_line_per_case(spark, field, values, **fields))
    return {v: got[f"c{n}"] for n, v in enumerate(values)}


def test_timestamp_formats_normalise_to_utc(spark: SparkSession) -> None:
    expected = {
        "1795168800": dt.datetime(2026, 11, 20, 10, 0, 0),
        "1795168800123": dt.datetime(2026, 11, 20, 10, 0, 0, 123000),
        "2026-11-20 10:00:00": dt.datetime(2026, 11, 20, 10, 0, 0),
        "2026-11-20T05:00:00-05:00": dt.datetime(2026, 11, 20, 10, 0, 0),
    }
    labeled = one_line_per_case(spark, "event_time", list(expected))
    got = {r["event_id"]: r["event_time"] for r in kept(labeled)}
    assert {t: got.get(f"c{n}") for n, t in enumerate(expected)} == expected


def test_event_type_synonyms_map_to_canonical_types(spark: SparkSession) -> None:
    raw = lines(
        spark,
        *[
            event(
                event_id=f"e{i}",
                event_time=f"2026-11-20T10:0{i}:00Z",
                event_type=t,
                item_id=f"i{i}",
            )
            for i, t in enumerate(["pv", "buy", "add_to_cart", "fav", " View ", "CLICK"])
        ],
    )
    assert [r["event_type"] for r in kept(label(spark, raw))] == [
        "view",
        "purchase",
        "cart",
        "cart",
        "view",
        "click",
    ]


def test_csv_line_parses_like_the_json_line(spark: SparkSession) -> None:
    csv = "e1,2026-11-20T10:00:00Z,u1,i1,view,,9.5,,"
    from_csv = kept(label(spark, lines(spark, csv, source_file=CSV_FILE)))
    from_json = kept(label(spark, lines(spark, event())))
    assert from_csv == from_json and len(from_csv) == 1


def test_log_session_id_is_kept(spark: SparkSession) -> None:
    rows = kept(label(spark, lines(spark, event(session_id="invoice-17"))))
    assert [r["session_id"] for r in rows] == ["invoice-17"]


def test_missing_event_id_is_derived_from_content(spark: SparkSession) -> None:
    a = kept(label(spark, lines(spark, event(event_id=None))))
    b = kept(label(spark, lines(spark, event(event_id=None))))
    assert a[0]["event_id"] == b[0]["event_id"] and len(a[0]["event_id"]) == 32


# -- quarantine reasons -------------------------------------------------------------------------


def test_malformed_json_is_quarantined_with_its_original_text(spark: SparkSession) -> None:
    broken = event()[:-3]
    out = C.quarantined_events(label(spark, lines(spark, broken, event(event_id="ok"))))
    expected = spark.createDataFrame(
        [(broken, C.MALFORMED_RECORD, DAY.isoformat())],
        "raw_record string, reason string, d string",
    )
    assertDataFrameEqual(
        out.select("raw_record", "reason", F.col("dt").cast("string").alias("d")), expected
    )


def test_csv_with_wrong_field_count_is_malformed(spark: SparkSession) -> None:
    raw = lines(
        spark,
        "e1,2026-11-20T10:00:00Z,u1",
        "e2,2026-11-20T10:00:00Z,u1,i1,view,,9.5,,,extra",
        source_file=CSV_FILE,
    )
    assert set(reasons(label(spark, raw)).values()) == {C.MALFORMED_RECORD}


def test_missing_user_id_is_quarantined(spark: SparkSession) -> None:
    raw = lines(
        spark, *[event(event_id=f"c{n}", user_id=u) for n, u in enumerate([None, "", "   "])]
    )
    assert reasons(label(spark, raw)) == {f"c{n}": C.MISSING_ID for n in range(3)}


def test_missing_item_id_on_a_view_is_quarantined(spark: SparkSession) -> None:
    assert reasons(label(spark, lines(spark, event(item_id=" ")))) == {"e1": C.MISSING_ID}


def test_search_without_item_is_kept(spark: SparkSession) -> None:
    rows = kept(
        label(
            spark,
            lines(spark, event(event_type="search", item_id=None, price=None, query="red shoes")),
        )
    )
    assert [(r["event_type"], r["item_id"], r["query"], r["is_known_item"]) for r in rows] == [
        ("search", None, "red shoes", None)
    ]


def test_unknown_event_type_is_quarantined(spark: SparkSession) -> None:
    values = ["hover", "", None]
    assert case_reasons(spark, "event_type", values) == dict.fromkeys(values, C.UNKNOWN_EVENT_TYPE)


def test_unparseable_timestamp_is_quarantined(spark: SparkSession) -> None:
    values = [
        "yesterday",
        "2026-02-30T25:61:00Z",
        "",
        None,
        "13/45/2026 10:00",
        # Spark reads these as Jan 1st, 1970 and today's date: none says when the event was
        "2026",
        "2026-11",
        "0000000000",
        "10:00:00",
    ]
    assert case_reasons(spark, "event_time", values) == dict.fromkeys(
        values, C.UNPARSEABLE_TIMESTAMP
    )


def test_future_timestamp_beyond_the_skew_is_quarantined_within_it_kept(
    spark: SparkSession,
) -> None:
    raw = lines(
        spark,
        event(event_id="late-ok", event_time="2026-11-21T00:59:00Z"),
        event(event_id="future", event_time="2026-11-21T01:01:00Z", item_id="i2"),
    )
    assert reasons(label(spark, raw)) == {"late-ok": None, "future": C.FUTURE_TIMESTAMP}


def test_invalid_price_is_quarantined(spark: SparkSession) -> None:
    values = [-0.01, 1e7, "abc", "NaN"]
    assert case_reasons(spark, "price", values) == dict.fromkeys(values, C.INVALID_PRICE)


def test_null_and_zero_prices_are_valid(spark: SparkSession) -> None:
    raw = lines(spark, event(event_id="a", price=None), event(event_id="b", price=0, item_id="i2"))
    assert reasons(label(spark, raw)) == {"a": None, "b": None}


def test_invalid_quantity_is_quarantined(spark: SparkSession) -> None:
    values = [0, -3, 1.5, 80995, "two"]
    assert case_reasons(spark, "quantity", values) == dict.fromkeys(values, C.INVALID_QUANTITY)


def test_first_applicable_reason_wins(spark: SparkSession) -> None:
    raw = lines(
        spark,
        event(event_id="a", user_id="", event_type="hover", event_time="bad"),
        event(event_id="b", event_type="hover", event_time="bad", price=-1),
        event(event_id="c", event_time="bad", price=-1),
        event(event_id="d", price=-1, quantity=0),
        event(event_id="e", user_id="", event_type="cancel"),
        event(event_id="f", event_type="cancel", event_time="bad"),
    )
    assert reasons(label(spark, raw)) == {
        "a": C.MISSING_ID,
        "b": C.UNKNOWN_EVENT_TYPE,
        "c": C.UNPARSEABLE_TIMESTAMP,
        "d": C.INVALID_PRICE,
        "e": C.MISSING_ID,
        "f": C.IGNORED_EVENT_TYPE,
    }


# -- filters ------------------------------------------------------------------------------------


def test_blank_line_is_filtered(spark: SparkSession) -> None:
    labeled = label(spark, lines(spark, "", "   "))
    assert [(r["disposition"], r["rows"]) for r in C.disposition_counts(labeled).collect()] == [
        (C.BLANK_LINE, 2)
    ]


def test_ignored_event_type_is_filtered(spark: SparkSession) -> None:
    assert reasons(label(spark, lines(spark, event(event_type="Cancel", quantity=-2)))) == {
        "e1": C.IGNORED_EVENT_TYPE
    }


def test_exact_duplicate_keeps_one_copy(spark: SparkSession) -> None:
    labeled = label(spark, lines(spark, event(), event(), event()))
    counts = {r["reason"]: r["count"] for r in labeled.groupBy("reason").count().collect()}
    assert counts == {None: 1, C.EXACT_DUPLICATE: 2}


def test_same_record_with_keys_in_another_order_is_a_duplicate(spark: SparkSession) -> None:
    reordered = '{"price": 9.5, "event_type": "view", "item_id": "i1", "user_id": "u1", "event_time": "2026-11-20T10:00:00Z", "event_id": "e1"}'
    labeled = label(spark, lines(spark, event(), reordered))
    assert sorted(str(r["reason"]) for r in labeled.collect()) == ["None", C.EXACT_DUPLICATE]


def test_a_field_moved_or_blanked_is_not_the_same_record(spark: SparkSession) -> None:
    """The record key hashes which raw fields are null: a value in another field, or an empty
    field instead of a missing one, is another record, not a duplicate."""
    raw = lines(
        spark,
        event(event_id="s", event_type="search", item_id=None, price=None, query="x"),
        event(event_id="s", event_type="search", item_id="x", price=None, query=None),
        event(
            event_id="s", event_type="search", item_id=None, price=None, query="x", session_id=""
        ),
    )
    labeled = label(spark, raw)
    got = {(r["item_id"], r["reason"]) for r in labeled.collect()}
    # the item "x" is another action; the empty session id makes another record of the same
    # action at the same time: a double fire, not an exact duplicate
    assert got == {(None, None), ("x", None), (None, C.DOUBLE_FIRE)}


def test_the_first_file_keeps_a_duplicated_record(spark: SparkSession) -> None:
    a, b = "file:/raw/events/dt=2026-11-20/a.json", "file:/raw/events/dt=2026-11-20/b.json"
    raw = lines(spark, event(), source_file=b).union(lines(spark, event(), source_file=a))
    got = {r["source_file"]: r["reason"] for r in label(spark, raw).collect()}
    assert got == {a: None, b: C.EXACT_DUPLICATE}


def test_double_fire_within_a_second_is_filtered(spark: SparkSession) -> None:
    raw = lines(
        spark,
        event(event_id="a", event_time="2026-11-20T10:00:00.000Z"),
        event(event_id="b", event_time="2026-11-20T10:00:00.400Z"),
        event(event_id="c", event_time="2026-11-20T10:00:00.800Z"),
        event(event_id="d", event_time="2026-11-20T10:00:02.000Z"),
        event(event_id="e", event_time="2026-11-20T10:00:02.500Z", event_type="click"),
    )
    assert reasons(label(spark, raw)) == {
        "a": None,
        "b": C.DOUBLE_FIRE,
        "c": C.DOUBLE_FIRE,
        "d": None,
        "e": None,
    }


def test_search_double_fire_is_keyed_by_query(spark: SparkSession) -> None:
    def search(eid: str, t: str, q: str) -> str:
        return event(
            event_id=eid, event_type="search", item_id=None, price=None, query=q, event_time=t
        )

    raw = lines(
        spark,
        search("a", "2026-11-20T10:00:00.0Z", "red shoes"),
        search("b", "2026-11-20T10:00:00.3Z", "Red Shoes"),
        search("c", "2026-11-20T10:00:00.5Z", "blue hats"),
    )
    assert reasons(label(spark, raw)) == {"a": None, "b": C.DOUBLE_FIRE, "c": None}


def test_bot_over_the_minute_rate_is_filtered_whole_day(spark: SparkSession) -> None:
    burst = [
        event(
            event_id=f"b{i}",
            user_id="bot",
            item_id=f"i{i}",
            event_time=f"2026-11-20T10:00:{i:02d}Z",
        )
        for i in range(45)
    ]
    calm = [event(event_id="bot-later", user_id="bot", event_time="2026-11-20T18:00:00Z")]
    human = [
        event(
            event_id=f"h{i}", user_id="human", item_id=f"i{i}", event_time=f"2026-11-20T10:0{i}:00Z"
        )
        for i in range(5)
    ]
    got = reasons(label(spark, lines(spark, *burst, *calm, *human)))
    assert {k for k, v in got.items() if v == C.BOT_USER} == {f"b{i}" for i in range(45)} | {
        "bot-later"
    }
    assert all(got[f"h{i}"] is None for i in range(5))


def test_the_minute_rate_counts_each_minute_on_its_own(spark: SparkSession) -> None:
    rules = C.CleanRules(bot_max_events_per_minute=3, bot_max_events_per_day=0)
    at = ["10:00:05", "10:00:40", "10:00:59", "10:01:00", "10:01:30", "10:01:31"]
    busy = [
        event(event_id=f"b{i}", item_id=f"i{i}", event_time=f"2026-11-20T{t}Z")
        for i, t in enumerate(at)
    ]  # 3 in 10:00 and 3 in 10:01: at the limit, never over it
    over = [
        event(event_id=f"o{i}", user_id="u2", item_id=f"i{i}", event_time=f"2026-11-20T11:05:{i}0Z")
        for i in range(4)
    ]  # 4 in 11:05
    got = reasons(label(spark, lines(spark, *busy, *over), rules))
    assert got == {**{f"b{i}": None for i in range(6)}, **{f"o{i}": C.BOT_USER for i in range(4)}}


def test_the_user_day_rules_sort_the_rows_twice(spark: SparkSession) -> None:
    """Bots, exact duplicates, double fires and sessions: two sorts of the user-day's rows
    after the one shuffle (exact duplicates and double fires share one, the bot rule's counts
    and the sessions the other)."""
    rules = C.CleanRules()
    ruled = (
        lines(spark, event(), event(event_id="e2"))
        .transform(C.parse_raw_lines)
        .transform(lambda df: C.assign_record_reasons(df, rules))
        .transform(C.by_user_day)
        .transform(lambda df: C.flag_duplicates(df, rules))
        .transform(lambda df: C.flag_bots(df, rules))
        .transform(lambda df: C.assign_sessions(df, rules))
    )
    plan = ruled._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Sort [") == 2 and plan.count("Exchange ") == 1, plan
    assert plan.count("Window [") == 6, plan


def test_the_bot_rule_counts_and_overrides_duplicates(spark: SparkSession) -> None:
    """The bot rule comes first: it counts the rows the later rules would drop, and a bot's
    duplicates and double fires are bot_user, not exact_duplicate or double_fire."""
    rules = C.CleanRules(bot_max_events_per_minute=0, bot_max_events_per_day=3)
    bot = [
        event(user_id="bot"),
        event(user_id="bot"),  # an exact duplicate of the first
        event(event_id="b2", user_id="bot", event_time="2026-11-20T10:00:00.300Z"),  # re-fire
        event(event_id="b3", user_id="bot", item_id="i3", event_time="2026-11-20T12:00:00Z"),
    ]  # 4 rows over the day's 3, though only 2 would survive the duplicate rules
    human = [event(user_id="human"), event(user_id="human")]
    labeled = label(spark, lines(spark, *bot, *human), rules)
    got = sorted((r["user_id"], str(r["reason"])) for r in labeled.collect())
    assert got == sorted(
        [*[("bot", C.BOT_USER)] * 4, ("human", C.EXACT_DUPLICATE), ("human", "None")]
    )


def test_bot_over_the_day_rate_is_filtered(spark: SparkSession) -> None:
    rules = C.CleanRules(bot_max_events_per_minute=0, bot_max_events_per_day=3)
    raw = lines(
        spark,
        *[
            event(event_id=f"e{i}", item_id=f"i{i}", event_time=f"2026-11-20T1{i}:00:00Z")
            for i in range(4)
        ],
    )
    assert set(reasons(label(spark, raw, rules)).values()) == {C.BOT_USER}


def test_bot_rule_can_be_switched_off(spark: SparkSession) -> None:
    rules = C.CleanRules(bot_max_events_per_minute=0, bot_max_events_per_day=0)
    burst = [
        event(event_id=f"b{i}", item_id=f"i{i}", event_time=f"2026-11-20T10:00:{i:02d}Z")
        for i in range(50)
    ]
    assert set(reasons(label(spark, lines(spark, *burst), rules)).values()) == {None}


# -- sessions, PII, catalog ---------------------------------------------------------------------


def test_sessions_split_at_thirty_minutes_of_inactivity(spark: SparkSession) -> None:
    raw = lines(
        spark,
        event(event_id="a", event_time="2026-11-20T10:00:00Z"),
        event(event_id="b", event_time="2026-11-20T10:29:00Z", item_id="i2"),
        event(event_id="c", event_time="2026-11-20T11:00:00Z"),
        event(event_id="d", event_time="2026-11-20T11:00:00Z", user_id="u2"),
    )
    assert {r["event_id"]: r["session_id"] for r in kept(label(spark, raw))} == {
        "a": "u1-20261120-1",
        "b": "u1-20261120-1",
        "c": "u1-20261120-2",
        "d": "u2-20261120-1",
    }


def test_session_gaps_skip_the_rows_other_rules_dropped(spark: SparkSession) -> None:
    """A quarantined row, a double fire and a duplicate between two kept events do not bridge
    their gap: 40 minutes between the kept rows start a new session."""
    raw = lines(
        spark,
        event(event_id="a", event_time="2026-11-20T10:00:00Z"),
        event(event_id="q", event_time="2026-11-20T10:20:00Z", price=-1),  # invalid_price
        event(event_id="b", event_time="2026-11-20T10:40:00Z", item_id="i2"),
        event(event_id="b", event_time="2026-11-20T10:40:00Z", item_id="i2"),  # duplicate
        event(event_id="f", event_time="2026-11-20T10:40:00.5Z", item_id="i2"),  # double fire
        event(event_id="c", event_time="2026-11-20T11:20:00Z", item_id="i3"),
    )
    labeled = label(spark, raw)
    assert {r["event_id"]: r["session_id"] for r in kept(labeled)} == {
        "a": "u1-20261120-1",
        "b": "u1-20261120-2",
        "c": "u1-20261120-3",
    }


def test_pii_is_scrubbed_from_queries(spark: SparkSession) -> None:
    def search(eid: str, q: str, minute: int) -> str:
        return event(
            event_id=eid,
            event_type="search",
            item_id=None,
            price=None,
            query=q,
            event_time=f"2026-11-20T10:{minute:02d}:00Z",
        )

    raw = lines(
        spark,
        search("a", "red shoes jane.doe42@example.com", 1),
        search("b", "call +44 20 7946 0958 about boots", 2),
        search("c", "(555) 123-4567", 3),
        search("d", "blue hats", 4),
    )
    got = {r["event_id"]: r["query"] for r in kept(label(spark, raw))}
    assert got == {
        "a": "red shoes [email]",
        "b": "call [phone] about boots",
        "c": "[phone]",
        "d": "blue hats",
    }
    scrubbed = label(spark, raw).where("pii_scrubbed").select("event_id").collect()
    assert sorted(r[0] for r in scrubbed) == ["a", "b", "c"]


def _search(eid: str, q: str, minute: int = 1, **fields: object) -> str:
    record: dict[str, object] = {
        "event_id": eid,
        "event_type": "search",
        "item_id": None,
        "price": None,
        "query": q,
        "event_time": f"2026-11-20T10:{minute:02d}:00Z",
    }
    return event(**{**record, **fields})


def test_pii_variants_are_scrubbed_from_queries(spark: SparkSession) -> None:
    expected = {
        "call +44\u00a020\u00a07946\u00a00958 now": "call [phone] now",
        "555 - 123 - 4567": "[phone]",
        "030/1234567 berlin": "[phone] berlin",
        "\uff10\uff13\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17": "[phone]",
        "card 4111 1111 1111 1111 ok": "card [phone] ok",
        "write jane@ex\u00e4mple.de": "write [email]",
        "m\u00fcller.j+shop@example.co.uk boots": "[email] boots",
        "shoes size 42 from 2026-11-20": "shoes size 42 from 2026-11-20",
    }
    raw = lines(spark, *[_search(f"c{n}", q, user_id=f"u{n}") for n, q in enumerate(expected)])
    got = {r["event_id"]: r["query"] for r in kept(label(spark, raw))}
    assert {q: got.get(f"c{n}") for n, q in enumerate(expected)} == expected


def test_scrubbing_long_adversarial_text_finds_the_pii_at_its_end(spark: SparkSession) -> None:
    # 200k characters that every e-mail/phone start position could scan to the end: with the
    # old patterns this took minutes per match (quadratic); the result is what is checked here.
    noise = "a." * 50_000 + "1234567 x " * 10_000  # 7-digit runs: not a phone number
    rules = C.CleanRules(max_query_chars=300_000)
    raw = lines(spark, _search("a", noise + "x@example.com +44 20 7946 0958"))
    (row,) = kept(label(spark, raw, rules))
    assert row["query"].endswith("[email] [phone]")
    assert len(row["query"]) == len(noise) + len("[email] [phone]")


def test_oversized_query_is_quarantined_and_its_record_truncated(spark: SparkSession) -> None:
    huge = "shoes " * 20_000 + "secret.person@example.com"
    raw = lines(spark, _search("big", huge), _search("ok", "red shoes", minute=2))
    labeled = label(spark, raw)
    assert reasons(labeled) == {"big": C.OVERSIZED_QUERY, "ok": None}
    (q,) = C.quarantined_events(labeled).collect()
    assert q["reason"] == C.OVERSIZED_QUERY
    assert len(q["raw_record"]) < C.MAX_QUARANTINE_RECORD_CHARS + 100
    assert q["raw_record"].endswith(f"...[truncated: {len(raw.first()['value'])} chars]")
    assert "secret.person" not in q["raw_record"]


def test_quarantined_record_is_scrubbed_of_pii_and_keeps_its_other_fields(
    spark: SparkSession,
) -> None:
    q = "mail me at secret.person+x@example.com or +44 20 7946 0958"
    raw = lines(
        spark,
        _search("neg", q, price="-5"),  # invalid_price: quarantined with its query
        _search("neg2", "card 4111-1111-1111-1111", minute=2, price="-5"),
        '{"event_id": "bad", "query": "jane.doe@example.com 555 123 4567", "event_time": '
        '"2026-11-20T10:00:00Z"',  # malformed: scrubbed whole
    )
    quarantined = {r["raw_record"] for r in C.quarantined_events(label(spark, raw)).collect()}
    assert quarantined == {
        _search("neg", "mail me at [email] or [phone]", price="-5"),
        _search("neg2", "card [phone]", minute=2, price="-5"),
        '{"event_id": "bad", "query": "[email] [phone]", "event_time": "2026-11-20T10:00:00Z"',
    }


def test_quarantined_record_with_an_escaped_query_is_reserialised_scrubbed(
    spark: SparkSession,
) -> None:
    # The JSON text spells the query with escapes, so it is not found verbatim in the line.
    line = (
        '{"event_id": "x", "event_type": "search", "user_id": "u1", "price": "-5", '
        '"event_time": "2026-11-20T10:00:00Z", "query": "jane\\u0040example.com \\"hi\\""}'
    )
    (q,) = C.quarantined_events(label(spark, lines(spark, line))).collect()
    assert "jane" not in q["raw_record"] and "[email]" in q["raw_record"]
    assert '"price":"-5"' in q["raw_record"]


def test_unknown_item_is_flagged_and_kept(spark: SparkSession) -> None:
    raw = lines(spark, event(event_id="a"), event(event_id="b", item_id="nope"))
    got = {r["event_id"]: (r["is_known_item"], r["category"]) for r in kept(label(spark, raw))}
    assert got == {"a": (True, "shoes"), "b": (False, None)}


# -- conservation and independence --------------------------------------------------------------


def test_every_line_gets_exactly_one_disposition(spark: SparkSession) -> None:
    raw = lines(
        spark,
        event(),
        event(),
        "",
        event(event_id="x")[:-1],
        event(event_id="y", user_id=""),
        event(event_id="z", event_time="2026-11-20T10:00:00.2Z"),
    )
    labeled = label(spark, raw)
    counts = {r["disposition"]: r["rows"] for r in C.disposition_counts(labeled).collect()}
    assert sum(counts.values()) == raw.count() == 6
    assert counts == {
        C.KEPT: 1,
        C.EXACT_DUPLICATE: 1,
        C.BLANK_LINE: 1,
        C.MALFORMED_RECORD: 1,
        C.MISSING_ID: 1,
        C.DOUBLE_FIRE: 1,
    }


def test_a_day_cleans_the_same_alone_or_with_its_neighbours(spark: SparkSession) -> None:
    day1 = lines(
        spark, event(event_id="a"), event(event_id="a2", event_time="2026-11-20T10:00:00.5Z")
    )
    next_day = dt.date(2026, 11, 21)
    day2 = lines(spark, event(event_id="b", event_time="2026-11-21T00:00:00.1Z"), day=next_day)
    alone = C.clean_events(label(spark, day1))
    together = C.clean_events(label(spark, day1.unionByName(day2))).where(F.col("dt") == DAY)
    assertDataFrameEqual(alone, together)


def test_rules_reject_invalid_values() -> None:
    with pytest.raises(ConfigError, match="bot_max_events_per_minute"):
        C.CleanRules(bot_max_events_per_minute=-1)
    with pytest.raises(ConfigError, match="session_gap_minutes"):
        C.CleanRules(session_gap_minutes=0)
    with pytest.raises(ConfigError, match="event_type_synonyms"):
        C.CleanRules(event_type_synonyms={"tap": "touch"})
    with pytest.raises(ConfigError, match="ignored_event_types"):
        C.CleanRules(ignored_event_types=("view",))
