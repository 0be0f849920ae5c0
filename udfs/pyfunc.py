"""The logged model's pyfunc flavour: histories in, user vectors out.

MLflow loads a cartwheel model through this module (``loader_module="udfs.pyfunc"``):
``_load_pyfunc(data_path)`` returns a ``UserTower`` whose ``predict`` takes a pandas frame with
``hist_item_idx``, ``hist_type_idx``, ``hist_age_s`` (lists of ints) and ``hist_len`` and
returns a (rows, dim) float32 array of unit-length user vectors. The same object serves
``mlflow.pyfunc.load_model`` on the driver and ``mlflow.pyfunc.spark_udf`` in executors. The
model data folder holds ``model.pt`` (config + weights) and ``item_vectors.npy`` (the item
tower's output for every item index).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipelines.model import ModelConfig, TwoTower, precision_dtype
from pipelines.schemas import HISTORY_COLUMNS, HISTORY_LISTS

INPUT_COLUMNS = HISTORY_COLUMNS
MODEL_FILE = "model.pt"
ITEM_VECTORS_FILE = "item_vectors.npy"


def save_model_data(model: TwoTower, folder: str) -> None:
    """Write what ``_load_pyfunc`` reads: config + weights, and the item-vector table."""
    os.makedirs(folder, exist_ok=True)
    torch.save(
        {"model_config": model.config.to_dict(), "model": model.state_dict()},
        os.path.join(folder, MODEL_FILE),
    )
    with torch.no_grad():
        np.save(
            os.path.join(folder, ITEM_VECTORS_FILE), model.eval().all_item_vectors().cpu().numpy()
        )


def _column(frame: pd.DataFrame, name: str, length: int) -> np.ndarray:
    values = frame[name].to_numpy()
    if values.dtype == object:
        values = (
            np.stack([np.asarray(v, dtype=np.int64) for v in values])
            if len(values)
            else np.zeros((0, length))
        )
    return np.asarray(values, dtype=np.int64)


class UserTower:
    """Histories -> user vectors, in batches, on the GPU when one is visible; the weights in
    ``precision`` (``pipelines.model.PRECISIONS``), the vectors always float32."""

    def __init__(
        self,
        folder: str | None,
        batch_size: int = 4096,
        state: dict[str, Any] | None = None,
        precision: str = "float32",
    ) -> None:
        dtype = precision_dtype(precision)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if state is None:
            if folder is None:
                raise ValueError("UserTower needs a model folder or a state")
            state = torch.load(
                os.path.join(folder, MODEL_FILE), map_location=self.device, weights_only=False
            )
        config = ModelConfig(**state["model_config"])
        self.model = TwoTower(config, state["model"]["item_category"], state["model"]["item_log_q"])
        self.model.load_state_dict(state["model"])
        self.model.to(self.device, dtype).eval()
        self.precision = precision
        self.config = config
        self.batch_size = batch_size
        self.folder = folder

    def get_raw_model(self) -> UserTower:
        """What ``PyFuncModel.get_raw_model()`` returns: this tower (weights, item table)."""
        return self

    def state_bytes(self) -> bytes:
        """Config + weights as bytes (what executors rebuild the tower from)."""
        buffer = io.BytesIO()
        torch.save(
            {"model_config": self.config.to_dict(), "model": self.model.state_dict()}, buffer
        )
        return buffer.getvalue()

    @classmethod
    def from_state_bytes(cls, data: bytes, precision: str = "float32") -> UserTower:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        return cls(None, state=state, precision=precision)

    def item_vectors(self) -> np.ndarray:
        """The item tower's table: (num_items, dim) float32."""
        if self.folder is None:
            with torch.no_grad():
                return self.model.all_item_vectors().float().cpu().numpy()
        return np.load(os.path.join(self.folder, ITEM_VECTORS_FILE))

    def predict(
        self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        missing = [c for c in INPUT_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"model input lacks column(s) {', '.join(missing)}; expected {', '.join(INPUT_COLUMNS)}"
            )
        length = self.config.history_length
        arrays = {c: _column(model_input, c, length) for c in HISTORY_LISTS}
        for name, arr in arrays.items():
            if arr.ndim != 2 or arr.shape[1] != length:
                raise ValueError(f"{name} must hold {length} values per row, got shape {arr.shape}")
        lengths = np.asarray(model_input["hist_len"].to_numpy(), dtype=np.int64)
        out = np.empty((len(model_input), self.config.dim), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(model_input), self.batch_size):
                sl = slice(start, start + self.batch_size)
                t = {k: torch.as_tensor(v[sl], device=self.device) for k, v in arrays.items()}
                vectors = self.model.user_vectors(
                    t["hist_item_idx"],
                    t["hist_type_idx"],
                    t["hist_age_s"],
                    torch.as_tensor(lengths[sl], device=self.device),
                )
                out[sl] = vectors.float().cpu().numpy()
        return out


def _load_pyfunc(data_path: str) -> UserTower:
    """MLflow's loader-module hook."""
    return UserTower(data_path)
