"""Score: recommendation-table contracts, scoring inputs built in Spark, and the torch scorer.

The Spark side builds, for every active user, the model input (the last L item events before a
cutoff, most recent first, as vocabulary indices) and the items to exclude for that user. The
torch side (``TopKScorer``) turns a batch of user vectors into top-K lists: one matrix product
against the broadcast item table, exclusions set to -inf, ``torch.topk``. No users x items
cross join ever exists in Spark; memory per task is bounded by ``max_scores_per_chunk``.

Cold users (no item event before the cutoff) get the candidate items in popularity order; their
rows say ``source = popularity`` and carry no score.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from torch import Tensor

from pipelines import label as L
from pipelines import schemas as S
from pipelines import user_state as U
from pipelines.model import precision_dtype

MODEL, POPULARITY = "model", "popularity"
EXCLUDE_RULES: dict[str, tuple[str, ...]] = {
    # rule -> event types whose items a user is not shown again
    "purchased": (S.PURCHASE,),
    "interacted": (S.VIEW, S.CLICK, S.CART, S.PURCHASE),
    "none": (),
}

SCORING_INPUT_COLUMNS = ("user_id", *S.HISTORY_COLUMNS, "excluded_idx")


def scoring_inputs(
    events: DataFrame,
    item_index: DataFrame,
    cutoff: dt.date,
    history_length: int,
    exclude: str,
    users: DataFrame | None = None,
) -> DataFrame:
    """Clean events + (item_id, item_idx) -> one row per user: ``user_id``, the model input
    (``hist_item_idx``, ``hist_type_idx``, ``hist_age_s`` padded to L, ``hist_len``) as of the
    start of ``cutoff`` (events strictly before it), and ``excluded_idx`` (items the
    ``exclude`` rule hides from that user).

    Users are those with any event before the cutoff, or exactly ``users`` (one ``user_id``
    column) when given; a user without item events gets ``hist_len`` 0."""
    Ln = history_length
    before = events.where(F.col("event_time") < L.day_start(cutoff))
    if users is not None:
        before = before.join(users.select("user_id").distinct(), on="user_id", how="inner")
    items = L.indexed_events(
        before.where(F.col("item_id").isNotNull()),
        F.broadcast(item_index.select("item_id", "item_idx")),
    )
    # The last L item events before the cutoff, most recent first: the same order and ties as
    # a training example's history (label orders by event time, then event id).
    recent = Window.partitionBy("user_id").orderBy(
        F.col("event_time").desc(), F.col("event_id").desc()
    )
    hist = (
        items.withColumn("pos", F.row_number().over(recent))
        .where(F.col("pos") <= Ln)
        .groupBy("user_id")
        .agg(F.sort_array(F.collect_list(F.struct("pos", L.history_entry().alias("e")))).alias("h"))
    )
    active = users.select("user_id") if users is not None else before.select("user_id")
    return _inputs(active.distinct(), hist, exclusions(items, exclude), cutoff, Ln)


def scoring_inputs_from_state(
    state: DataFrame,
    events: DataFrame,
    item_index: DataFrame,
    cutoff: dt.date,
    history_length: int,
    exclude: str,
) -> DataFrame:
    """``scoring_inputs`` for every user of a per-user history state (``S.USER_HISTORY`` as
    of the day before ``cutoff``, ``pipelines.user_state``): the histories come from the state,
    so the window's events are not sorted; ``events`` (before the cutoff) give only the items
    the ``exclude`` rule hides. Equal to ``scoring_inputs`` over the state's window."""
    items = L.indexed_events(
        events.where(F.col("item_id").isNotNull() & (F.col("event_time") < L.day_start(cutoff))),
        F.broadcast(item_index.select("item_id", "item_idx")),
    )
    hist = U.history_positions(
        state.select("user_id", F.slice("events", 1, history_length).alias("events")), item_index
    )
    return _inputs(
        state.select("user_id"), hist, exclusions(items, exclude), cutoff, history_length
    )


