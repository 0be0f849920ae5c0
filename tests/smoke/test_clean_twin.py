"""The clean step against its DuckDB twin (``bench/vs_duckdb.py``): an independent SQL
implementation of the same rules must produce the same clean events, the same quarantine and
the same counts, row for row."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from bench.vs_duckdb import clean_rules, compare_clean, twin_clean
from jobs import clean
from tests.conftest import TEMPLATE_END, copy_root

pytestmark = pytest.mark.smoke

END = dt.date.fromisoformat(TEMPLATE_END)
# a phone number in full-width digits (Unicode Nd, which the scrubber counts as digits)
FULL_WIDTH_PHONE = "".join(chr(0xFF10 + int(d)) for d in "09012345678")


@pytest.fixture
def root(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy per test: the second test adds a raw file and cleans its day again."""
    return copy_root(trained_template, tmp_path_factory, "clean-twin")


def assert_twin_agrees(root: Path, config: clean.CleanConfig, days: int, out: Path) -> None:
    window = [END - dt.timedelta(days=k) for k in range(days)]
    totals = twin_clean(root, END, days, clean_rules(config), out)
    diff = compare_clean(root, out, window)
    for table in ("events", "quarantine"):
        assert diff[f"{table}_only_cartwheel"] == diff[f"{table}_only_twin"] == 0, diff
        assert diff[f"{table}_cartwheel_rows"] == diff[f"{table}_twin_rows"] > 0, diff
    manifest = json.loads((root / "_runs" / TEMPLATE_END / "clean.json").read_text())
    assert json.loads((out / "dispositions.json").read_text()) == manifest["per_day"]
    assert totals["kept"] == diff["events_twin_rows"]


def test_the_template_clean_events_equal_the_twins(root: Path, tmp_path: Path) -> None:
    # the template was cleaned with the default rules over its 8 days
    config = clean.CleanConfig(data_root=str(root), run_date=END, days=8)
    assert_twin_agrees(root, config, 8, tmp_path)


def _record(**fields: Any) -> str:
    return json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False)


def edge_lines(day: str) -> list[str]:
    """Lines the generator never writes: blank lines, a record without an event id, synonyms
    and an ignored type, every time format and the times that cannot be placed, bad quantities
    and prices, PII next to an ISO date and in full-width digits, an oversized query, a
    quarantined query with JSON escapes (its record is re-serialised), the log's own session
    ids, broken JSON holding a phone number, and a near-repeat search in other letter case."""
    t = f"{day}T10:00:00.000Z"
    return [
        "",
        "   ",
        _record(event_time=t, user_id="ue1", item_id="i0000001", event_type="PageView", price=10.0),
        _record(event_time=f"{day} 10:00:05", user_id="ue1", item_id="i0000001",
                event_type="add-to-cart", quantity=2),
        _record(event_id="ee3", event_time=day, user_id="ue1", item_id="i0000002",
                event_type="refund"),
        _record(event_id="ee4", event_time="2026", user_id="ue1", item_id="i0000002",
                event_type="view"),
        _record(event_id="ee5", event_time="0000000000", user_id="ue1", item_id="i0000002",
                event_type="view"),
        _record(event_id="ee6", event_time="1795262400", user_id="ue2", item_id="i0000003",
                event_type="view", quantity=2.5),
        _record(event_id="ee7", event_time=t, user_id="ue2", item_id="i0000003",
                event_type="purchase", quantity=0),
        _record(event_id="ee8", event_time=t, user_id="ue2", item_id="i0000003",
                event_type="purchase", price="abc"),
        _record(event_id="ee9", event_time=t, user_id="ue2", item_id="i0000003",
                event_type="purchase", price="NaN"),
        _record(event_id="ee10", event_time=f"{day}T11:00:00+09:00", user_id="ue3",
                event_type="search", query="Red Shoes jane.doe42@example.com"),
        _record(event_id="ee11", event_time=f"{day}T11:00:00.400+09:00", user_id="ue3",
                event_type="search", query="red shoes jane.doe42@example.com"),
        _record(event_id="ee12", event_time=f"{day}T12:00:00Z", user_id="ue3", event_type="search",
                query="call +44 20 7946 0018 before 2026-11-21 please"),
        _record(event_id="ee13", event_time=f"{day}T12:10:00Z", user_id="ue3", event_type="search",
                query=f"電話 {FULL_WIDTH_PHONE} café"),
        _record(event_id="ee14", event_time=f"{day}T12:20:00Z", user_id="ue3", event_type="search",
                query="x" * 1001),
        _record(event_id="ee15", event_time=f"{day}T12:30:00Z", user_id="", event_type="search",
                query='say "hi" to olga.berg7@mail.test'),
        _record(event_id="ee16", event_time=f"{day}T12:40:00Z", user_id="ue4", item_id="i0000004",
                event_type="click", session_id="s-42"),
        _record(event_id="ee17", event_time=f"{day}T23:59:59Z", user_id="ue4",
                item_id="zzz-unknown", event_type="click", session_id=" "),
        _record(event_id="ee18", event_time=f"{day}T12:41:00Z", user_id="ue4", item_id="i0000004",
                event_type="hover"),
        '{"event_id":"ee19","user_id":"ue5","event_time":"' + t + '","item_id":"i1", "price": 3',
        '{"event_id":"ee20","user_id":"ue5 +1 555 123 4567 x","event_time":"' + t + '","event_',
        _record(event_id="ee21", event_time="1795262400123", user_id="ue5", item_id="i0000005",
                event_type="buy", price=1e7 + 0.5),
    ]  # fmt: skip


