"""Bad inputs stop a step with a message naming the culprit, and publish nothing."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import clean, generate, ingest
from pipelines.errors import InputError

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def pristine(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated and cleaned data root to copy and damage per test."""
    root = tmp_path_factory.mktemp("pristine") / "data"
    generate.main(
        spark, generate.GenerateConfig(data_root=str(root), end_date=END, days=2, rows=4000, seed=2)
    )
    clean.main(spark, clean.CleanConfig(data_root=str(root), run_date=END, days=2))
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def clean_cfg(root: Path, **kw: object) -> clean.CleanConfig:
    return clean.CleanConfig(data_root=str(root), run_date=END, **kw)  # type: ignore[arg-type]


def published(root: Path) -> dict[str, list[str]]:
    """Names of the files in every published clean/quarantine partition."""
    out: dict[str, list[str]] = {}
    for table in ("clean/events", "quarantine/events"):
        base = root / table
        if base.exists():
            for part in sorted(base.iterdir()):
                out[f"{table}/{part.name}"] = sorted(p.name for p in part.iterdir())
    return out


def assert_failed_cleanly(
    spark: SparkSession, root: Path, cfg: clean.CleanConfig, message: str
) -> None:
    before = published(root)
    with pytest.raises(InputError, match=message):
        clean.main(spark, cfg)
    assert published(root) == before, "a failed clean must not change published partitions"
    staging = root / "_staging"
    assert not staging.exists() or not any(staging.iterdir())
    manifest = json.loads((root / "_runs" / cfg.run_date.isoformat() / "clean.json").read_text())
    assert manifest["status"] == "failed"


def first_raw_file(root: Path, day: dt.date = END) -> Path:
    return sorted((root / f"raw/events/dt={day}").glob("*.json.gz"))[0]


def damage(path: Path, data: bytes) -> None:
    """Overwrite a file as an outside tool would, leaving no Hadoop .crc beside it (log shippers
    write none; a stale one would make Hadoop report a checksum error instead)."""
    path.write_bytes(data)
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)


