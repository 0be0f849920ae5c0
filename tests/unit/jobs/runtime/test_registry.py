"""A data root's default MLflow store follows the root when it is copied or moved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.runtime.registry import default_tracking_uri, experiment_id

pytestmark = pytest.mark.unit


def log_one_run(root: Path, note: str) -> str:
    """A real run in the root's default store with one artifact; its artifact URI."""
    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri(str(root)))
    exp = experiment_id(mlflow, "cartwheel-test", str(root))
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_text(note, "note.txt")
        return str(run.info.artifact_uri)


def test_a_copied_root_writes_its_artifacts_into_the_copy(tmp_path: Path) -> None:
    original = tmp_path / "original"
    first = log_one_run(original, "first")
    assert first.startswith(f"file://{original}/mlflow/artifacts")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    second = log_one_run(copy, "second")
    assert second.startswith(f"file://{copy}/mlflow/artifacts")
    # the copy's record of the first run points into the copy too, and its artifact is there
    import mlflow

    runs = mlflow.search_runs(experiment_names=["cartwheel-test"], output_format="list")
    assert {r.info.artifact_uri.split("/mlflow/artifacts")[0] for r in runs} == {f"file://{copy}"}
    notes = sorted(Path(copy, "mlflow/artifacts").rglob("note.txt"))
    assert sorted(p.read_text() for p in notes) == ["first", "second"]
    assert [p.read_text() for p in Path(original, "mlflow/artifacts").rglob("note.txt")] == [
        "first"
    ], "nothing of the copy's may land in the original root"
