"""cartwheel train: the two-tower model, trained with Horovod on Spark over Petastorm shards.

Reads ``shards/<run-id>/`` (default run id: the run date; or ``--shards PATH``). Launches
``--num-proc`` workers with ``horovod.spark.run`` (Gloo on CPU, NCCL on GPU) or, with
``--launcher torch-distributor``, with pyspark's ``TorchDistributor``; each reads its own slice
with Petastorm, trains, evaluates Recall@K/NDCG@K on val after every epoch, stops early, and
checkpoints every epoch under ``checkpoints/<run-id>/`` (an interrupted run resumes from its
latest checkpoint when started again). MLflow (a SQLite store under the data root unless
``MLFLOW_TRACKING_URI`` is set) records the config, the dataset manifest, per-epoch metrics and
throughput, and the best model as a pyfunc (history -> user vector) with its item-vector table,
registered under ``--model-name`` with alias ``--alias``.

Why this entry point is longer than the others: it owns the launch (Horovod or
TorchDistributor), resume from checkpoints, and the MLflow run around training; the loop
itself is ``pipelines/train.py`` and the worker ``jobs/runtime/training.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout, registry
from jobs.runtime import warm_start as W
from jobs.runtime.checkpoints import CheckpointStore, load_model
from jobs.runtime.config import (
    AtLeast1,
    DatedStepConfig,
    Fraction,
    NonNegative,
    normalise_uri,
    opt,
    step_config,
)
from jobs.runtime.manifest import RunResult, StepRun, code_version
from jobs.runtime.step import run_cli
from jobs.runtime.storage import Storage, join, local_path, uri
from jobs.runtime.training import (
    LAUNCHERS,
    WorkerSpec,
    horovod_worker,
    launch,
    local_threads,
    torch_worker,
)
from pipelines import label as L
from pipelines import model as M
from pipelines import schemas as S
from pipelines import train as T
from pipelines.errors import ConfigError, InputError

log = logging.getLogger("cartwheel")
MODEL_NAME = "cartwheel-two-tower"
# Fewer train examples per worker than this is too little data to train on, whatever the flags.
MIN_BATCH_SIZE = 16


@step_config
class TrainConfig(DatedStepConfig, T.TrainSettings, M.ModelShape):
    """Flags of ``cartwheel train``."""

    run_id: str | None = opt(
        default=None, help="shard set under shards/ to train on (default: the run date)"
    )
    shards: str | None = opt(
        default=None, help="a shard folder to train on instead of shards/<run-id>/"
    )
    launcher: str = opt(
        default="horovod",
        help="horovod (horovod.spark.run) or torch-distributor (TorchDistributor)",
    )
    num_proc: AtLeast1 = opt(default=2, help="training processes (one Spark task each)")
    checkpoint_dir: str | None = opt(
        default=None, help="checkpoint folder (default: <data-root>/checkpoints/<run-id>)"
    )
    restart: bool = opt(
        default=False, help="ignore an unfinished earlier attempt's checkpoints and start over"
    )
    resume: bool = opt(
        default=False, help="require resuming from the latest checkpoint (fail if there is none)"
    )
    experiment: str = opt(default="cartwheel", help="MLflow experiment")
    model_name: str = opt(default=MODEL_NAME, help="registered model name")
    alias: str = opt(default="candidate", help="registry alias given to the new model version")
    warm_start: str | None = opt(
        default=None,
        help="start from this registered model's weights (models:/NAME@ALIAS, e.g. the champion), "
        "its vocabulary carried into tonight's (new items start fresh), for at most "
        "--warm-epochs epochs; trains from scratch when it does not exist or the rule says so",
    )
    warm_epochs: AtLeast1 = opt(default=W.WARM_EPOCHS, help="maximum epochs of a warm start")
    warm_days: NonNegative = opt(
        default=1,
        help="a warm start trains on the examples whose targets fall in the last N days of the "
        "train period (0: every train example) ...",
    )
    warm_replay: Fraction = opt(
        default=0.25,
        help="... plus this share of the older train examples, sampled again every epoch",
    )
    full_retrain_every: AtLeast1 = opt(
        default=W.FULL_RETRAIN_EVERY, help=f"with --warm-start: {W.FULL_RETRAIN_EVERY_HELP}"
    )
    max_new_items: Fraction = opt(
        default=W.MAX_NEW_ITEMS, help=f"with --warm-start: {W.MAX_NEW_ITEMS_HELP}"
    )

    def validate(self) -> None:
        super().validate()
        self.validate_settings()
        self.validate_shape()
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"invalid config value launcher={self.launcher!r}: must be one of {', '.join(LAUNCHERS)}"
            )
        if self.restart and self.resume:
            raise ConfigError("--restart and --resume contradict each other")
        if self.warm_start is not None and not registry.MODEL_URI.match(self.warm_start):
            raise ConfigError(
                f"invalid config value warm_start={self.warm_start!r}: use models:/NAME@ALIAS or "
                "models:/NAME/VERSION"
            )

    @property
    def shard_id(self) -> str:
        return self.run_id or self.run_date.isoformat()


# -- inputs -----------------------------------------------------------------------------------


def load_shard_manifest(storage: Storage, folder: str, num_proc: int) -> dict[str, Any]:
    """The shard manifest, checked: present, schema as the model expects, every split non-empty
    with at least one file per worker."""
    path = join(folder, "_manifest.json")
    if not storage.exists(path):
        raise InputError(
            f"no shards at {folder} (missing _manifest.json): run `cartwheel shard` first"
        )
    manifest = storage.read_json(path)
    diff = S.SHARDS.differences(manifest.get("schema", []))
    if diff:
        raise InputError(
            f"shards at {folder} do not match the model's input schema: differing columns {diff}"
        )
    for split in L.SPLITS:
        info = manifest["splits"].get(split)
        if not info or info["rows"] == 0:
            raise InputError(f"shards at {folder}: the {split} split is empty")
        files = len(info["files"])
        if files < num_proc:
            raise InputError(
                f"shards at {folder}: the {split} split has {files} files, fewer than the {num_proc} workers "
                f"(re-shard with --workers {num_proc})"
            )
        for f in info["files"]:
            if not storage.exists(f["path"]):
                raise InputError(f"shard file listed in {path} is missing: {f['path']}")
    return manifest


# -- after training ---------------------------------------------------------------------------


def popularity_recall(
    spark: SparkSession, manifest: dict[str, Any], k: int, vocab_items: str
) -> float:
    """Recall@K on val of ranking every user's list by train-target popularity (in Spark)."""
    top = (
        spark.read.parquet(vocab_items)
        .orderBy(F.col("target_count").desc(), F.col("item_idx"))
        .limit(k)
        .select(F.col("item_idx").alias("target_item_idx"))
    )
    val = spark.read.parquet(*[uri(f["path"]) for f in manifest["splits"]["val"]["files"]]).select(
        "target_item_idx"
    )
    hits = val.join(F.broadcast(top), on="target_item_idx", how="left_semi").count()
    return hits / manifest["splits"]["val"]["rows"]