def exclusions(items: DataFrame, exclude: str) -> DataFrame:
    """``indexed_events`` of item events -> (user_id, ``excluded_idx``): the vocabulary items
    the ``exclude`` rule hides from each user, sorted."""
    return (
        items.where(
            F.col("event_type").isin(*EXCLUDE_RULES[exclude]) & (F.col("idx") >= L.FIRST_INDEX)
        )
        .groupBy("user_id")
        .agg(F.array_sort(F.collect_set("idx")).alias("excluded_idx"))
    )


def _inputs(
    active: DataFrame, hist: DataFrame, excluded: DataFrame, cutoff: dt.date, length: int
) -> DataFrame:
    """Users + their (user_id, ``h``: positioned history entries) + their exclusions -> the
    ``SCORING_INPUT_COLUMNS`` (a user missing from ``hist`` gets an empty history)."""
    recent_first = F.coalesce(
        F.transform(F.col("h"), lambda x: x["e"]), F.array().cast(f"array<{L.HISTORY_ENTRY}>")
    )
    columns = L.history_columns(recent_first, F.lit(cutoff_seconds(cutoff)), length)
    return (
        active.join(hist, on="user_id", how="left")
        .join(excluded, on="user_id", how="left")
        .select(
            "user_id",
            *[columns[c].alias(c) for c in S.HISTORY_COLUMNS],
            F.coalesce("excluded_idx", F.array().cast("array<int>")).alias("excluded_idx"),
        )
    )


def cutoff_seconds(cutoff: dt.date) -> float:
    """Seconds since the epoch at the start of ``cutoff`` (UTC): histories' ages count from it."""
    return dt.datetime.combine(cutoff, dt.time(), tzinfo=dt.UTC).timestamp()


def item_popularity(events: DataFrame, item_index: DataFrame, cutoff: dt.date) -> DataFrame:
    """(item_idx, events) for vocabulary items: item events strictly before the cutoff."""
    return (
        events.where(F.col("item_id").isNotNull() & (F.col("event_time") < L.day_start(cutoff)))
        .join(F.broadcast(item_index.select("item_id", "item_idx")), on="item_id", how="inner")
        .groupBy("item_idx")
        .agg(F.count(F.lit(1)).alias("events"))
    )


# -- the torch scorer ---------------------------------------------------------------------------


TOPK_GROUP = 64  # columns per group of grouped_top_k


def grouped_top_k(scores: Tensor, k: int, group: int = TOPK_GROUP) -> tuple[Tensor, Tensor]:
    """``torch.topk(scores, k, dim=1)`` (values, indices) for a (rows, groups * ``group``)
    matrix, from each group's maximum: a row's k best entries lie in its k groups with the
    highest maxima, so one pass of maxima and two top-k's over k * ``group`` and
    ``columns / group`` entries replace a top-k over every column, the scorer's bottleneck
    at 10^5+ items. The values are exact; among equal values the indices may differ."""
    rows, columns = scores.shape
    groups = columns // group
    if k == 0 or groups <= k or columns % group:
        return torch.topk(scores, k, dim=1)
    maxima = scores.view(rows, groups, group).amax(dim=2)
    best = torch.topk(maxima, k, dim=1, sorted=False).indices
    offsets = torch.arange(group, device=scores.device)
    cols = (best.unsqueeze(2) * group + offsets).reshape(rows, k * group)
    top = torch.topk(torch.gather(scores, 1, cols), k, dim=1)
    return top.values, torch.gather(cols, 1, top.indices)


@dataclass(frozen=True)
class TopK:
    """Per-user top-K: ``items`` (users, k) int64 item indices (-1 where fewer than k
    candidates remained) and ``scores`` (users, k) float32 (-inf there)."""

    items: np.ndarray
    scores: np.ndarray


