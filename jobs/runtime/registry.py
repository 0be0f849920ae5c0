"""The MLflow side of cartwheel, in one place: where the tracking store is, logging and
registering a trained model, resolving a ``models:/`` URI to a loaded model with its item
vocabulary, and moving aliases.

The default store is a SQLite file under a local data root (``_mlflow/``, see ``layout``);
``$MLFLOW_TRACKING_URI`` set by the user wins.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator
from pyspark.sql import DataFrame, SparkSession

from jobs.runtime import layout
from jobs.runtime.storage import local_path
from pipelines import label as L
from pipelines import schemas as S
from pipelines.errors import ConfigError, InputError
from pipelines.model import TwoTower
from pipelines.train import TrainingError
from udfs.pyfunc import UserTower

log = logging.getLogger("cartwheel")

PACKAGE_DIRS = [str(Path(__file__).resolve().parents[2] / name) for name in ("pipelines", "udfs")]


# mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI (for subprocesses). When the value there
# is a default cartwheel chose for some data root, it is not the user's choice: remember it here
# (inherited by subprocesses too) so the next data root in the same process gets its own store.
DEFAULT_MARKER = "CARTWHEEL_MLFLOW_DEFAULT_URI"


def user_tracking_uri() -> str | None:
    """$MLFLOW_TRACKING_URI if the user set it (not a default cartwheel chose)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if env and env != os.environ.get(DEFAULT_MARKER) else None


def default_tracking_uri(data_root: str) -> str:
    """$MLFLOW_TRACKING_URI when the user set it, else a SQLite store under a local data root."""
    env = user_tracking_uri()
    if env:
        return env
    root = local_path(data_root)
    if root is None:
        raise ConfigError(
            f"data root {data_root} is not local: set MLFLOW_TRACKING_URI to an MLflow server"
        )
    store = local_path(layout.mlflow_dir(root)) or ""
    os.makedirs(store, exist_ok=True)
    db = os.path.join(store, "mlflow.db")
    rebase_artifact_locations(db, artifact_root(root))
    uri = f"sqlite:///{db}"
    os.environ[DEFAULT_MARKER] = uri
    return uri


def artifact_root(root: str) -> str:
    """The artifact location of the default MLflow store of the local data root ``root``."""
    return f"file://{os.path.join(os.path.abspath(layout.mlflow_dir(root)), 'artifacts')}"


def rebase_artifact_locations(db: str, location: str) -> int:
    """Point a copied or moved data root's MLflow store at its own artifacts; rows changed.

    MLflow records absolute artifact locations (experiments, runs, model versions, logged
    models). After ``cp -r`` or ``mv`` of a data root they still name the old place, so a copy
    would write into the original root, and a moved root would find no artifacts. Every text
    value that starts with the old ``.../mlflow/artifacts`` prefix is rewritten to ``location``.
    """
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if "experiments" not in tables:
            return 0
        suffix = "/mlflow/artifacts"
        old = next(
            (
                loc[: loc.index(suffix) + len(suffix)]
                for (loc,) in con.execute("SELECT artifact_location FROM experiments")
                if loc and loc.startswith("file://") and suffix in loc
            ),
            None,
        )
        if old is None or old == location:
            return 0
        changed = 0
        with con:
            for table in tables:
                columns = [
                    r[1]
                    for r in con.execute(f'PRAGMA table_info("{table}")')
                    if "CHAR" in str(r[2]).upper() or "TEXT" in str(r[2]).upper()
                ]
                for column in columns:
                    changed += con.execute(
                        f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                        f'WHERE substr("{column}", 1, ?) = ?',
                        (location, len(old) + 1, len(old), old),
                    ).rowcount
        log.info("MLflow store %s: artifact locations moved from %s to %s", db, old, location)
        return changed
    finally:
        con.close()