def test_edge_cases_equal_the_twins(spark: SparkSession, root: Path, tmp_path: Path) -> None:
    raw = root / "raw" / "events" / f"dt={END}" / "edge.json.gz"
    with gzip.open(raw, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(edge_lines(TEMPLATE_END)) + "\n")
    config = clean.CleanConfig(data_root=str(root), run_date=END, days=1, max_query_chars=1000)
    result = clean.main(spark, config)
    assert result.succeeded, result.manifest.get("error")
    # the edge file's defects (the generator writes none of these)
    quarantined, filtered = (
        result.manifest["rows_quarantined_by_reason"],
        result.manifest["rows_filtered"],
    )
    assert (quarantined["oversized_query"], quarantined["invalid_quantity"]) == (1, 2)
    assert (filtered["blank_line"], filtered["ignored_event_type"]) == (2, 1)
    assert_twin_agrees(root, config, 1, tmp_path / "twin")
    kept = {
        r["event_id"]: r["query"]
        for r in spark.read.parquet(str(tmp_path / "twin" / "events")).collect()
        if r["user_id"] == "ue3"
    }
    assert kept["ee12"] == "call [phone] before 2026-11-21 please"
    assert kept["ee13"] == "電話 [phone] café"


def test_a_difference_is_found(root: Path, tmp_path: Path) -> None:
    """The comparison can fail: one clean event changed in the twin's output is reported on
    both sides."""
    import duckdb

    config = clean.CleanConfig(data_root=str(root), run_date=END, days=1)
    twin_clean(root, END, 1, clean_rules(config), tmp_path / "twin")
    part = tmp_path / "twin" / "events" / f"dt={END}"
    files = sorted(part.glob("*.parquet"))
    changed = tmp_path / "changed.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 1 THEN 'other' ELSE session_id "
        f"END AS session_id) FROM read_parquet({[str(f) for f in files]!r}, hive_partitioning = false)) "
        f"TO '{changed}'"
    )
    shutil.rmtree(part)
    part.mkdir()
    shutil.move(changed, part / "data.parquet")
    diff = compare_clean(root, tmp_path / "twin", [END])
    assert diff["events_only_cartwheel"] == diff["events_only_twin"] == 1, diff


def test_the_twin_names_what_it_cannot_read(tmp_path: Path) -> None:
    """No raw events for the window, or a raw file that is not JSON lines: the twin stops with
    a message naming the folder or the file, before it writes anything."""
    rules = clean_rules(clean.CleanConfig(data_root=str(tmp_path), run_date=END, days=1))
    with pytest.raises(SystemExit, match=r"no raw events under .*raw/events"):
        twin_clean(tmp_path, END, 1, rules, tmp_path / "out")
    day = tmp_path / "raw" / "events" / f"dt={END}"
    day.mkdir(parents=True)
    (day / "export.csv").write_text("e1,2026-11-21T10:00:00Z,u1,i1,view,,,,\n")
    with pytest.raises(SystemExit, match=r"JSON lines only, not .*export\.csv"):
        twin_clean(tmp_path, END, 1, rules, tmp_path / "out")
    assert not (tmp_path / "out").exists()