class TopKScorer:
    """Top-K items for user vectors against a fixed item table.

    ``item_vectors`` (num_items, dim); ``candidates`` (num_items,) bool: only these may be
    recommended (PAD, OOV and unsellable items are not). Scores are dot products (the vectors
    are unit length, so cosine similarity). Users are scored in chunks so that at most
    ``max_scores_per_chunk`` scores exist at once. ``precision`` (a key of
    ``pipelines.model.PRECISIONS``): the dtype the item table is held and the product computed
    in; scores come back as float32.
    """

    def __init__(
        self,
        item_vectors: np.ndarray,
        candidates: np.ndarray,
        device: torch.device | None = None,
        max_scores_per_chunk: int = 1 << 26,
        grouped: bool = True,
        precision: str = "float32",
    ) -> None:
        dtype = precision_dtype(precision)
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # columns padded to a whole number of top-k groups (the padding is never a candidate)
        width = -(-len(candidates) // TOPK_GROUP) * TOPK_GROUP
        vectors = np.zeros((width, item_vectors.shape[1]), dtype=item_vectors.dtype)
        vectors[: len(item_vectors)] = item_vectors
        self.items = torch.as_tensor(vectors, device=self.device).to(dtype)
        mask = torch.full((width,), float("-inf"), dtype=self.items.dtype, device=self.device)
        mask[: len(candidates)][torch.as_tensor(candidates, device=self.device)] = 0.0
        self.mask = mask
        self.num_items = len(candidates)
        self.num_candidates = int(np.asarray(candidates).sum())
        self.chunk = max(1, max_scores_per_chunk // max(1, self.num_items))
        self.grouped = grouped  # grouped_top_k (False: one torch.topk over every column)

    def top_k(
        self,
        user_vectors: np.ndarray,
        k: int,
        excluded: list[np.ndarray] | None = None,
        self_items: np.ndarray | None = None,
    ) -> TopK:
        """Top-k per row of ``user_vectors``; ``excluded[i]`` item indices are hidden from row
        i, and ``self_items[i]`` too (for item-to-item similarity)."""
        n = len(user_vectors)
        kk = max(0, min(k, self.num_items))
        items_out = np.full((n, k), -1, dtype=np.int64)
        scores_out = np.full((n, k), float("-inf"), dtype=np.float32)
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            u = torch.as_tensor(np.ascontiguousarray(user_vectors[start:stop]), device=self.device)
            # the mask rides in the product (one pass over the scores, not a second one)
            scores = torch.addmm(self.mask, u.to(self.items.dtype), self.items.T)
            if excluded is not None:
                rows, cols = _pairs(excluded[start:stop])
                if len(rows):
                    scores[torch.as_tensor(rows, device=self.device), torch.as_tensor(cols, device=self.device)] = float("-inf")  # fmt: skip
            if self_items is not None:
                own = torch.as_tensor(self_items[start:stop], device=self.device)
                scores[torch.arange(stop - start, device=self.device), own] = float("-inf")
            values, indices = (
                grouped_top_k(scores, kk) if self.grouped else torch.topk(scores, kk, dim=1)
            )
            vals = values.float().cpu().numpy()
            idx = indices.cpu().numpy()
            idx[~np.isfinite(vals)] = -1
            items_out[start:stop, :kk] = idx
            scores_out[start:stop, :kk] = vals
        return TopK(items_out, scores_out)


def _pairs(excluded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) index arrays of every excluded item of every row."""
    lengths = np.fromiter((len(e) for e in excluded), dtype=np.int64, count=len(excluded))
    if not lengths.sum():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(excluded)), lengths)
    cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in excluded if len(e)])
    return rows, cols


def popularity_top_k(
    ranking: np.ndarray, k: int, excluded: list[np.ndarray]
) -> Iterator[np.ndarray]:
    """For each row: the first k items of ``ranking`` (candidate indices, most popular first)
    that the row does not exclude."""
    for ex in excluded:
        if len(ex):
            keep = ranking[~np.isin(ranking, ex)]
            yield keep[:k]
        else:
            yield ranking[:k]
