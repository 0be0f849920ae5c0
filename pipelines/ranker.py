"""The second stage's model, without I/O: a network that scores each (user, item) candidate from
its ``pipelines.candidates`` feature vector, the listwise loss it is fitted with, and the
per-worker fitting loop.

A ranker is fitted on lists: every candidate row belongs to one group (a user at one cutoff),
and the loss is the softmax cross-entropy of the group's positives against all its candidates.
The network standardises its input with the mean and spread of the rows it was fitted on; both
are buffers of the module, so a saved ranker scores raw feature vectors as it was trained to.

``fit_ranker`` runs in every worker (Horovod or a single process, through
``pipelines.train.Collective``) over the worker's own files of the ``fit`` and ``select``
lists, whose rows are ordered by ``group_id`` so that a list is never split between workers.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.errors import ConfigError, require_at_least_1
from pipelines.schemas import option
from pipelines.train import Batch, Collective, TrainingError

KINDS = ("mlp", "dcn")
# The columns a fitting worker reads from the ranker's lists.
LIST_COLUMNS = ("group_id", "features", "label", "relevant")


@dataclass(frozen=True, kw_only=True)
class RankerSettings:
    """The ranker network's shape; also flags of ``cartwheel rank``."""

    kind: str = option("mlp", "mlp: one hidden layer; dcn: cross layers beside a deep MLP (DCN-v2)")
    hidden: int = option(32, "width of the ranker's hidden layers")
    cross_layers: int = option(2, "cross layers of the dcn ranker")

    def __post_init__(self) -> None:
        self.validate_ranker()

    def validate_ranker(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"invalid ranker kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.hidden < 1 or self.cross_layers < 1:
            raise ConfigError(
                f"invalid ranker size hidden={self.hidden}, cross_layers={self.cross_layers}: "
                "each must be at least 1"
            )


class CrossNetwork(nn.Module):
    """DCN-v2: cross layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, which multiply features
    explicitly, beside a deep MLP; one linear output over both."""

    def __init__(self, d: int, layers: int, hidden: int) -> None:
        super().__init__()
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.deep = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(d + hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x
        for layer in self.cross:
            c = x * layer(c) + c
        return self.out(torch.cat([c, self.deep(x)], dim=1))


class Ranker(nn.Module):
    """(rows, d) raw feature vectors -> (rows,) scores; higher ranks first."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, d: int, settings: RankerSettings | None = None) -> None:
        super().__init__()
        s = settings or RankerSettings()
        self.settings = s
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        if s.kind == "mlp":
            self.net: nn.Module = nn.Sequential(
                nn.Linear(d, s.hidden), nn.ReLU(), nn.Linear(s.hidden, 1)
            )
        else:
            self.net = CrossNetwork(d, s.cross_layers, s.hidden)

    def standardize_on(self, x: torch.Tensor) -> None:
        """Take the mean and spread of ``x`` (the fitting rows) as the input's standardisation."""
        self.standardize(x.mean(dim=0), x.std(dim=0, unbiased=False))

    def standardize(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the input's standardisation; a constant feature keeps spread 1 instead of
        dividing by zero."""
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(1)


def listwise_loss(
    scores: torch.Tensor, labels: torch.Tensor, group: torch.Tensor, groups: int
) -> torch.Tensor:
    """Scores, 0/1 labels and group ids (0 .. groups-1) of candidate rows -> the mean over the
    groups with a positive of -(sum of the positives' log softmax within the group) / positives.
    A group without a positive teaches nothing and is left out; none at all gives 0."""
    top = torch.full((groups,), float("-inf"), dtype=scores.dtype).scatter_reduce(
        0, group, scores.detach(), "amax", include_self=True
    )
    shifted = scores - top[group]  # the group's max subtracted: exp cannot overflow
    z = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, torch.exp(shifted))
    logp = shifted - torch.log(z[group])
    positives = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, labels)
    gain = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, logp * labels)
    has = positives > 0
    if not bool(has.any()):
        return scores.sum() * 0.0
    return -(gain[has] / positives[has]).mean()


# -- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How a ranker is fitted; also flags of ``cartwheel rank``."""

    epochs: int = option(30, "most passes over the fitting lists")
    patience: int = option(5, "stop after this many epochs without a better selection recall")
    lists_per_batch: int = option(128, "lists (a user at one cutoff) per worker per step")
    learning_rate: float = option(3e-3, "Adam learning rate of the ranker")
    weight_decay: float = option(1e-4, "Adam weight decay of the ranker")
    selection_k: int = option(20, "K of the selection recall that picks the epoch")
    average: float = option(
        0.0,
        "decay per step of an exponential moving average of the weights (0: off, e.g. 0.95): the "
        "epochs are judged, and the ranker saved, with the averaged weights",
    )
    seed: int = option(0, "random seed of the ranker's weights and batch order")

    def __post_init__(self) -> None:
        self.validate_fit()

    def validate_fit(self) -> None:
        require_at_least_1(self, ("epochs", "patience", "lists_per_batch", "selection_k"))
        if not 0.0 <= self.average < 1.0:
            raise ConfigError(f"invalid config value average={self.average}: must be in [0, 1)")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError(
                f"invalid config value learning_rate={self.learning_rate}, weight_decay="
                f"{self.weight_decay}: the rate must be > 0 and the decay >= 0"
            )

    def fit_settings(self) -> FitSettings:
        """This object's ``FitSettings`` fields (of a subclass too) as a ``FitSettings``."""
        return FitSettings(**{f.name: getattr(self, f.name) for f in fields(FitSettings)})


def _runs(group: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal values in ``group``, and its length at the end."""
    cuts = np.flatnonzero(group[1:] != group[:-1]) + 1
    return np.concatenate([[0], cuts, [len(group)]])


def _take(batch: Batch, idx: np.ndarray | slice) -> Batch:
    return {k: v[idx] for k, v in batch.items()}


def _concat(parts: list[Batch]) -> Batch:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def group_batches(
    batches: Iterable[Batch], lists: int, seed: int, shuffle: bool, buffer_lists: int = 4096
) -> Iterator[Batch]:
    """Reader batches whose rows are ordered by ``group_id`` (a list's rows next to each other,
    possibly across two batches) -> batches of up to ``lists`` whole lists, with ``group`` (0 ..
    lists-1 within the batch) and ``groups`` (how many). With ``shuffle`` the lists of every
    ``buffer_lists`` are dealt in a seeded random order."""
    rng = np.random.default_rng(seed)
    carry: Batch | None = None
    pool: list[Batch] = []
    pooled = 0

    def emit(parts: list[Batch]) -> Iterator[Batch]:
        rows = _concat(parts)
        starts = _runs(rows["group_id"])
        order = rng.permutation(len(starts) - 1) if shuffle else np.arange(len(starts) - 1)
        for first in range(0, len(order), lists):
            chosen = order[first : first + lists]
            idx = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in chosen])
            sizes = starts[chosen + 1] - starts[chosen]
            out = _take(rows, idx)
            out["group"] = np.repeat(np.arange(len(chosen)), sizes)
            out["groups"] = np.array([len(chosen)])
            yield out

    for batch in batches:
        if len(batch["group_id"]) == 0:
            continue
        rows = batch if carry is None else _concat([carry, batch])
        starts = _runs(rows["group_id"])
        last = starts[-2]  # the last list may go on in the next batch
        carry = _take(rows, slice(last, None))
        if last > 0:
            pool.append(_take(rows, slice(0, last)))
            pooled += len(starts) - 2
        if pooled >= buffer_lists:
            yield from emit(pool)
            pool, pooled = [], 0
    if carry is not None:
        pool.append(carry)
    if pool:
        yield from emit(pool)


def batch_tensors(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """A ``group_batches`` batch as tensors: x (rows, d), y, relevant, group."""
    return {
        "x": torch.as_tensor(np.asarray(batch["features"], dtype=np.float32), device=device),
        "y": torch.as_tensor(batch["label"], dtype=torch.float32, device=device),
        "relevant": torch.as_tensor(batch["relevant"], dtype=torch.float32, device=device),
        "group": torch.as_tensor(batch["group"], dtype=torch.long, device=device),
    }


def recall_sums(
    scores: torch.Tensor, t: dict[str, torch.Tensor], groups: int, k: int
) -> tuple[float, int]:
    """(sum over the batch's lists of recall@k, lists): a list's recall is its positives among
    its k best-scored candidates over its ``relevant`` targets (proposed or not)."""
    s = scores.detach().cpu().numpy().astype(np.float64)
    group = t["group"].cpu().numpy()
    order = np.lexsort((-s, group))
    g = group[order]
    starts = np.searchsorted(g, np.arange(groups))
    position = np.arange(len(g)) - starts[g]
    top = order[position < k]
    hits = np.bincount(group[top], weights=t["y"].cpu().numpy()[top], minlength=groups)
    relevant = np.zeros(groups)
    relevant[group] = t["relevant"].cpu().numpy()
    has = relevant > 0
    return float((hits[has] / relevant[has]).sum()), int(has.sum())


@dataclass
class FitOutcome:
    best_epoch: int
    best_selection_recall: float
    epochs_run: list[int]
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    fit: dict[str, int] = field(default_factory=dict)  # rows, lists, positives


def fit_ranker(
    *,
    comm: Collective,
    dim: int,
    settings: RankerSettings,
    fit: FitSettings,
    open_split: Callable[[str, int], Iterable[Batch]],
    device: torch.device,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Ranker, FitOutcome]:
    """Fit a ranker on the ``fit`` lists, choosing the epoch by recall@k on the ``select`` lists;
    every worker calls it with the same arguments and gets the same (best-epoch) ranker."""
    say = on_progress if (on_progress is not None and comm.rank == 0) else (lambda _m: None)
    # the standardisation: exact moments over every worker's fitting rows
    # (and the rows, positives and lists it fits on)
    moments = torch.zeros(3 + 2 * dim, dtype=torch.float64)
    last_group = None
    for part in open_split("fit", 0):
        if len(part["group_id"]) == 0:
            continue
        t = batch_tensors({**part, "group": np.zeros(len(part["label"]))}, torch.device("cpu"))
        x = t["x"].double()
        moments[0] += len(x)
        moments[1] += float(t["y"].sum())
        # a list that went on from the previous batch is counted once
        moments[2] += len(_runs(part["group_id"])) - 1 - int(part["group_id"][0] == last_group)
        last_group = part["group_id"][-1]
        moments[3 : 3 + dim] += x.sum(dim=0)
        moments[3 + dim :] += (x * x).sum(dim=0)
    moments = comm.allreduce_sum(moments)
    rows = float(moments[0])
    if rows == 0:
        raise TrainingError("the ranker's fitting lists are empty on every worker")
    mean = moments[3 : 3 + dim] / rows
    std = torch.sqrt(torch.clamp(moments[3 + dim :] / rows - mean * mean, min=0.0))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(fit.seed)
    model = Ranker(dim, settings)
    torch.random.set_rng_state(generator_state)
    model.standardize(mean.float(), std.float())
    model = model.to(device)
    comm.broadcast_model(model)
    optimizer = comm.wrap_optimizer(
        torch.optim.Adam(model.parameters(), lr=fit.learning_rate, weight_decay=fit.weight_decay),
        model,
    )
    # the weights judged and kept: the model's own, or their moving average (the same on every
    # worker, as the averaged gradients keep the weights the same)
    judged = copy.deepcopy(model) if fit.average > 0 else model
    best: dict[str, Any] = {"epoch": 0, "recall": -1.0, "state": None, "since": 0}
    history: list[dict[str, Any]] = []
    epochs_run: list[int] = []
    stopped_early = False
    for epoch in range(1, fit.epochs + 1):
        if best["since"] >= fit.patience:
            stopped_early = True
            break
        started = time.perf_counter()
        model.train()
        batches = iter(
            group_batches(
                open_split("fit", epoch), fit.lists_per_batch,
                fit.seed * 1000 + epoch * 10 + comm.rank, shuffle=True,
            )
        )  # fmt: skip
        loss_sum, steps = 0.0, 0
        bad_loss: str | None = None
        while True:
            batch = next(batches, None)
            # One all-reduce agrees that every worker has a batch (unequal slices would hang a
            # worker otherwise) and that none saw a non-finite loss on the previous step.
            flags = comm.allreduce_sum(
                torch.tensor([0.0 if batch is not None else 1.0, 1.0 if bad_loss else 0.0])
            )
            if flags[1] > 0:
                raise TrainingError(
                    bad_loss or f"a non-finite ranker loss on another worker at epoch {epoch}"
                )
            if flags[0] > 0:
                break
            assert batch is not None
            t = batch_tensors(batch, device)
            loss = listwise_loss(model(t["x"]), t["y"], t["group"], int(batch["groups"][0]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if judged is not model:
                with torch.no_grad():
                    for mine, avg in zip(model.parameters(), judged.parameters(), strict=True):
                        avg.mul_(fit.average).add_(mine, alpha=1.0 - fit.average)
            value = float(loss.detach())
            if not np.isfinite(value):
                bad_loss = f"ranker loss is {value} at epoch {epoch} step {steps + 1} on worker {comm.rank}"
            loss_sum, steps = loss_sum + value, steps + 1
        judged.eval()
        recall_sum, chosen = 0.0, 0
        with torch.no_grad():
            for batch in group_batches(open_split("select", epoch), 1024, 0, shuffle=False):
                t = batch_tensors(batch, device)
                r, n = recall_sums(judged(t["x"]), t, int(batch["groups"][0]), fit.selection_k)
                recall_sum, chosen = recall_sum + r, chosen + n
        totals = comm.allreduce_sum(
            torch.tensor([loss_sum, float(steps), recall_sum, float(chosen)], dtype=torch.float64)
        )
        if totals[1] == 0:
            raise TrainingError(f"epoch {epoch}: no fitting batch on any worker")
        if totals[3] == 0:
            raise TrainingError("the selection lists have no list with a target on any worker")
        recall = float(totals[2] / totals[3])
        improved = recall > best["recall"] + 1e-12
        if improved:
            best = {"epoch": epoch, "recall": recall, "since": 0,
                    "state": copy.deepcopy(judged.state_dict())}  # fmt: skip
        else:
            best["since"] += 1
        report = {
            "epoch": epoch, "loss": float(totals[0] / totals[1]), "steps": int(totals[1]) // comm.size,
            f"selection_recall_at_{fit.selection_k}": recall, "selection_lists": int(totals[3]),
            "improved": improved, "seconds": round(time.perf_counter() - started, 3),
        }  # fmt: skip
        history.append(report)
        epochs_run.append(epoch)
        say(
            f"epoch {epoch}: loss {report['loss']:.4f}, selection recall@{fit.selection_k} "
            f"{recall:.4f}{' (best)' if improved else ''}"
        )
        if on_epoch is not None and comm.rank == 0:
            on_epoch(report)
    model.load_state_dict(best["state"])
    return model.cpu().eval(), FitOutcome(
        best_epoch=best["epoch"], best_selection_recall=best["recall"], epochs_run=epochs_run,
        stopped_early=stopped_early, history=history,
        fit={"rows": int(rows), "positives": int(moments[1]), "lists": int(moments[2])},
    )  # fmt: skip
