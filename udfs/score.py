"""Batch scoring inside executors: ``mapInPandas`` functions (iterator form) over Arrow batches.

The driver broadcasts one ``ScoringPayload`` (the user tower's weights, the item-vector table,
the candidate mask, index -> item id, and a popularity order for cold users). Each Python worker
rebuilds the tower and the scorer once per broadcast (cached across its tasks), then every
Arrow batch of users becomes one batched forward pass, one matrix product against the item
table and one ``torch.topk``: never a per-user Python loop over items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines import recs as R
from pipelines import schemas as S
from udfs.pyfunc import UserTower


@dataclass(frozen=True)
class ScoringPayload:
    """What every scoring task needs (broadcast once). ``key`` is a digest of all of it: what a
    Python worker caches its rebuilt tower and scorer under. ``precision``: what the tower and
    the scorer compute in (``pipelines.model.PRECISIONS``); the payload itself holds float32."""

    model_state: bytes
    item_vectors: np.ndarray  # (num_items, dim) float32
    candidates: np.ndarray  # (num_items,) bool
    item_ids: np.ndarray  # (num_items,) object: index -> item id ("" for PAD/OOV)
    popularity: np.ndarray  # candidate indices, most popular first
    precision: str = "float32"
    key: str = field(init=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256(self.model_state)
        h.update(self.precision.encode())
        for array in (self.item_vectors, self.candidates, self.popularity):
            a = np.ascontiguousarray(array)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        h.update("\x00".join(map(str, self.item_ids)).encode("utf-8"))
        object.__setattr__(self, "key", h.hexdigest())


@dataclass
class _Loaded:
    tower: UserTower
    scorer: R.TopKScorer
    payload: ScoringPayload


_CACHE: dict[str, _Loaded] = {}


def _load(broadcast: Any) -> _Loaded:
    """The payload's tower and scorer, built once per Python worker and payload.

    Keyed by the payload's digest, not by the broadcast object: a reused Python worker sees
    many broadcasts over its life, and a freed broadcast's ``id()`` is handed to the next one,
    which once gave a later task the previous model (with another vocabulary size).
    """
    payload: ScoringPayload = broadcast.value if hasattr(broadcast, "value") else broadcast
    loaded = _CACHE.get(payload.key)
    if loaded is None:
        tower = UserTower.from_state_bytes(payload.model_state, payload.precision)
        scorer = R.TopKScorer(
            payload.item_vectors,
            payload.candidates,
            device=tower.device,
            precision=payload.precision,
        )
        _CACHE.clear()  # one model per worker at a time
        loaded = _CACHE[payload.key] = _Loaded(tower, scorer, payload)
    return loaded


def _excluded(frame: pd.DataFrame) -> list[np.ndarray]:
    return [np.asarray(e, dtype=np.int64) for e in frame["excluded_idx"]]


def score_frame(loaded: _Loaded, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Scoring-input rows (``SCORING_INPUT_COLUMNS``) -> ``S.SCORED`` rows: up to k per
    user, rank 1 first; warm users by the model, cold users (``hist_len`` 0) by popularity."""
    p = loaded.payload
    warm = frame["hist_len"].to_numpy() > 0
    parts: list[pd.DataFrame] = []
    if warm.any():
        users = frame.loc[warm]
        vectors = loaded.tower.predict(users)
        top = loaded.scorer.top_k(vectors, k, excluded=_excluded(users))
        ids = np.repeat(users["user_id"].to_numpy(), k)
        ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))
        items = top.items.reshape(-1)
        keep = items >= 0
        parts.append(
            pd.DataFrame(
                {
                    "user_id": ids[keep],
                    "rank": ranks[keep],
                    "item_id": p.item_ids[items[keep]],
                    "score": top.scores.reshape(-1)[keep].astype(np.float32),
                    "source": R.MODEL,
                }
            )
        )
    if (~warm).any():
        cold = frame.loc[~warm]
        lists = list(R.popularity_top_k(p.popularity, k, _excluded(cold)))
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        items = np.concatenate(lists) if lengths.sum() else np.zeros(0, dtype=np.int64)
        parts.append(
            pd.DataFrame(
                {
                    "user_id": np.repeat(cold["user_id"].to_numpy(), lengths),
                    "rank": np.concatenate([np.arange(1, n + 1, dtype=np.int32) for n in lengths])
                    if len(lengths)
                    else np.zeros(0, dtype=np.int32),
                    "item_id": p.item_ids[items],
                    "score": np.full(len(items), np.nan, dtype=np.float32),
                    "source": R.POPULARITY,
                }
            )
        )
    if not parts:
        return pd.DataFrame({f.name: [] for f in S.SCORED.schema.fields})
    out = pd.concat(parts, ignore_index=True)
    out["score"] = out["score"].astype("float32").where(out["source"] == R.MODEL, None)
    return out


def score_users(
    broadcast: Any, k: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """``mapInPandas`` function: scoring inputs -> ``S.SCORED``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = _load(broadcast)
        for frame in batches:
            yield score_frame(loaded, frame, k)

    return run


def similar_frame(loaded: _Loaded, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows with ``item_idx`` -> ``S.SIMILAR_SCORED``: each item's k nearest candidate
    items by cosine similarity of item vectors (never the item itself)."""
    p = loaded.payload
    return nearest_frame(loaded.scorer, p.item_vectors, p.item_ids, frame, k)


def nearest_frame(
    scorer: R.TopKScorer, vectors: np.ndarray, item_ids: np.ndarray, frame: pd.DataFrame, k: int
) -> pd.DataFrame:
    """Rows with ``item_idx`` (indices into ``vectors``) -> ``S.SIMILAR_SCORED``: each item's k
    nearest of the scorer's candidates by dot product (never the item itself)."""
    idx = frame["item_idx"].to_numpy().astype(np.int64)
    top = scorer.top_k(vectors[idx], k, self_items=idx)
    items = top.items.reshape(-1)
    keep = items >= 0
    return pd.DataFrame(
        {
            "item_id": np.repeat(item_ids[idx], k)[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(idx))[keep],
            "similar_item_id": item_ids[items[keep]],
            "score": top.scores.reshape(-1)[keep].astype(np.float32),
        }
    )


@dataclass(frozen=True)
class VectorTable:
    """Item vectors without a tower (a baseline's item factors), broadcast once: ``vectors``
    (num_items, dim) float32 of unit length (or zero), ``candidates`` (num_items,) bool, and
    ``item_ids`` (num_items,) index -> item id."""

    vectors: np.ndarray
    candidates: np.ndarray
    item_ids: np.ndarray


def nearest_items(
    broadcast: Any, k: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """``mapInPandas`` function: ``item_idx`` rows -> ``S.SIMILAR_SCORED`` against a broadcast
    ``VectorTable`` (its scorer built once per task)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        table: VectorTable = broadcast.value
        scorer = R.TopKScorer(table.vectors, table.candidates)
        for frame in batches:
            yield nearest_frame(scorer, table.vectors, table.item_ids, frame, k)

    return run


def similar_items(
    broadcast: Any, k: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """``mapInPandas`` function: ``item_idx`` rows -> ``S.SIMILAR_SCORED``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = _load(broadcast)
        for frame in batches:
            yield similar_frame(loaded, frame, k)

    return run
