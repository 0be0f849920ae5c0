"""Run manifests and the storage layer (native local path and the Hadoop FileSystem path)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.clean import CleanConfig
from jobs.runtime.manifest import StepRun, manifest_path
from jobs.runtime.storage import Storage, join
from pipelines.errors import CartwheelError

pytestmark = pytest.mark.unit

REQUIRED = {
    "step", "status", "run_date", "config", "inputs", "outputs", "rows_in", "rows_out",
    "rows_quarantined", "rows_filtered", "started_at", "finished_at", "code_version",
}  # fmt: skip


def config(root: Path) -> CleanConfig:
    return CleanConfig(data_root=str(root), run_date=dt.date(2026, 11, 20))


def test_successful_step_writes_a_complete_manifest_last(
    spark: SparkSession, tmp_path: Path
) -> None:
    run = StepRun(spark, "clean", config(tmp_path))
    with run:
        run.inputs, run.outputs = ["in"], ["out"]
        run.record(rows_in=10, rows_out=6, quarantined={"missing_id": 3}, filtered={"bot_user": 1})
        assert not Path(run.path).exists()  # written on exit, not before
    doc = json.loads(Path(manifest_path(str(tmp_path), dt.date(2026, 11, 20), "clean")).read_text())
    assert set(doc) >= REQUIRED
    assert (doc["status"], doc["rows_in"], doc["rows_out"], doc["rows_quarantined"]) == (
        "succeeded",
        10,
        6,
        3,
    )
    assert doc["rows_filtered"] == {"bot_user": 1} and doc["config"]["run_date"] == "2026-11-20"


def test_failed_step_writes_a_failed_manifest_and_reraises(
    spark: SparkSession, tmp_path: Path
) -> None:
    run = StepRun(spark, "clean", config(tmp_path))
    with pytest.raises(ValueError, match="boom"), run:
        raise ValueError("boom")
    doc = json.loads(Path(run.path).read_text())
    assert doc["status"] == "failed" and doc["error"] == "ValueError: boom"


def test_counts_that_do_not_add_up_fail_the_step(spark: SparkSession, tmp_path: Path) -> None:
    run = StepRun(spark, "clean", config(tmp_path))
    with pytest.raises(CartwheelError, match="does not add up"), run:
        run.record(rows_in=10, rows_out=6, quarantined={"missing_id": 3})
    assert json.loads(Path(run.path).read_text())["status"] == "failed"


def test_a_reason_removing_more_than_the_warn_share_is_a_warning(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    strict = CleanConfig(
        data_root=str(tmp_path), run_date=dt.date(2026, 11, 20), filter_warn_share=0.3
    )
    run = StepRun(spark, "clean", strict)
    with caplog.at_level("WARNING", logger="cartwheel"), run:
        run.record(
            rows_in=10, rows_out=3, quarantined={"missing_id": 3}, filtered={"bot_user": 4},
            hints={"bot_user": "raise the bot rule's limits", "missing_id": "unused"},
        )  # fmt: skip
    doc = json.loads(Path(run.path).read_text())
    # 4 of 10 is over 30 %; 3 of 10 is not
    assert doc["warnings"] == [
        "filtered 4 of 10 input rows (40.0%) as bot_user, over the filter_warn_share of 30%; "
        "raise the bot rule's limits"
    ]
    assert "[clean] WARNING: filtered 4 of 10" in caplog.text
    run = StepRun(spark, "clean", config(tmp_path))  # the default share, 50 %
    with run:
        run.record(rows_in=10, rows_out=3, quarantined={"missing_id": 3}, filtered={"bot_user": 4})
    assert json.loads(Path(run.path).read_text())["warnings"] == []


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("native", [True, False], ids=["native-local", "hadoop-fs"])
def test_publish_replaces_only_the_named_partitions(
    spark: SparkSession, tmp_path: Path, native: bool
) -> None:
    storage = Storage(spark, native_local=native)
    target, staging = tmp_path / "target", tmp_path / "staging"
    for day, text in [("dt=1", "old1"), ("dt=2", "old2"), ("dt=3", "old3")]:
        (target / day).mkdir(parents=True)
        (target / day / "part.txt").write_text(text)
    (staging / "dt=2").mkdir(parents=True)
    (staging / "dt=2" / "part.txt").write_text("new2")
    storage.publish_partitions(str(staging), str(target), ["dt=2", "dt=3"])
    # dt=2 replaced, dt=3 removed (named but nothing staged), dt=1 untouched
    assert _tree(target) == {"dt=1/part.txt": "old1", "dt=2/part.txt": "new2"}


@pytest.mark.parametrize("native", [True, False], ids=["native-local", "hadoop-fs"])
def test_storage_operations_agree_on_local_paths(
    spark: SparkSession, tmp_path: Path, native: bool
) -> None:
    storage = Storage(spark, native_local=native)
    root = str(tmp_path / "s")
    storage.write_json(join(root, "a", "doc.json"), {"x": 1})
    storage.write_text(join(root, "b", "_hidden"), "h")
    storage.write_text(join(root, "b", ".crc"), "c")
    storage.write_text(join(root, "b", "data.txt"), "hello")
    assert storage.read_json(join(root, "a", "doc.json")) == {"x": 1}
    assert (
        storage.exists(root)
        and storage.is_dir(join(root, "a"))
        and not storage.is_dir(join(root, "a", "doc.json"))
    )
    assert storage.list_dir(root) == [("a", True), ("b", True)]
    files = storage.list_files(root)
    assert [(Path(f.path.replace("file:", "")).name, f.size) for f in files] == [
        ("doc.json", 13),
        ("data.txt", 5),
    ]
    storage.rename(join(root, "b"), join(root, "c", "b"))
    assert storage.read_text(join(root, "c", "b", "data.txt")) == "hello"
    storage.delete(join(root, "c"))
    assert not storage.exists(join(root, "c")) and storage.list_files(join(root, "missing")) == []


def _disk_full(monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    """The next ``failures`` atomic renames of a written file fail as on a full disk (the temp
    file was written; making it the manifest is what runs out of space)."""
    import errno
    import os

    real = os.replace
    left = [failures]

    def replace(src: str, dst: str) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device", dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def fail_on_a_full_disk(
    spark: SparkSession, root: Path, monkeypatch: pytest.MonkeyPatch, failures: int
) -> Path:
    """A step succeeds, then the next run of it fails with a full disk on which the next
    ``failures`` manifest writes fail too; the manifest's path."""
    ok = StepRun(spark, "clean", config(root))
    with ok:
        ok.record(rows_in=1, rows_out=1)
    assert json.loads(Path(ok.path).read_text())["status"] == "succeeded"
    _disk_full(monkeypatch, failures)
    run = StepRun(spark, "clean", config(root))
    with pytest.raises(OSError, match="No space left"), run:
        raise OSError(28, "No space left on device", str(root / "clean"))
    assert not list(Path(run.path).parent.glob("*.tmp")), "no half-written temp file is left"
    return Path(run.path)


