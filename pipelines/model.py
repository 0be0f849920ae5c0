"""The two-tower retrieval model, its loss and its ranking metrics (pure torch).

Item tower: item-index embedding + category embedding (+ an optional precomputed content
vector per item) -> linear projection to ``dim``, L2-normalised.

User tower: the history's item representations (the item tower's embeddings, shared), plus
event-type and recency embeddings, encoded by a small Transformer (or a masked mean, the simple
option) -> projection to ``dim``, L2-normalised. Padding never influences a user vector: the
mask comes from ``hist_len``, not from the padded values.

Score: dot product / temperature. Loss: sampled softmax over the batch's other target items
(in-batch negatives), with logQ correction for how often an item is sampled as a target, and
accidental hits (the same item elsewhere in the batch) masked; each example weighted by its
label weight.

Embedding tables are sized from the vocabulary and use sparse gradients: a batch touches a few
thousand rows of tables that may hold millions, so optimisers and all-reduces only see those
rows (``SparseAdam`` for the tables, ``Adam`` for the dense layers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pipelines.common import FIRST_INDEX, OOV, PAD, option
from pipelines.errors import ConfigError, require_at_least_1

NUM_AGE_BUCKETS = 32  # log2 buckets of seconds: 0 (< 1 s) .. 31 (>= ~34 years)


# What scoring computes in (``--precision``): bfloat16 halves the item table and runs the user
# tower and the product in bfloat16. It is fast where the hardware has bfloat16 arithmetic (GPUs;
# CPUs with AVX-512 BF16 or AMX) and may be slower than float32 elsewhere. Scores keep bfloat16's
# 8 significant bits, so near-equal items may swap places: bench/score_precision.py measures the
# speed and the quality delta.
PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a ``PRECISIONS`` name; a ValueError naming it otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """The model's shape as a user chooses it: declared once, these fields are also the flags of
    ``cartwheel train`` (``TrainConfig`` inherits them); the data gives the rest (``ModelConfig``)."""

    dim: int = option(64, "user/item vector size")
    item_embedding_dim: int = option(64, "item embedding size")
    category_embedding_dim: int = option(16, "category embedding size")
    content_dim: int = option(0, "size of a precomputed content vector per item (0: none)")
    encoder: str = option("transformer", "history encoder: transformer or mean")
    layers: int = option(1, "Transformer layers")
    heads: int = option(2, "Transformer attention heads")
    dropout: float = option(0.1, "dropout in the history encoder")
    temperature: float = option(0.05, "softmax temperature of the dot-product score")
    sparse: bool = option(
        True,
        "sparse embedding gradients (SparseAdam, all-gathered); --no-sparse: dense tables, one "
        "Adam, all-reduce",
        aliases=("--sparse-embeddings",),
    )

    def validate_shape(self) -> None:
        """ConfigError naming the first bad value."""
        require_at_least_1(
            self, ("dim", "item_embedding_dim", "category_embedding_dim", "layers", "heads")
        )
        if self.content_dim < 0 or not 0 <= self.dropout < 1 or self.temperature <= 0:
            raise ConfigError(
                f"invalid config value: content_dim {self.content_dim} must be >= 0, dropout "
                f"{self.dropout} in [0, 1), temperature {self.temperature} > 0"
            )
        if self.encoder not in ("transformer", "mean"):
            raise ConfigError(
                f"invalid config value encoder={self.encoder!r}: must be transformer or mean"
            )
        if self.item_embedding_dim % self.heads:
            raise ConfigError(
                f"invalid config value heads={self.heads}: item_embedding_dim "
                f"{self.item_embedding_dim} must divide by it"
            )

    def shape(self) -> dict[str, Any]:
        """This object's ``ModelShape`` fields (of a subclass too), for ``ModelConfig(**...)``."""
        return {f.name: getattr(self, f.name) for f in fields(ModelShape)}