def main(spark: SparkSession, config: TrainConfig) -> RunResult:
    """Train on the shard set, log and register the best model."""
    import mlflow

    storage = Storage(spark)
    run = StepRun(spark, "train", config)
    root = config.data_root
    folder = normalise_uri(config.shards) if config.shards else layout.shards(root, config.shard_id)
    with run:
        manifest = load_shard_manifest(storage, folder, config.num_proc)
        per_worker = manifest["splits"]["train"]["rows"] // config.num_proc
        if per_worker < MIN_BATCH_SIZE:
            raise InputError(
                f"only {manifest['splits']['train']['rows']:,} train examples in {folder} (about "
                f"{per_worker:,} for each of the {config.num_proc} workers): too few to train a "
                f"model; label's manifest ({layout.manifest(root, config.run_date, 'label')}) "
                "counts the events each rule filtered"
            )
        if per_worker < config.batch_size:
            raise ConfigError(
                f"invalid config value batch_size={config.batch_size}: each of the {config.num_proc} workers "
                f"gets only about {per_worker:,} train examples; lower --batch-size"
            )
        vocab_items = local_path(join(folder, "vocab", "items"))
        ckpt = config.checkpoint_dir or (
            local_path(layout.checkpoints(root, config.shard_id)) or ""
        )
        if not vocab_items or not ckpt:
            raise ConfigError(
                "train needs a local (or mounted) shard folder and checkpoint dir; pass --checkpoint-dir"
            )
        store = CheckpointStore(ckpt)
        if config.resume and not store.has_progress():
            raise InputError(f"nothing to resume in {ckpt}: no unfinished checkpoint")
        resume = store.has_progress() and not config.restart
        tracking_uri = registry.default_tracking_uri(root)
        mlflow.set_tracking_uri(tracking_uri)
        vocab = manifest["vocab"]
        model_config = M.ModelConfig(
            num_items=vocab["num_items"], num_categories=vocab["num_categories"],
            num_event_types=vocab["num_event_types"], history_length=manifest["history_length"],
            **config.shape(),
        )  # fmt: skip
        run_file = Path(ckpt, "run.json")
        weights = os.path.join(ckpt, "warm_start.pt")
        if resume:
            unfinished = json.loads(run_file.read_text())
            mlflow_run_id = unfinished["mlflow_run_id"]
            training = (
                W.Training(**unfinished["training"])
                if "training" in unfinished
                else W.Training(W.FULL, "resumed a full run", config.run_date.isoformat())
            )
            log.info(
                "[train] resuming the unfinished run in %s (MLflow run %s, %s training)",
                ckpt,
                mlflow_run_id,
                training.mode,
            )
            active = mlflow.start_run(run_id=mlflow_run_id)
        else:
            shutil.rmtree(ckpt, ignore_errors=True)
            Path(ckpt).mkdir(parents=True, exist_ok=True)
            training = W.plan(
                config.warm_start, config.run_date, model_config, vocab_items,
                full_retrain_every=config.full_retrain_every, max_new_items=config.max_new_items,
                weights_path=weights, seed=config.seed,
            )  # fmt: skip
            log.info("[train] %s training: %s", training.mode, training.reason)
            active = mlflow.start_run(
                experiment_id=registry.experiment_id(mlflow, config.experiment, root),
                run_name=f"train-{config.shard_id}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
            )
            mlflow_run_id = active.info.run_id
            run_file.write_text(
                json.dumps({"mlflow_run_id": mlflow_run_id, "training": training.to_dict()})
            )
            mlflow.log_params({f"config.{k}": v for k, v in config.to_record().items()})
            mlflow.log_params({f"model.{k}": v for k, v in model_config.to_dict().items()})
            mlflow.log_params(
                {
                    "data.shards": folder,
                    **{f"data.{s}_rows": manifest["splits"][s]["rows"] for s in L.SPLITS},
                }
            )
            mlflow.log_dict(manifest, "dataset/shard_manifest.json")
            mlflow.set_tags(
                {
                    "cartwheel.step": "train",
                    "cartwheel.code_version": code_version(),
                    "cartwheel.launcher": config.launcher,
                    W.TRAINING_TAG: training.mode,
                    "cartwheel.warm_start_from": training.source or "",
                }
            )
        settings = config.settings()
        train_since = None
        if training.mode == W.WARM:
            settings = dataclasses.replace(settings, epochs=min(config.epochs, config.warm_epochs))
            if config.warm_days:
                val_start = dt.date.fromisoformat(manifest["boundaries"]["val_start"])
                train_since = (val_start - dt.timedelta(days=config.warm_days)).isoformat()
                log.info(
                    "[train] warm start: the train examples with targets from %s on, and %.0f%% of the older ones",
                    train_since,
                    100 * config.warm_replay,
                )
        try:
            spec = WorkerSpec(
                files={s: [uri(f["path"]) for f in manifest["splits"][s]["files"]] for s in L.SPLITS},
                vocab_items=vocab_items, model=model_config.to_dict(), settings=dataclasses.asdict(settings),
                checkpoint_dir=ckpt, error_dir=os.path.join(ckpt, "_errors"), resume=resume,
                tracking_uri=tracking_uri, mlflow_run_id=mlflow_run_id,
                meta={"mlflow_run_id": mlflow_run_id, "shards": folder},
                threads=local_threads(spark, config.num_proc),
                initial_weights=weights if training.mode == W.WARM else None,
                train_since=train_since, replay=config.warm_replay,
            )  # fmt: skip
            log.info(
                "[train] %s launcher, %d workers, %s train / %s val examples, %d item indices",
                config.launcher,
                config.num_proc,
                f"{manifest['splits']['train']['rows']:,}",
                f"{manifest['splits']['val']['rows']:,}",
                model_config.num_items,
            )
            outcome = launch(config.launcher, config.num_proc, spec, horovod_worker, torch_worker)
            if not outcome["epochs_run"] and not resume:
                raise T.TrainingError("no epoch ran")
            k = config.k
            popularity = popularity_recall(spark, manifest, k, vocab_items)
            random_recall = M.random_recall_at_k(model_config.num_items - 2, k)
            mlflow.log_metrics(
                {
                    f"best_val_recall_at_{k}": outcome["best_val_recall"],
                    f"best_val_ndcg_at_{k}": outcome["best_val_ndcg"],
                    "best_epoch": outcome["best_epoch"],
                    f"baseline_popularity_val_recall_at_{k}": popularity,
                    f"baseline_random_val_recall_at_{k}": random_recall,
                }
            )
            model_uri, version = registry.log_model(
                mlflow,
                load_model(str(store.best_path())),
                vocab_items,
                config.model_name,
                config.alias,
            )
            W.tag_version(config.model_name, version, training)
            store.mark_complete(
                {"mlflow_run_id": mlflow_run_id, "model_uri": model_uri, "version": version}
            )
            mlflow.end_run()
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        history = outcome["history"]
        rows = manifest["splits"]["train"]["rows"]
        run.inputs = [folder]
        run.outputs = [model_uri, f"models:/{config.model_name}@{config.alias}"]
        run.record(rows_in=rows, rows_out=rows)
        run.extra = {
            "mlflow_tracking_uri": tracking_uri,
            "mlflow_run_id": mlflow_run_id,
            "model_uri": model_uri,
            "registered_model": config.model_name,
            "model_version": version,
            "alias": config.alias,
            "resumed": resume,
            "training": training.to_dict(),
            "start_epoch": outcome["start_epoch"],
            "epochs_run": outcome["epochs_run"],
            "best_epoch": outcome["best_epoch"],
            "stopped_early": outcome["stopped_early"],
            f"best_val_recall_at_{k}": outcome["best_val_recall"],
            f"best_val_ndcg_at_{k}": outcome["best_val_ndcg"],
            f"baseline_popularity_val_recall_at_{k}": popularity,
            f"baseline_random_val_recall_at_{k}": random_recall,
            "epochs": history,
        }
    return run.result()


