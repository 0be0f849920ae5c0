"""Training end to end: Horovod on Spark (2 processes, Gloo), Petastorm, MLflow, resume."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from jobs import train
from jobs.runtime import registry
from jobs.runtime import warm_start as W
from jobs.runtime.checkpoints import CheckpointStore, load_model
from jobs.runtime.manifest import RunResult
from pipelines import model as M
from pipelines import train as T
from pipelines.errors import InputError
from tests.conftest import TEMPLATE_TRAIN, copy_root

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)
SMALL = {
    "dim": 32,
    "item_embedding_dim": 32,
    "category_embedding_dim": 8,
    "batch_size": 128,
    "k": 10,
}


@pytest.fixture(scope="module")
def shards_root(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's trained data root: shards, checkpoints and a registered model."""
    return copy_root(trained_template, tmp_path_factory, "train")


@pytest.fixture(scope="module")
def trained(trained_template: Path, shards_root: Path) -> RunResult:
    """The template's training run (``TEMPLATE_TRAIN``), from the template's own manifest: other
    tests here train again on the module's copy, which rewrites the copy's manifest."""
    path = trained_template / "_runs" / END.isoformat() / "train.json"
    manifest = json.loads(path.read_text())
    return RunResult("train", manifest["status"], manifest, str(path))


def tracking(root: Path) -> str:
    return f"sqlite:///{root}/mlflow/mlflow.db"


def test_horovod_training_learns_the_generated_structure(trained: RunResult) -> None:
    m = trained.manifest
    assert trained.succeeded and m["epochs_run"][0] == 1
    recall = m["best_val_recall_at_10"]
    assert recall > 3 * m["baseline_random_val_recall_at_10"]
    assert recall > m["baseline_popularity_val_recall_at_10"]
    assert all(e["workers"] == 2 for e in m["epochs"])
    assert m["epochs"][-1]["train_loss"] < m["epochs"][0]["train_loss"]


def test_mlflow_run_holds_params_metrics_model_and_alias(
    trained: RunResult, shards_root: Path
) -> None:
    client = MlflowClient(tracking(shards_root))
    run = client.get_run(trained.manifest["mlflow_run_id"])
    assert (
        run.data.params["config.epochs"] == str(TEMPLATE_TRAIN["epochs"])
        and run.data.params["model.dim"] == "32"
    )
    assert int(run.data.params["data.train_rows"]) > 0
    history = client.get_metric_history(run.info.run_id, "val_recall_at_10")
    assert [h.step for h in history] == trained.manifest["epochs_run"]
    for name in (
        "train_loss",
        "examples_per_second",
        "read_seconds",
        "best_val_recall_at_10",
        "baseline_popularity_val_recall_at_10",
    ):
        assert name in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"dataset", "item_embeddings"} <= artifacts
    version = client.get_model_version_by_alias("cartwheel-two-tower", "candidate")
    assert (
        version.run_id == run.info.run_id
        and str(version.version) == trained.manifest["model_version"]
    )


def test_logged_model_gives_the_in_memory_model_user_vectors(
    trained: RunResult, shards_root: Path
) -> None:
    # through cartwheel: a bare mlflow.set_tracking_uri would read as the user's own choice and
    # steer every later step in this process to this store
    registry.configure_tracking(str(shards_root))
    loaded = mlflow.pyfunc.load_model("models:/cartwheel-two-tower@candidate")
    manifest = json.loads((shards_root / "shards" / END.isoformat() / "_manifest.json").read_text())
    sample = pd.read_parquet(manifest["splits"]["val"]["files"][0]["path"]).head(64)
    inputs = sample[["hist_item_idx", "hist_type_idx", "hist_age_s", "hist_len"]]
    got = loaded.predict(inputs)
    model = load_model(shards_root / "checkpoints" / END.isoformat() / "best.pt")

    with torch.no_grad():
        expected = model.user_vectors(
            torch.as_tensor(np.stack(inputs["hist_item_idx"])), torch.as_tensor(np.stack(inputs["hist_type_idx"])),
            torch.as_tensor(np.stack(inputs["hist_age_s"])), torch.as_tensor(inputs["hist_len"].to_numpy()),
        ).numpy()  # fmt: skip
    assert got.shape == (64, 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    table = pd.read_parquet(
        MlflowClient(tracking(shards_root)).download_artifacts(
            trained.manifest["mlflow_run_id"], "item_embeddings"
        )
    )
    assert len(table) == manifest["vocab"]["num_items"] and len(table["vector"].iloc[0]) == 32


def test_killed_training_resumes_without_repeating_epochs(
    spark: SparkSession, shards_root: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    args = [
        sys.executable, "-m", "jobs.cli", "train", "--data-root", str(shards_root), "--run-date", END.isoformat(),
        "--epochs", "2", "--patience", "5", "--checkpoint-dir", str(ckpt), "--model-name", "resume-test",
        *[x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))],
    ]  # fmt: skip
    env = {**os.environ, "CARTWHEEL_SPARK_MASTER": "local[2]"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 600
        while not (ckpt / "latest.json").exists():  # written after epoch 1's checkpoint
            assert proc.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.5)
    finally:
        parent = psutil.Process(proc.pid)
        for p in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.NoSuchProcess):  # a child may end on its own meanwhile
                p.kill()
        proc.wait()
    # killed within half a second of epoch 1's checkpoint, seconds before epoch 2 could end
    assert not (ckpt / "complete.json").exists()
    assert CheckpointStore(ckpt).latest_epoch() == 1
    resumed = train.main(
        spark,
        train.TrainConfig(
            data_root=str(shards_root),
            run_date=END,
            epochs=2,
            patience=5,
            checkpoint_dir=str(ckpt),
            model_name="resume-test",
            **SMALL,
        ),
    )
    m = resumed.manifest
    assert m["resumed"] and m["start_epoch"] == 2 and m["epochs_run"] == [2]
    steps = [
        h.step
        for h in MlflowClient(tracking(shards_root)).get_metric_history(
            m["mlflow_run_id"], "val_recall_at_10"
        )
    ]
    assert steps == [1, 2]  # each epoch logged once, in the one MLflow run