@dataclass(frozen=True, kw_only=True)
class ModelConfig(ModelShape):
    """Sizes and shape of the two-tower model; saved with every checkpoint and model."""

    num_items: int
    num_categories: int
    num_event_types: int = 5
    history_length: int = 50

    def __post_init__(self) -> None:
        self.validate_shape()
        if self.num_items < 3 or self.num_categories < 2:
            raise ConfigError(
                f"vocabulary too small: {self.num_items} items, {self.num_categories} categories"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def age_bucket(age_s: Tensor) -> Tensor:
    """Seconds -> log2 bucket in [0, NUM_AGE_BUCKETS)."""
    return torch.clamp(
        torch.floor(torch.log2(age_s.float().clamp(min=1.0))).long() + 1, 0, NUM_AGE_BUCKETS - 1
    )


def history_mask(hist_len: Tensor, length: int) -> Tensor:
    """True where a position holds a real event (position < hist_len)."""
    positions = torch.arange(length, device=hist_len.device).unsqueeze(0)
    return positions < hist_len.unsqueeze(1)


class TwoTower(nn.Module):
    """Two-tower retrieval model over vocabulary indices."""

    item_category: Tensor  # (num_items,) category index of every item index (a buffer)
    item_log_q: Tensor  # (num_items,) log sampling probability, for the logQ correction
    item_content: Tensor  # (num_items, content_dim) precomputed content vectors, if any

    def __init__(
        self, config: ModelConfig, item_category: Tensor, item_log_q: Tensor | None = None
    ) -> None:
        super().__init__()
        c = config
        self.config = c
        if item_category.shape != (c.num_items,):
            raise ValueError(
                f"item_category must have shape ({c.num_items},), got {tuple(item_category.shape)}"
            )
        self.register_buffer("item_category", item_category.long())
        log_q = item_log_q if item_log_q is not None else torch.zeros(c.num_items)
        self.register_buffer("item_log_q", log_q.float())
        self.register_buffer("item_content", torch.zeros(c.num_items, c.content_dim))
        self.item_embedding = nn.Embedding(
            c.num_items, c.item_embedding_dim, padding_idx=PAD, sparse=c.sparse
        )
        self.category_embedding = nn.Embedding(
            c.num_categories, c.category_embedding_dim, padding_idx=PAD, sparse=c.sparse
        )
        self.item_projection = nn.Linear(
            c.item_embedding_dim + c.category_embedding_dim + c.content_dim, c.dim
        )
        # user tower
        self.history_input = nn.Linear(
            c.item_embedding_dim + c.category_embedding_dim + c.content_dim, c.item_embedding_dim
        )
        self.type_embedding = nn.Embedding(c.num_event_types, c.item_embedding_dim, padding_idx=PAD)
        self.age_embedding = nn.Embedding(NUM_AGE_BUCKETS, c.item_embedding_dim)
        self.position_embedding = nn.Embedding(c.history_length, c.item_embedding_dim)
        if c.encoder == "transformer":
            layer = nn.TransformerEncoderLayer(
                c.item_embedding_dim, c.heads, dim_feedforward=2 * c.item_embedding_dim, dropout=c.dropout,
                batch_first=True, norm_first=True,
            )  # fmt: skip
            self.encoder: nn.Module | None = nn.TransformerEncoder(
                layer, c.layers, enable_nested_tensor=False
            )
        else:
            self.encoder = None
        self.user_projection = nn.Linear(c.item_embedding_dim, c.dim)
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        nn.init.normal_(self.category_embedding.weight, std=0.05)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()
            self.category_embedding.weight[PAD].zero_()

    # -- item tower ---------------------------------------------------------------------------

    def item_features(self, items: Tensor) -> Tensor:
        """Concatenated item, category (and content) features of item indices (any shape)."""
        parts = [self.item_embedding(items), self.category_embedding(self.item_category[items])]
        if self.config.content_dim:
            parts.append(self.item_content[items])
        return torch.cat(parts, dim=-1)

    def item_vectors(self, items: Tensor) -> Tensor:
        """Item tower: (..., ) indices -> (..., dim) unit vectors."""
        return F.normalize(self.item_projection(self.item_features(items)), dim=-1)

    def all_item_vectors(self, batch_size: int = 65536) -> Tensor:
        """The item-embedding table: (num_items, dim); rows 0 (pad) and 1 (OOV) included."""
        out = []
        for start in range(0, self.config.num_items, batch_size):
            idx = torch.arange(
                start,
                min(start + batch_size, self.config.num_items),
                device=self.item_category.device,
            )
            out.append(self.item_vectors(idx))
        return torch.cat(out)

    # -- user tower ---------------------------------------------------------------------------

    def user_vectors(
        self, hist_item_idx: Tensor, hist_type_idx: Tensor, hist_age_s: Tensor, hist_len: Tensor
    ) -> Tensor:
        """User tower: histories (B, L) + lengths (B,) -> (B, dim) unit vectors."""
        length = hist_item_idx.shape[1]
        mask = history_mask(hist_len, length)
        # An empty history attends to its (zero) first position rather than to nothing.
        mask[:, 0] = True
        items = torch.where(mask, hist_item_idx, torch.zeros_like(hist_item_idx))
        types = torch.where(mask, hist_type_idx, torch.zeros_like(hist_type_idx))
        ages = torch.where(mask, hist_age_s, torch.zeros_like(hist_age_s))
        positions = torch.arange(length, device=items.device).unsqueeze(0).expand_as(items)
        x = (
            self.history_input(self.item_features(items))
            + self.type_embedding(types)
            + self.age_embedding(age_bucket(ages))
            + self.position_embedding(positions)
        )
        if self.encoder is not None:
            x = self.encoder(x, src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return F.normalize(self.user_projection(pooled), dim=-1)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(user vectors, target item vectors) for a training batch."""
        users = self.user_vectors(
            batch["hist_item_idx"], batch["hist_type_idx"], batch["hist_age_s"], batch["hist_len"]
        )
        return users, self.item_vectors(batch["target_item_idx"])

    def sparse_parameters(self) -> Iterator[Tensor]:
        yield self.item_embedding.weight
        yield self.category_embedding.weight

    def dense_parameters(self) -> Iterator[Tensor]:
        sparse = {id(p) for p in self.sparse_parameters()}
        for p in self.parameters():
            if id(p) not in sparse:
                yield p


def index_map(new_ids: Sequence[str], old_ids: Sequence[str]) -> Tensor:
    """For each index of a new vocabulary (``new_ids[i]``: the id at index i, PAD and OOV
    included), the index of the same id in the old one, or -1 where it is new. PAD and OOV map
    to themselves."""
    old = {key: i for i, key in enumerate(old_ids) if i >= FIRST_INDEX}
    out = [old.get(key, -1) for key in new_ids]
    out[PAD], out[OOV] = PAD, OOV
    return torch.tensor(out, dtype=torch.long)


@dataclass(frozen=True)
class WarmStart:
    """What ``carry_weights`` carried from a trained model into a new vocabulary's model."""

    items_carried: int  # item rows copied (items in both vocabularies)
    items_new: int  # item rows left at their fresh initialisation
    categories_carried: int
    categories_new: int
    layers_carried: int  # non-vocabulary parameters copied (all of them)


def carry_weights(
    source: TwoTower, target: TwoTower, item_source: Tensor, category_source: Tensor
) -> WarmStart:
    """Copy ``source``'s weights into ``target`` (a model of the same shape over a new
    vocabulary): every parameter but the two tables as it is; row ``i`` of the item table
    from ``source`` row ``item_source[i]`` and of the category table from
    ``category_source[i]`` (-1: a new entry, left at its initialisation; see ``index_map``).
    ValueError naming the first parameter whose shape differs."""
    if item_source.shape != (target.config.num_items,) or category_source.shape != (
        target.config.num_categories,
    ):
        raise ValueError(
            f"index maps must have shapes ({target.config.num_items},) and "
            f"({target.config.num_categories},), got {tuple(item_source.shape)} and "
            f"{tuple(category_source.shape)}"
        )
    theirs = dict(source.named_parameters())
    tables = {"item_embedding.weight": item_source, "category_embedding.weight": category_source}
    carried = 0
    with torch.no_grad():
        for name, mine in target.named_parameters():
            other = theirs.get(name)
            if other is None:
                raise ValueError(f"the trained model has no parameter {name}")
            index = tables.get(name)
            if index is None:
                if other.shape != mine.shape:
                    raise ValueError(
                        f"parameter {name} has shape {tuple(other.shape)} in the trained model, "
                        f"{tuple(mine.shape)} in the new one"
                    )
                mine.copy_(other)
                carried += 1
                continue
            if other.shape[1:] != mine.shape[1:]:
                raise ValueError(
                    f"parameter {name} has rows of {other.shape[1]} in the trained model, "
                    f"{mine.shape[1]} in the new one"
                )
            known = index >= 0
            if bool((index[known] >= other.shape[0]).any()):
                raise ValueError(f"{name}: a source row is beyond the trained model's table")
            rows = torch.nonzero(known).squeeze(1)
            mine[rows] = other[index[rows]].to(mine.dtype)
    item_known = int((item_source[FIRST_INDEX:] >= 0).sum())
    category_known = int((category_source[FIRST_INDEX:] >= 0).sum())
    return WarmStart(
        items_carried=item_known,
        items_new=target.config.num_items - FIRST_INDEX - item_known,
        categories_carried=category_known,
        categories_new=target.config.num_categories - FIRST_INDEX - category_known,
        layers_carried=carried,
    )


def sampled_softmax_loss(
    users: Tensor,
    items: Tensor,
    target_idx: Tensor,
    weights: Tensor,
    log_q: Tensor,
    temperature: float,
) -> Tensor:
    """In-batch sampled softmax with logQ correction, accidental hits masked, weighted mean.

    ``users``/``items``: (B, d) unit vectors of example i's user and target item; the other
    rows' items are example i's negatives. ``log_q``: (B,) log sampling probability of each
    row's item. Logit(i, j) = u_i . v_j / T - log q_j; column j is masked for row i when it holds
    the same item as row i's target (j != i).
    """
    logits = users @ items.T / temperature - log_q.unsqueeze(0)
    same_item = target_idx.unsqueeze(0) == target_idx.unsqueeze(1)
    diagonal = torch.eye(len(target_idx), dtype=torch.bool, device=users.device)
    logits = logits.masked_fill(same_item & ~diagonal, float("-inf"))
    per_example = F.cross_entropy(
        logits.float(), torch.arange(len(target_idx), device=users.device), reduction="none"
    )
    return (per_example * weights).sum() / weights.sum().clamp(min=1e-12)


def full_softmax_loss(
    users: Tensor, all_items: Tensor, target_idx: Tensor, weights: Tensor, temperature: float
) -> Tensor:
    """Softmax over the whole catalog, weighted mean: every vocabulary item (from
    ``FIRST_INDEX``; padding and OOV are never targets) is a negative of every example.

    ``users``: (B, d) unit vectors; ``all_items``: (num_items, d), the item tower over every
    index; ``target_idx``: (B,) indices >= ``FIRST_INDEX``. Exact where in-batch sampling is an
    estimate biased towards popular items, and affordable while B x num_items logits fit.
    """
    logits = users @ all_items[FIRST_INDEX:].T / temperature
    per_example = F.cross_entropy(logits.float(), target_idx - FIRST_INDEX, reduction="none")
    return (per_example * weights).sum() / weights.sum().clamp(min=1e-12)


def log_q_from_counts(counts: Tensor, smoothing: float = 1.0) -> Tensor:
    """log of each item's share of training targets (add-``smoothing``; pad and OOV get the floor)."""
    c = counts.double() + smoothing
    c[PAD] = smoothing
    return torch.log(c / c.sum()).float()


@dataclass
class RankingTotals:
    """Sums for Recall@K / NDCG@K over examples with one relevant item each."""

    k: int
    examples: float = 0.0
    hits: float = 0.0
    dcg: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def add(self, other: RankingTotals) -> None:
        self.examples += other.examples
        self.hits += other.hits
        self.dcg += other.dcg

    @property
    def recall(self) -> float:
        return self.hits / self.examples if self.examples else 0.0

    @property
    def ndcg(self) -> float:
        return self.dcg / self.examples if self.examples else 0.0


def rank_of_targets(scores: Tensor, targets: Tensor) -> Tensor:
    """0-based rank of each row's target among all columns (ties count against the target)."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    return (scores >= target_scores).sum(1) - 1


def ranking_totals(scores: Tensor, targets: Tensor, k: int) -> RankingTotals:
    """Hits and DCG at K for a (B, N) score matrix against each row's single target item.

    Columns PAD and OOV can never be recommended; callers give them -inf. A target tied with
    other items is ranked after all of them (the conservative convention).
    """
    ranks = rank_of_targets(scores, targets)
    hit = ranks < k
    dcg = torch.where(
        hit, 1.0 / torch.log2(ranks.double() + 2.0), torch.zeros_like(ranks, dtype=torch.float64)
    )
    return RankingTotals(
        k=k, examples=float(len(targets)), hits=float(hit.sum()), dcg=float(dcg.sum())
    )


def mask_unrecommendable(scores: Tensor) -> Tensor:
    """Give the padding and OOV columns -inf so they never rank."""
    scores[:, PAD] = float("-inf")
    scores[:, OOV] = float("-inf")
    return scores


def novel_targets(hist_item_idx: Tensor, hist_len: Tensor, targets: Tensor) -> Tensor:
    """True for rows whose target item is not among the items of their own history."""
    real = history_mask(hist_len, hist_item_idx.shape[1])
    return ~((hist_item_idx == targets.unsqueeze(1)) & real).any(dim=1)


def mask_history(scores: Tensor, hist_item_idx: Tensor, hist_len: Tensor) -> Tensor:
    """Give every row's own history items -inf (recommend only what the user has not touched)."""
    real = history_mask(hist_len, hist_item_idx.shape[1])
    items = torch.where(real, hist_item_idx, torch.full_like(hist_item_idx, PAD))
    return scores.scatter(1, items, float("-inf"))


def random_recall_at_k(num_candidates: int, k: int) -> float:
    """Expected Recall@K of a uniformly random ranking over ``num_candidates`` items."""
    return min(1.0, k / num_candidates)


def autocast_for(
    device: torch.device, mode: str
) -> tuple[Callable[[], AbstractContextManager[Any]], torch.dtype | None]:
    """(context factory, dtype) for mixed precision: bf16 where supported, else fp16, on CUDA only
    unless asked explicitly; ``off`` (or the CPU under ``auto``) means full float32."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return nullcontext, None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        dtype = torch.float16
    else:
        dtype = torch.bfloat16
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), dtype