def experiment_id(mlflow: Any, name: str, data_root: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    root = local_path(data_root)
    location = artifact_root(root) if root and not user_tracking_uri() else None
    return str(mlflow.create_experiment(name, artifact_location=location))


def model_signature(dim: int) -> Any:
    """History columns (int lists + length) in, (rows, dim) float32 user vectors out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [
        ColSpec(Array(DataType.long), name) for name in S.HISTORY_LISTS
    ]
    columns.append(ColSpec(DataType.long, S.HISTORY_LENGTH))
    inputs = Schema(columns)
    return ModelSignature(
        inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))])
    )


def model_requirements() -> list[str]:
    """The pins the logged model needs (without torch's local '+cpu' label)."""
    from importlib import metadata

    names = ("torch", "numpy", "pandas", "pyarrow", "mlflow")
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in names]


def log_model(
    mlflow: Any, model: TwoTower, vocab_items: str, model_name: str, alias: str
) -> tuple[str, str]:
    """Log the best model (pyfunc + item vectors) in the active run, register it, set the alias.
    Returns (model URI, version)."""
    from udfs.pyfunc import UserTower, save_model_data

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        save_model_data(model, data)
        example = pd.DataFrame(
            {
                "hist_item_idx": [[2] + [0] * (model.config.history_length - 1)],
                "hist_type_idx": [[1] + [0] * (model.config.history_length - 1)],
                "hist_age_s": [[60] + [0] * (model.config.history_length - 1)],
                "hist_len": [1],
            }
        )
        if UserTower(data).predict(example).shape != (1, model.config.dim):
            raise TrainingError("the saved model does not give one user vector per history")
        info = mlflow.pyfunc.log_model(
            name="model", loader_module="udfs.pyfunc", data_path=data, code_paths=PACKAGE_DIRS,
            signature=model_signature(model.config.dim), input_example=example,
            pip_requirements=model_requirements(),
        )  # fmt: skip
        vectors = np.load(os.path.join(data, "item_vectors.npy"))
        items = pd.read_parquet(vocab_items)[["item_idx", "item_id", "category_idx"]]
        table = pd.DataFrame({"item_idx": np.arange(len(vectors)), "vector": list(vectors)}).merge(
            items, on="item_idx", how="left"
        )
        path = os.path.join(tmp, "item_embeddings.parquet")
        table.to_parquet(path, index=False)
        mlflow.log_artifact(path, artifact_path="item_embeddings")
    version = mlflow.register_model(info.model_uri, model_name)
    move_alias(model_name, alias, str(version.version))
    return info.model_uri, str(version.version)


def log_ranker(
    mlflow: Any, ranker: Any, info: dict[str, Any], model_name: str, alias: str
) -> tuple[str, str]:
    """Log a fitted ranker (pyfunc ``udfs.ranker``: its weights, feature names, generators and
    their settings in ``info``) in the active run, register it, set the alias. Returns (model
    URI, version)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

    from udfs.ranker import RankerModel, save_ranker_data

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        save_ranker_data(ranker, info, data)
        example = pd.DataFrame({"features": [np.zeros(len(info["feature_names"]), np.float32)]})
        if RankerModel(data).predict(example).shape != (1,):
            raise TrainingError("the saved ranker does not give one score per candidate")
        signature = ModelSignature(
            inputs=Schema([ColSpec(Array(DataType.float), "features")]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
        )
        # no input example: MLflow's serving check would send it as JSON doubles and fail
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            model_info = mlflow.pyfunc.log_model(
                name="ranker", loader_module="udfs.ranker", data_path=data,
                code_paths=PACKAGE_DIRS, signature=signature,
                pip_requirements=model_requirements(),
            )  # fmt: skip
    version = mlflow.register_model(model_info.model_uri, model_name)
    move_alias(model_name, alias, str(version.version))
    return model_info.model_uri, str(version.version)


MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


ITEM_EMBEDDINGS = "item_embeddings/item_embeddings.parquet"


def _model_uri(uri: str) -> str:
    if not MODEL_URI.match(uri):
        raise ValueError("use models:/NAME@ALIAS or models:/NAME/VERSION")
    return uri


# A registered model to score or evaluate (``--model-uri`` of score, evaluate and the night).
ModelUri = Annotated[str, AfterValidator(_model_uri)]


@dataclass
class ResolvedModel:
    """A registered model version, loaded: its tower and its item vocabulary."""

    uri: str
    name: str
    version: str
    run_id: str
    tower: UserTower
    vectors: np.ndarray  # (num_items, dim)
    item_ids: np.ndarray  # index -> item id ("" for PAD / OOV)

    @property
    def history_length(self) -> int:
        return int(self.tower.config.history_length)

    def item_index(self, spark: SparkSession) -> DataFrame:
        """(item_id, item_idx) of the model's vocabulary, as a small DataFrame."""
        idx = np.arange(L.FIRST_INDEX, len(self.item_ids))
        frame = pd.DataFrame(
            {"item_id": self.item_ids[idx].astype(str), "item_idx": idx.astype("int32")}
        )
        return spark.createDataFrame(frame, "item_id string, item_idx int")


def configure_tracking(data_root: str) -> str:
    import mlflow

    uri = default_tracking_uri(data_root)
    mlflow.set_tracking_uri(uri)
    return uri


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def registered_version(uri: str, flag: str, hint: str) -> tuple[str, Any]:
    """(name, model version) of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: ConfigError
    for another form (named as the config value ``flag``), InputError naming the URI, the
    store and the registered models (and ``hint``) when it does not exist."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.match(uri)
    if not match:
        raise ConfigError(
            f"invalid config value {flag}={uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    client, name = MlflowClient(), match["name"]
    try:
        mv = (
            client.get_model_version_by_alias(name, match["alias"])
            if match["alias"]
            else client.get_model_version(name, match["version"])
        )
    except MlflowException as exc:
        known = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise InputError(
            f"model {uri} does not exist in the registry at {mlflow.get_tracking_uri()} "
            f"(registered models: {known}){hint}: {exc.message}"
        ) from exc
    return name, mv


def resolve(uri: str) -> ResolvedModel:
    """Load ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: InputError naming the URI when
    the model, alias or version does not exist, or its item table does not match its vectors."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name, mv = registered_version(uri, "model_uri", "")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    tower = pyfunc.get_raw_model()
    if not isinstance(tower, UserTower):
        raise InputError(f"model {uri} is not a cartwheel two-tower model ({type(tower).__name__})")
    vectors = tower.item_vectors()
    try:
        path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=ITEM_EMBEDDINGS)
    except MlflowException as exc:
        raise InputError(
            f"model {uri} has no item table ({ITEM_EMBEDDINGS} in run {mv.run_id})"
        ) from exc
    table = pd.read_parquet(path, columns=["item_idx", "item_id"])
    if (
        len(table) != len(vectors)
        or (table["item_idx"].to_numpy() != np.arange(len(vectors))).any()
    ):
        raise InputError(
            f"model {uri}: its item table ({len(table)} rows) does not match its {len(vectors)} item vectors"
        )
    item_ids = table["item_id"].fillna("").astype(str).to_numpy(dtype=object)
    log.info("[model] %s -> %s version %s (%d items)", uri, name, mv.version, len(vectors) - 2)
    return ResolvedModel(uri, name, str(mv.version), str(mv.run_id), tower, vectors, item_ids)


