"""The logged ranker's pyfunc flavour: candidate feature vectors in, scores out.

MLflow loads a cartwheel ranker through this module (``loader_module="udfs.ranker"``):
``_load_pyfunc(data_path)`` returns a ``RankerModel`` whose ``predict`` takes a pandas frame with
a ``features`` column (one list of floats per candidate, in the order of ``feature_names``) and
returns one float32 score per row (higher ranks first). The data folder holds ``ranker.pt``:
the network's settings and weights (its input standardisation included), the feature names,
the generators whose lists are the candidates and the settings each generator used.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from pipelines.ranker import Ranker, RankerSettings

if TYPE_CHECKING:  # the pyfunc itself loads without pyspark
    from pyspark.sql import DataFrame

RANKER_FILE = "ranker.pt"


def save_ranker_data(ranker: Ranker, info: dict[str, Any], folder: str) -> None:
    """Write what ``_load_pyfunc`` reads; ``info`` holds at least ``feature_names``."""
    os.makedirs(folder, exist_ok=True)
    settings = ranker.settings
    torch.save(
        {
            "dim": int(ranker.mean.shape[0]),
            "settings": {"kind": settings.kind, "hidden": settings.hidden,
                         "cross_layers": settings.cross_layers},
            "state": ranker.state_dict(),
            "info": info,
        },
        os.path.join(folder, RANKER_FILE),
    )  # fmt: skip


class RankerModel:
    """A fitted ranker with its feature names and candidate config."""

    def __init__(self, data_path: str | None = None, saved: dict[str, Any] | None = None) -> None:
        if saved is None:
            assert data_path is not None
            saved = torch.load(os.path.join(data_path, RANKER_FILE), map_location="cpu")
        self.saved = saved
        self.info: dict[str, Any] = saved["info"]
        self.feature_names: list[str] = list(self.info["feature_names"])
        if len(self.feature_names) != saved["dim"]:
            raise ValueError(
                f"ranker data ({data_path or 'in memory'}) names {len(self.feature_names)} features for a "
                f"network of {saved['dim']} inputs"
            )
        self.ranker = Ranker(saved["dim"], RankerSettings(**saved["settings"]))
        self.ranker.load_state_dict(saved["state"])
        self.ranker.eval()

    def to_bytes(self) -> bytes:
        """The saved ranker as bytes, shipped to executors with the scoring function."""
        buffer = io.BytesIO()
        torch.save(self.saved, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> RankerModel:
        return cls(saved=torch.load(io.BytesIO(payload), map_location="cpu"))

    def get_raw_model(self) -> RankerModel:
        """What ``PyFuncModel.get_raw_model()`` returns: this object."""
        return self

    def predict(
        self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if "features" not in model_input.columns:
            raise ValueError("ranker input lacks the column features")
        values = model_input["features"].to_numpy()
        x = np.stack(values) if values.dtype == object else np.asarray(values)
        x = np.asarray(x, dtype=np.float32).reshape(len(model_input), -1)
        if x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"ranker input has {x.shape[1]} features per row; the ranker was fitted on "
                f"{len(self.feature_names)} ({', '.join(self.feature_names)})"
            )
        with torch.no_grad():
            return self.ranker(torch.as_tensor(x)).numpy().astype(np.float32)


def score_pairs(pairs: DataFrame, ranker: RankerModel) -> DataFrame:
    """``pairs`` with a ``features`` column -> the same rows with the ranker's ``score``
    (float), computed in a pandas UDF that loads the ranker once per task."""
    from pyspark.sql import types as T

    payload = ranker.to_bytes()  # a few KB: shipped with the function, no broadcast needed

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = RankerModel.from_bytes(payload)
        torch.set_num_threads(1)  # one task per core already
        for batch in batches:
            yield batch.assign(score=model.predict(batch[["features"]]) if len(batch) else [])

    schema = T.StructType([*pairs.schema.fields, T.StructField("score", T.FloatType(), False)])
    return pairs.mapInPandas(score, schema)  # type: ignore[arg-type]


def _load_pyfunc(data_path: str) -> RankerModel:
    """MLflow's loader-module hook."""
    return RankerModel(data_path)