def summarize(result: RunResult) -> str:
    m = result.manifest
    k = m["config"]["k"]
    lines = [
        f"trained {m['registered_model']} version {m['model_version']} (alias {m['alias']}) on {m['rows_in']:,} examples"
    ]
    training = m.get("training")
    if training:
        carried = training.get("carried") or {}
        lines.append(
            f"  {training['mode']} training"
            + (f" from {training['source']}" if training.get("source") else "")
            + (
                f" ({carried['items_carried']:,} items carried, {carried['items_new']:,} new)"
                if carried
                else ""
            )
            + f": {training['reason']}"
        )
    for e in m["epochs"]:
        lines.append(
            f"  epoch {e['epoch']}: loss {e['train_loss']:.4f}  val recall@{k} {e['val_recall']:.4f}  "
            f"ndcg@{k} {e['val_ndcg']:.4f}  {e['examples'] / e['seconds']:,.0f} examples/s"
        )
    lines += [
        f"best epoch {m['best_epoch']}: val recall@{k} {m[f'best_val_recall_at_{k}']:.4f}, ndcg@{k} {m[f'best_val_ndcg_at_{k}']:.4f} "
        f"(popularity {m[f'baseline_popularity_val_recall_at_{k}']:.4f}, random {m[f'baseline_random_val_recall_at_{k}']:.4f})",
        f"model: {m['model_uri']}  (models:/{m['registered_model']}@{m['alias']})",
        f"mlflow: {m['mlflow_tracking_uri']} run {m['mlflow_run_id']}",
        f"manifest: {result.manifest_path}",
    ]
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("train", TrainConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