@dataclass
class ResolvedRanker:
    """A registered ranker version, loaded."""

    uri: str
    name: str
    version: str
    run_id: str
    model: Any  # udfs.ranker.RankerModel


def resolve_ranker(uri: str) -> ResolvedRanker:
    """Load a ranker from ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: InputError naming
    the URI when it does not exist or is not a cartwheel ranker."""
    import mlflow

    from udfs.ranker import RankerModel

    name, mv = registered_version(uri, "ranker_uri", " (run `cartwheel rank` first)")
    model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}").get_raw_model()
    if not isinstance(model, RankerModel):
        raise InputError(f"model {uri} is not a cartwheel ranker ({type(model).__name__})")
    log.info(
        "[model] %s -> %s version %s (%d features)", uri, name, mv.version, len(model.feature_names)
    )
    return ResolvedRanker(uri, name, str(mv.version), str(mv.run_id), model)


def move_alias(name: str, alias: str, version: str) -> None:
    """Point ``models:/name@alias`` at ``version``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


def log_evaluation(doc: dict[str, Any], model: ResolvedModel, files: dict[str, str]) -> str:
    """An evaluation run nested under the model's training run; returns its id."""
    import mlflow

    parent = mlflow.get_run(model.run_id)
    with mlflow.start_run(
        experiment_id=parent.info.experiment_id,
        run_name=f"evaluate-{doc['run_date']}-v{model.version}",
        tags={"mlflow.parentRunId": model.run_id, "cartwheel.step": "evaluate"},
    ) as run:
        mlflow.log_params(
            {"run_date": doc["run_date"], "model_version": model.version, "exclude": doc["exclude"]}
        )
        mlflow.log_metrics(
            {
                f"{m}.{metric}_at_{k}": v
                for m, per_k in doc["metrics"].items()
                for k, values in per_k.items()
                for metric, v in values.items()
                if metric != "users"
            }
        )
        for name, text in files.items():
            mlflow.log_text(text, f"report/{name}")
        return str(run.info.run_id)