def test_a_step_failing_on_a_full_disk_leaves_no_stale_manifest_or_temp_file(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fail_on_a_full_disk(spark, tmp_path, monkeypatch, failures=2)  # no manifest at all
    assert not path.exists(), "the earlier run's 'succeeded' manifest must not stand"


def test_a_failed_manifest_is_written_once_the_old_one_is_gone(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deleting the old manifest freed enough space for the new one
    path = fail_on_a_full_disk(spark, tmp_path, monkeypatch, failures=1)
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed"
    assert doc["error"] == f"OSError: {tmp_path / 'clean'}: No space left on device"


def test_spark_failures_are_explained_in_one_line_naming_the_path(
    spark: SparkSession, tmp_path: Path
) -> None:
    from jobs.runtime.readers import explain_failure

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(Exception) as caught:  # a real Java error from a real write
        spark.range(3).write.parquet(str(blocker / "table"))
    line = explain_failure(caught.value)
    assert line is not None and "\n" not in line
    assert str(blocker) in line
    assert explain_failure(ValueError("a bug")) is None
    assert explain_failure(KeyError("column x does not exist")) is None


def test_a_data_root_that_is_a_file_gets_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs import nightly

    a_file = tmp_path / "root.txt"
    a_file.write_text("oops")
    rc = nightly.cli(["--data-root", str(a_file), "--run-date", "2026-11-20"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err == [f"cartwheel nightly: error: data root {a_file} is a file, not a folder"]
