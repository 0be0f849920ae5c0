"""generate -> clean end to end: the clean step finds exactly what the generator injected."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import clean, cli, generate
from jobs.runtime.manifest import RunResult
from pipelines import clean as C
from pipelines import generate as G
from pipelines import schemas as S
from tests.conftest import copy_root

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)
DAYS = [END - dt.timedelta(days=n) for n in range(7, -1, -1)]  # the template's 8 days


@pytest.fixture(scope="module")
def pipeline_run(
    trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, RunResult, RunResult]:
    """A copy of the session's template root (generated, then cleaned over all its 8 days; see
    ``trained_template``) with its generate and clean results."""
    root = copy_root(trained_template, tmp_path_factory, "smoke")
    results = []
    for step in ("generate", "clean"):
        path = root / "_runs" / END.isoformat() / f"{step}.json"
        manifest = json.loads(path.read_text())
        results.append(RunResult(step, manifest["status"], manifest, str(path)))
    assert results[1].manifest["days"] == [d.isoformat() for d in DAYS]
    return str(root), results[0], results[1]


def found_by_clean(manifest: dict) -> dict[str, int]:
    return {
        **manifest["rows_quarantined_by_reason"],
        **manifest["rows_filtered"],
        G.UNKNOWN_ITEM: manifest["quality"]["unknown_items"],
        G.PII_QUERY: manifest["quality"]["pii_scrubbed"],
    }


def assert_reconciles(gen: dict, cln: dict) -> None:
    injected = gen["injected"]
    found = found_by_clean(cln)
    assert all(v > 0 for v in injected.values()), injected
    assert {k: found[k] for k in injected} == injected
    # nothing else was quarantined or filtered, and every natural row survived
    assert sum(cln["rows_quarantined_by_reason"].values()) + sum(
        cln["rows_filtered"].values()
    ) == sum(v for k, v in injected.items() if k not in G.MODIFICATIONS)
    assert cln["rows_in"] == gen["raw_rows"]
    assert cln["rows_out"] == gen["natural_rows"]
    assert cln["quality"]["sessions"] == gen["sessions"]


def test_clean_finds_exactly_what_generate_injected(
    pipeline_run: tuple[str, RunResult, RunResult],
) -> None:
    _, gen, cln = pipeline_run
    assert gen.succeeded and cln.succeeded
    assert_reconciles(gen.manifest, cln.manifest)


def test_rows_are_conserved_per_day(pipeline_run: tuple[str, RunResult, RunResult]) -> None:
    _, gen, cln = pipeline_run
    m = cln.manifest
    assert m["rows_in"] == m["rows_out"] + m["rows_quarantined"] + sum(m["rows_filtered"].values())
    per_day_in = {day: sum(counts.values()) for day, counts in m["per_day"].items()}
    assert per_day_in == gen.manifest["rows_by_day"]


def test_outputs_follow_their_contracts(
    spark: SparkSession, pipeline_run: tuple[str, RunResult, RunResult]
) -> None:
    root, _, cln = pipeline_run
    events = spark.read.parquet(f"{root}/clean/events")
    quarantine = spark.read.parquet(f"{root}/quarantine/events")
    assert [(f.name, f.dataType) for f in events.schema] == [
        (f.name, f.dataType) for f in S.CLEAN_EVENTS.schema
    ]
    assert [(f.name, f.dataType) for f in quarantine.schema] == [
        (f.name, f.dataType) for f in S.QUARANTINE.schema
    ]
    assert events.count() == cln.manifest["rows_out"]
    assert quarantine.count() == cln.manifest["rows_quarantined"]
    assert quarantine.where(F.col("raw_record").isNull()).count() == 0
    assert sorted(r[0].isoformat() for r in events.select("dt").distinct().collect()) == [
        d.isoformat() for d in DAYS
    ]
    # every kept row is typed and canonical
    bad = events.where(
        F.col("event_time").isNull()
        | ~F.col("event_type").isin(*S.CANONICAL_EVENT_TYPES)
        | F.col("session_id").isNull()
    )
    assert bad.count() == 0
    assert not os.listdir(f"{root}/_staging")


def test_quality_report_is_written(pipeline_run: tuple[str, RunResult, RunResult]) -> None:
    root, _, cln = pipeline_run
    report = json.loads(Path(f"{root}/reports/dt={END}/clean_quality.json").read_text())
    assert report["rows_in"] == cln.manifest["rows_in"]
    assert sum(report["kept_by_event_type"].values()) == report["rows_kept"]
    assert set(report["null_rates"]) == {"item_id", "price", "quantity", "query", "category"}
    assert 0 < report["null_rates"]["query"] < 1


def test_rerunning_a_date_replaces_only_that_date(
    spark: SparkSession, pipeline_run: tuple[str, RunResult, RunResult]
) -> None:
    root, _, first = pipeline_run
    middle = DAYS[1]
    before = {d: sorted(os.listdir(f"{root}/clean/events/dt={d}")) for d in DAYS}
    snapshot = spark.read.parquet(f"{root}/clean/events/dt={middle}").collect()
    again = clean.main(spark, clean.CleanConfig(data_root=root, run_date=middle, days=1))
    after = {d: sorted(os.listdir(f"{root}/clean/events/dt={d}")) for d in DAYS}
    # the other days' files were not touched; the re-run day has new files with the same rows
    assert {d: after[d] for d in DAYS if d != middle} == {d: before[d] for d in DAYS if d != middle}
    assert after[middle] != before[middle]
    rerun = spark.read.parquet(f"{root}/clean/events/dt={middle}")
    assert sorted(map(tuple, rerun.collect())) == sorted(map(tuple, snapshot))
    assert (
        again.manifest["per_day"][middle.isoformat()]
        == first.manifest["per_day"][middle.isoformat()]
    )


def test_csv_logs_reconcile_too(spark: SparkSession, tmp_path: Path) -> None:
    root = str(tmp_path / "csv")
    gen = generate.main(
        spark,
        generate.GenerateConfig(
            data_root=root, end_date=END, days=1, rows=8_000, seed=9, output_format="csv"
        ),
    )
    files = os.listdir(f"{root}/raw/events/dt={END}")
    assert files and all(f.endswith(".csv.gz") for f in files if not f.startswith("."))
    cln = clean.main(spark, clean.CleanConfig(data_root=root, run_date=END))
    assert_reconciles(gen.manifest, cln.manifest)


def test_console_script_runs_a_step_and_reports_failure(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The installed `cartwheel` entry point dispatches to a step's own parser (its own process,
    exit 0, no JVM needed for --help); ``jobs.cli.main`` runs a step (exit 0) and reports bad
    input (exit 1 with a message), in this process on the test's session. The installed entry
    point is also run in its own process (and refused, exit 3) by the nightly lock test."""
    exe = Path(sys.executable).parent / "cartwheel"
    helped = subprocess.run(
        [str(exe), "generate", "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "--end-date" in helped.stdout and "--rows" in helped.stdout
    unknown = subprocess.run([str(exe), "bogus"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown step 'bogus'" in unknown.stderr
    root = tmp_path / "cli"
    capsys.readouterr()
    code = cli.main(
        ["generate", "--data-root", str(root), "--end-date", "2026-11-21", "--days", "1",
         "--rows", "2000"]
    )  # fmt: skip
    assert code == 0
    assert "generated" in capsys.readouterr().out
    assert (root / "_runs/2026-11-21/generate.json").exists()
    code = cli.main(["clean", "--data-root", str(root), "--run-date", "2026-11-25"])
    assert code == 1
    assert "no raw data for 2026-11-25" in capsys.readouterr().err
    failed = json.loads((root / "_runs/2026-11-25/clean.json").read_text())
    assert failed["status"] == "failed" and "2026-11-25" in failed["error"]


def test_reason_codes_cover_every_injected_kind() -> None:
    reasons = set(C.QUARANTINE_REASONS) | set(C.FILTER_REASONS)
    assert set(G.COPY_DEFECTS) <= reasons and C.BOT_USER in reasons