def test_torch_distributor_launcher_trains_the_same_function(
    spark: SparkSession, shards_root: Path, tmp_path: Path
) -> None:
    result = train.main(
        spark,
        train.TrainConfig(
            data_root=str(shards_root), run_date=END, epochs=1, launcher="torch-distributor",
            checkpoint_dir=str(tmp_path / "ckpt"), model_name="td-test", **SMALL,
        ),
    )  # fmt: skip
    m = result.manifest
    assert result.succeeded and m["epochs_run"] == [1] and m["epochs"][0]["workers"] == 2
    assert m["best_val_recall_at_10"] > m["baseline_random_val_recall_at_10"]


def test_a_warm_start_carries_the_registered_model_and_starts_new_items_fresh(
    spark: SparkSession,
    trained: RunResult,
    shards_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = copy_root(shards_root, tmp_path_factory, "warm")
    # four of tonight's items are new to the registered model: their ids changed in the vocabulary
    items_dir = root / "shards" / END.isoformat() / "vocab" / "items"
    table = pd.read_parquet(items_dir)
    fresh = table["item_idx"].isin(table["item_idx"].sort_values().tail(4))
    table.loc[fresh, "item_id"] = "new-" + table.loc[fresh, "item_id"]
    shutil.rmtree(items_dir)
    items_dir.mkdir()
    table.to_parquet(items_dir / "part-0.parquet", index=False)
    ckpt = tmp_path_factory.mktemp("warm-ckpt")
    result = train.main(
        spark,
        train.TrainConfig(
            data_root=str(root), run_date=END, epochs=4, patience=5, warm_epochs=1,
            warm_start="models:/cartwheel-two-tower@candidate", checkpoint_dir=str(ckpt),
            model_name="warm-test", **SMALL,
        ),
    )  # fmt: skip
    client = MlflowClient(tracking(root))
    source = client.get_model_version_by_alias("cartwheel-two-tower", "candidate")
    m = result.manifest
    assert result.succeeded and m["epochs_run"] == [1]  # at most --warm-epochs
    assert m["training"]["mode"] == "warm"
    assert m["training"]["source"] == f"models:/cartwheel-two-tower/{source.version}"
    assert m["training"]["carried"]["items_new"] == 4
    assert m["training"]["carried"]["items_carried"] == len(table) - 4
    # the first epoch began from the source model's rows for every item both vocabularies hold
    start = torch.load(ckpt / "warm_start.pt", weights_only=True)["item_embedding.weight"]
    before = load_model(root / "checkpoints" / END.isoformat() / "best.pt").item_embedding.weight
    kept = torch.as_tensor(table.loc[~fresh, "item_idx"].to_numpy())
    new = torch.as_tensor(table.loc[fresh, "item_idx"].to_numpy())
    assert torch.equal(start[kept], before[kept].detach())
    assert not torch.isclose(start[new], before[new].detach()).all(dim=1).any()
    assert m["best_val_recall_at_10"] > m["baseline_popularity_val_recall_at_10"]
    # --warm-days 1: the last train day's targets and a quarter of the older ones, not all
    assert 0 < m["epochs"][0]["examples"] < 0.6 * trained.manifest["epochs"][0]["examples"]
    # tomorrow's rule reads how this version was trained and when its lineage was last trained in full
    tags = client.get_model_version("warm-test", m["model_version"]).tags
    assert tags[W.TRAINING_TAG] == "warm"
    assert tags[W.FULL_RETRAIN_TAG] == source.tags[W.FULL_RETRAIN_TAG] == END.isoformat()
    assert "warm training from models:/cartwheel-two-tower/" in train.summarize(result)


def test_a_warm_start_without_a_model_plans_a_full_training(
    shards_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.configure_tracking(str(shards_root))
    manifest = json.loads((shards_root / "shards" / END.isoformat() / "_manifest.json").read_text())
    config = train.TrainConfig(data_root=str(shards_root), run_date=END, **SMALL)
    model_config = M.ModelConfig(
        num_items=manifest["vocab"]["num_items"], num_categories=manifest["vocab"]["num_categories"],
        history_length=manifest["history_length"], **config.shape(),
    )  # fmt: skip
    weights = tmp_path / "warm_start.pt"
    planned = W.plan(
        "models:/cartwheel-two-tower@no-such-alias", END, model_config,
        str(shards_root / "shards" / END.isoformat() / "vocab" / "items"),
        full_retrain_every=7, max_new_items=0.2, weights_path=str(weights), seed=0,
    )  # fmt: skip
    assert planned.mode == W.FULL and planned.source is None
    assert planned.reason == "no model to start from at models:/cartwheel-two-tower@no-such-alias"
    assert planned.full_retrain_date == END.isoformat() and not weights.exists()
    # the same model under its real alias is a warm start, its weights written for the workers
    warm = W.plan(
        "models:/cartwheel-two-tower@candidate", END, model_config,
        str(shards_root / "shards" / END.isoformat() / "vocab" / "items"),
        full_retrain_every=7, max_new_items=0.2, weights_path=str(weights), seed=0,
    )  # fmt: skip
    assert warm.mode == W.WARM and warm.carried is not None and warm.carried["items_new"] == 0
    assert weights.exists()
    # a week later the schedule asks for a full training: decided from the tags, the model unloaded
    weights.unlink()

    def loaded(uri: str) -> None:
        raise AssertionError(f"{uri} was loaded for a night that trains in full")

    monkeypatch.setattr(W.registry, "resolve", loaded)
    due = W.plan(
        "models:/cartwheel-two-tower@candidate", END + dt.timedelta(days=7), model_config,
        str(shards_root / "shards" / END.isoformat() / "vocab" / "items"),
        full_retrain_every=7, max_new_items=0.2, weights_path=str(weights), seed=0,
    )  # fmt: skip
    assert due.mode == W.FULL and "(--full-retrain-every 7)" in due.reason
    assert due.full_retrain_date == (END + dt.timedelta(days=7)).isoformat()
    assert not weights.exists()


def _copy_shards(shards_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(shards_root / "shards", root / "shards")
    return root


def _rewrite_manifest(root: Path, change: object) -> None:
    path = root / "shards" / END.isoformat() / "_manifest.json"
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_missing_shards_are_named(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"no shards at .*shards/2026-11-21 \(missing _manifest.json\)"
    ):
        train.main(spark, train.TrainConfig(data_root=str(tmp_path), run_date=END))


def test_shards_with_another_schema_are_refused(
    spark: SparkSession, shards_root: Path, tmp_path: Path
) -> None:
    root = _copy_shards(shards_root, tmp_path)
    _rewrite_manifest(
        root, lambda d: d["schema"].__setitem__(2, {"name": "target_item_idx", "type": "string"})
    )
    with pytest.raises(InputError, match=r"do not match the model's input schema.*target_item_idx"):
        train.main(spark, train.TrainConfig(data_root=str(root), run_date=END))


def test_fewer_shard_files_than_workers_is_refused(spark: SparkSession, shards_root: Path) -> None:
    with pytest.raises(InputError, match=r"train split has 2 files, fewer than the 3 workers"):
        train.main(spark, train.TrainConfig(data_root=str(shards_root), run_date=END, num_proc=3))


def test_an_empty_split_is_refused(spark: SparkSession, shards_root: Path, tmp_path: Path) -> None:
    root = _copy_shards(shards_root, tmp_path)
    _rewrite_manifest(root, lambda d: d["splits"]["val"].update(rows=0))
    with pytest.raises(InputError, match=r"the val split is empty"):
        train.main(spark, train.TrainConfig(data_root=str(root), run_date=END))


def test_too_few_train_examples_are_refused_as_data_not_as_a_batch_size(
    spark: SparkSession, shards_root: Path, tmp_path: Path
) -> None:
    root = _copy_shards(shards_root, tmp_path)
    _rewrite_manifest(root, lambda d: d["splits"]["train"].update(rows=20))
    with pytest.raises(
        InputError, match=r"only 20 train examples .*about 10 for each of the 2 workers.*label.json"
    ):
        train.main(spark, train.TrainConfig(data_root=str(root), run_date=END, batch_size=4))


def test_a_crashing_worker_fails_the_job_with_its_own_error(
    spark: SparkSession, shards_root: Path, tmp_path: Path
) -> None:
    """Both workers fail to read the vocabulary; the job raises that error (a hang would trip
    the suite's per-test timeout)."""
    root = _copy_shards(shards_root, tmp_path)
    shutil.rmtree(root / "shards" / END.isoformat() / "vocab" / "items")
    with pytest.raises(T.TrainingError, match=r"training worker rank-\d failed: .*vocab/items"):
        train.main(spark, train.TrainConfig(data_root=str(root), run_date=END, epochs=1, **SMALL))