def test_missing_data_root(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no raw events folder at .*nowhere/raw/events"):
        clean.main(spark, clean_cfg(tmp_path / "nowhere"))


def test_date_with_no_data(spark: SparkSession, root: Path) -> None:
    assert_failed_cleanly(
        spark, root, clean_cfg(root, days=4), r"no raw data for 2026-11-18, 2026-11-19 under"
    )


def test_missing_days_can_be_skipped_on_request(spark: SparkSession, root: Path) -> None:
    result = clean.main(spark, clean_cfg(root, days=4, allow_missing_days=True))
    assert result.manifest["missing_days"] == ["2026-11-18", "2026-11-19"]
    assert result.manifest["days"] == ["2026-11-20", "2026-11-21"]


def test_empty_partition_folder(spark: SparkSession, root: Path) -> None:
    folder = root / f"raw/events/dt={END}"
    shutil.rmtree(folder)
    folder.mkdir()
    assert_failed_cleanly(spark, root, clean_cfg(root), rf"raw events folder .*dt={END} is empty")


def test_corrupt_gzip_file_is_named(spark: SparkSession, root: Path) -> None:
    bad = first_raw_file(root)
    damage(bad, b"this is not gzip data at all\n" * 50)
    assert_failed_cleanly(
        spark,
        root,
        clean_cfg(root, days=2),
        rf"cannot read raw events: .*{bad.name}: corrupt gzip data",
    )


def test_truncated_gzip_file_is_named(spark: SparkSession, root: Path) -> None:
    bad = first_raw_file(root)
    damage(bad, bad.read_bytes()[: bad.stat().st_size // 2])
    assert_failed_cleanly(
        spark, root, clean_cfg(root, days=2), rf"cannot read raw events: .*{bad.name}: truncated"
    )


def test_file_with_the_wrong_columns_is_named(spark: SparkSession, root: Path) -> None:
    bad = root / f"raw/events/dt={END}/orders-export.json.gz"
    with gzip.open(bad, "wt") as fh:
        for i in range(20):
            fh.write(json.dumps({"order": i, "sku": f"x{i}", "amount": 3.5}) + "\n")
    assert_failed_cleanly(spark, root, clean_cfg(root), r"wrong columns .*orders-export\.json\.gz")


def test_unsupported_file_type_is_named(spark: SparkSession, root: Path) -> None:
    (root / f"raw/events/dt={END}/events.parquet").write_bytes(b"PAR1")
    assert_failed_cleanly(spark, root, clean_cfg(root), r"unsupported raw file .*events\.parquet")


def test_missing_catalog(spark: SparkSession, root: Path) -> None:
    shutil.rmtree(root / "raw/catalog")
    assert_failed_cleanly(spark, root, clean_cfg(root), r"no item catalog at .*raw/catalog")


def test_corrupt_catalog_parquet_is_named(spark: SparkSession, root: Path) -> None:
    part = next((root / "raw/catalog").glob("*.parquet"))
    damage(part, b"PAR1 garbage garbage garbage PAR1")
    assert_failed_cleanly(spark, root, clean_cfg(root), rf"cannot read item catalog: .*{part.name}")


def test_catalog_with_the_wrong_columns(spark: SparkSession, root: Path) -> None:
    shutil.rmtree(root / "raw/catalog")
    spark.createDataFrame([("a", 1)], "sku string, n int").write.parquet(str(root / "raw/catalog"))
    assert_failed_cleanly(
        spark, root, clean_cfg(root), r"item catalog at .* has the wrong columns: missing item_id"
    )


def test_ingest_missing_input(spark: SparkSession, tmp_path: Path) -> None:
    cfg = ingest.IngestConfig(
        data_root=str(tmp_path / "d"), format="taobao", input=str(tmp_path / "nope.csv")
    )
    with pytest.raises(InputError, match=r"input not found: .*nope\.csv"):
        ingest.main(spark, cfg)
    assert not (tmp_path / "d" / "raw").exists()


def test_ingest_empty_input(spark: SparkSession, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cfg = ingest.IngestConfig(data_root=str(tmp_path / "d"), format="taobao", input=str(empty))
    with pytest.raises(InputError, match=r"input is empty: .*empty\.csv"):
        ingest.main(spark, cfg)


def test_ingest_parquet_with_the_wrong_columns(
    spark: SparkSession, root: Path, tmp_path: Path
) -> None:
    cfg = ingest.IngestConfig(
        data_root=str(tmp_path / "d"), format="online-retail", input=str(root / "raw/catalog")
    )
    with pytest.raises(
        InputError, match=r"Online Retail input at .* has the wrong columns: missing InvoiceNo"
    ):
        ingest.main(spark, cfg)
    assert not (tmp_path / "d" / "raw").exists()


def test_ingest_movielens_without_its_header(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text("1,31,2.5,1260759144\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n31,Dangerous Minds (1995),Drama\n")
    cfg = ingest.IngestConfig(data_root=str(tmp_path / "d"), format="movielens", input=str(folder))
    with pytest.raises(InputError, match=r"ratings\.csv has the wrong columns"):
        ingest.main(spark, cfg)


# -- regressions from fault injection (issue 10) --------------------------------------------------


def test_file_missing_a_required_column_is_named(spark: SparkSession, root: Path) -> None:
    # user_id -> userId and event_time -> timestamp: every line still has event_type, so the
    # file used to pass the column check and quarantine every line as missing_id
    bad = root / f"raw/events/dt={END}/renamed.json.gz"
    with gzip.open(bad, "wt") as fh:
        for i in range(20):
            fh.write(json.dumps({"userId": f"u{i}", "item_id": "i1", "event_type": "view",
                                 "timestamp": "2026-11-21T10:00:00Z"}) + "\n")  # fmt: skip
    assert_failed_cleanly(
        spark,
        root,
        clean_cfg(root),
        r"missing a required column .*renamed\.json\.gz lacks user_id, event_time",
    )


def _partition_rows(spark: SparkSession, folder: Path) -> int:
    return spark.read.parquet(str(folder)).count()


def test_incremental_clean_redoes_a_day_whose_output_was_removed(
    spark: SparkSession, root: Path
) -> None:
    first = clean.main(spark, clean_cfg(root, days=2, incremental=True))
    assert first.manifest["days_reused"] == [str(END - dt.timedelta(days=1)), str(END)]
    lost = root / f"quarantine/events/dt={END}"
    rows = _partition_rows(spark, lost)
    assert rows > 0
    shutil.rmtree(lost)
    again = clean.main(spark, clean_cfg(root, days=2, incremental=True))
    assert again.manifest["days"] == [str(END)]
    assert _partition_rows(spark, lost) == rows
    # the manifest and the report cover the whole window, never zeros for the reused day
    for result in (first, again):
        assert result.manifest["rows_in"] == (
            result.manifest["rows_out"]
            + result.manifest["rows_quarantined"]
            + sum(result.manifest["rows_filtered"].values())
        )
    assert again.manifest["rows_in"] == first.manifest["rows_in"] > 0
    assert (
        again.manifest["rows_quarantined_by_reason"] == first.manifest["rows_quarantined_by_reason"]
    )
    report = json.loads((root / f"reports/dt={END}/clean_quality.json").read_text())
    assert report["rows_in"] == first.manifest["rows_in"]


def test_incremental_clean_redoes_a_day_with_a_missing_file(
    spark: SparkSession, root: Path
) -> None:
    part = root / f"clean/events/dt={END}"
    victim = sorted(part.glob("*.parquet"))[0]
    victim.unlink()
    victim.with_name(f".{victim.name}.crc").unlink(missing_ok=True)
    result = clean.main(spark, clean_cfg(root, days=2, incremental=True))
    assert result.manifest["days"] == [str(END)]
    assert result.manifest["days_reused"] == [str(END - dt.timedelta(days=1))]


def test_a_fully_skipped_clean_keeps_the_window_figures(spark: SparkSession, root: Path) -> None:
    full = json.loads((root / f"_runs/{END}/clean.json").read_text())
    skipped = clean.main(spark, clean_cfg(root, days=2, incremental=True))
    assert skipped.manifest["days"] == []
    for key in ("rows_in", "rows_out", "rows_quarantined", "rows_filtered"):
        assert skipped.manifest[key] == full[key], key
    assert skipped.manifest["rows_cleaned_now"] == 0


def test_a_moved_data_root_is_not_cleaned_again(
    spark: SparkSession, root: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.move(root, moved)
    result = clean.main(spark, clean_cfg(moved, days=2, incremental=True))
    assert result.manifest["days"] == []
    assert len(result.manifest["days_reused"]) == 2


def test_a_truncated_clean_parquet_file_is_named_by_label(spark: SparkSession, root: Path) -> None:
    from jobs import label

    bad = sorted((root / f"clean/events/dt={END}").glob("*.parquet"))[0]
    damage(bad, bad.read_bytes()[: bad.stat().st_size // 2])
    cfg = label.LabelConfig(
        data_root=str(root), run_date=END, lookback_days=2, val_days=0, test_days=1,
        history_cutoff="event",
    )  # fmt: skip
    with pytest.raises(InputError, match=rf"cannot read clean events: .*{bad.name}"):
        label.main(spark, cfg)
    manifest = json.loads((root / f"_runs/{END}/label.json").read_text())
    assert manifest["status"] == "failed" and bad.name in manifest["error"]
    assert "\n" not in manifest["error"]


def test_a_killed_runs_staging_folder_is_removed_by_the_next_success(
    spark: SparkSession, root: Path
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from jobs.runtime.step import _host_tag

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)  # fmt: skip
    orphan = root / f"_staging/clean-20261121T000000-{_host_tag()}-{dead}-0123abcd"
    alive = root / f"_staging/clean-20991231T000000-{_host_tag()}-{os.getpid()}-0123abcd"
    other = root / "_staging/score-20261121T000000-00000000-1-0123abcd"
    for folder in (orphan, alive, other):
        (folder / "clean/dt=x").mkdir(parents=True)
    assert socket.gethostname()
    clean.main(spark, clean_cfg(root, days=1))
    assert not orphan.exists()
    assert alive.exists(), "a folder whose process is alive is not touched"
    assert other.exists(), "another step's folder is left to that step"
