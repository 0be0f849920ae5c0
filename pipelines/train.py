"""The per-worker training loop, independent of the launcher (Horovod or torch.distributed).

Everything distributed goes through a ``Collective`` (all-reduce, broadcast, optimizer
wrapping), data through ``open_split(split, epoch)`` (an iterable of column batches: the
caller's Petastorm reader over this worker's slice), and tracking through ``on_epoch`` (called
on rank 0). So the same loop runs under ``horovod.spark.run`` and ``TorchDistributor``, and in
tests with a single process.

Each epoch: train on this worker's slice (all workers take the same number of steps: they
agree before each step that every one still has a batch), evaluate Recall@K and NDCG@K on the
val split against all items (sums all-reduced), checkpoint on rank 0, and stop early when val
Recall@K has not improved for ``patience`` epochs. A non-finite loss on any worker stops every
worker with an error naming the epoch and step.

Why one module of this size: the settings, the loop, its losses, the prefetching reader and
the val metrics change together (a new loss or metric is a setting, a branch in the loop and
a figure in the epoch history), and every launcher and test calls exactly ``train_loop``.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from pipelines.errors import CartwheelError, ConfigError, require_at_least_1
from pipelines.model import (
    ModelConfig,
    RankingTotals,
    TwoTower,
    autocast_for,
    full_softmax_loss,
    mask_history,
    mask_unrecommendable,
    novel_targets,
    ranking_totals,
    sampled_softmax_loss,
)
from pipelines.schemas import HISTORY_COLUMNS, option

Batch = dict[str, np.ndarray]
FEATURES = (*HISTORY_COLUMNS, "target_item_idx", "label_weight")


class TrainingError(CartwheelError):
    """Training cannot go on (non-finite loss, bad data); the message says where."""


class Collective(Protocol):
    """What the loop needs from a distributed runtime."""

    rank: int
    size: int
    local_rank: int

    def wrap_optimizer(
        self, optimizer: torch.optim.Optimizer, model: torch.nn.Module
    ) -> torch.optim.Optimizer: ...

    def broadcast_model(self, model: torch.nn.Module) -> None: ...

    def broadcast_object(self, obj: Any) -> Any: ...

    def allreduce_sum(self, tensor: Tensor) -> Tensor: ...


class SingleProcess:
    """The trivial collective: one worker, nothing to synchronise."""

    rank = 0
    size = 1
    local_rank = 0

    def wrap_optimizer(
        self, optimizer: torch.optim.Optimizer, model: torch.nn.Module
    ) -> torch.optim.Optimizer:
        return optimizer

    def broadcast_model(self, model: torch.nn.Module) -> None:
        return None

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def allreduce_sum(self, tensor: Tensor) -> Tensor:
        return tensor


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Optimisation settings of one training run: declared once, these fields are also the flags
    of ``cartwheel train`` (``TrainConfig`` inherits them)."""

    epochs: int = option(5, "maximum epochs")
    batch_size: int = option(256, "examples per worker per step (in-batch negatives)")
    learning_rate: float = option(3e-3, "Adam learning rate (dense layers)")
    sparse_learning_rate: float = option(3e-2, "SparseAdam learning rate (embedding tables)")
    patience: int = option(2, "stop after this many epochs without a better val recall")
    k: int = option(10, "K of the Recall@K / NDCG@K validation metrics")
    eval_batch_size: int = option(1024, "val examples scored against all items at once")
    shuffle_buffer: int = option(20_000, "rows mixed across row groups before batching")
    seed: int = option(0, "random seed")
    mixed_precision: str = option("auto", "auto (bf16/fp16 on GPU, off on CPU), bf16, fp16 or off")
    max_steps_per_epoch: int = option(0, "cap on steps per epoch (0: the whole slice)")
    log_every_steps: int = option(50, "progress line every this many steps")
    checkpoints_kept: int = option(2, "epoch checkpoints kept (besides the best)")
    # Below 1 the model learns discovery over repetition (the in-session funnel: view -> click ->
    # cart of one item).
    repeat_target_weight: float = option(
        1.0, "loss weight of examples whose target is already in the history (0: only discovery)"
    )
    logq_correction: bool = option(
        True, "correct in-batch logits by log item frequency (--no-logq-correction: off)"
    )
    select_on: str = option(
        "all", "best epoch by val recall over all targets or novel targets only"
    )
    softmax: str = option(
        "sampled",
        "full: every catalog item is a negative of every example; sampled: in-batch negatives "
        "with logQ correction; auto: full up to --full-softmax-max-items items, else sampled",
    )
    full_softmax_max_items: int = option(
        100_000, "largest vocabulary trained with the full softmax under --softmax auto"
    )

    def full_softmax(self, num_items: int) -> bool:
        """Whether a vocabulary of ``num_items`` indices trains with the full softmax."""
        return self.softmax == "full" or (
            self.softmax == "auto" and num_items <= self.full_softmax_max_items
        )

    def __post_init__(self) -> None:
        self.validate_settings()

    def validate_settings(self) -> None:
        """ConfigError naming the first bad value."""
        if self.softmax not in ("auto", "full", "sampled"):
            raise ConfigError(
                f"invalid config value softmax={self.softmax!r}: must be auto, full or sampled"
            )
        if self.mixed_precision not in ("auto", "bf16", "fp16", "off"):
            raise ConfigError(
                f"invalid config value mixed_precision={self.mixed_precision!r}: must be auto, bf16, fp16 or off"
            )
        require_at_least_1(
            self,
            (
                "epochs",
                "batch_size",
                "patience",
                "k",
                "eval_batch_size",
                "shuffle_buffer",
                "log_every_steps",
                "checkpoints_kept",
            ),
        )
        if (
            self.learning_rate <= 0
            or self.sparse_learning_rate <= 0
            or self.max_steps_per_epoch < 0
        ):
            raise ConfigError(
                "invalid config value: learning rates must be > 0 and max_steps_per_epoch >= 0"
            )
        if not 0 <= self.repeat_target_weight <= 1:
            raise ConfigError(
                f"invalid config value repeat_target_weight={self.repeat_target_weight}: must be in [0, 1]"
            )
        if self.select_on not in ("all", "novel"):
            raise ConfigError(f"invalid config value select_on={self.select_on!r}: all or novel")

    def settings(self) -> TrainSettings:
        """This object's ``TrainSettings`` fields (of a subclass too) as a ``TrainSettings``."""
        return TrainSettings(**{f.name: getattr(self, f.name) for f in fields(TrainSettings)})


@dataclass
class EpochReport:
    """What one epoch did; rank 0 hands it to ``on_epoch`` and keeps it in checkpoints."""

    epoch: int
    train_loss: float
    examples: int
    steps: int
    seconds: float
    read_seconds: float
    compute_seconds: float
    val_recall: float
    val_ndcg: float
    val_examples: int
    improved: bool
    workers: int
    val_recall_novel: float = (
        0.0  # on examples whose target is not in the history, seen items excluded
    )
    val_ndcg_novel: float = 0.0
    val_novel_examples: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def metrics(self, k: int) -> dict[str, float]:
        return {
            "train_loss": self.train_loss,
            f"val_recall_at_{k}": self.val_recall,
            f"val_ndcg_at_{k}": self.val_ndcg,
            f"val_novel_recall_at_{k}": self.val_recall_novel,
            f"val_novel_ndcg_at_{k}": self.val_ndcg_novel,
            "examples_per_second": self.examples_per_second,
            "epoch_seconds": self.seconds,
            "read_seconds": self.read_seconds,
            "compute_seconds": self.compute_seconds,
        }


@dataclass
class TrainOutcome:
    """The loop's result (identical on every rank except ``best_checkpoint``, rank 0's path)."""

    epochs_run: list[int]
    start_epoch: int
    best_epoch: int
    best_val_recall: float
    best_val_ndcg: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: str | None = None


# -- checkpoints ----------------------------------------------------------------------------


class Checkpoints(Protocol):
    """Where rank 0 keeps epoch states (``jobs/runtime/checkpoints.py: CheckpointStore`` on a
    folder): the loop saves each epoch and the best one, and resumes from the latest."""

    def save(self, epoch: int, state: dict[str, Any]) -> Any: ...

    def save_best(self, state: dict[str, Any]) -> Any: ...

    def latest_epoch(self) -> int | None: ...

    def load(self, epoch: int) -> dict[str, Any]: ...

    def best_path(self) -> Any: ...


# -- batches ---------------------------------------------------------------------------------


def rebatch(
    batches: Iterable[Batch],
    batch_size: int,
    shuffle_buffer: int,
    seed: int,
    drop_last: bool = True,
) -> Iterator[Batch]:
    """Re-cut reader batches (row groups) into training batches, shuffling through a buffer."""
    rng = np.random.default_rng(seed)
    pending: list[Batch] = []
    pending_rows = 0

    def concat() -> Batch:
        return {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}

    for batch in batches:
        rows = len(next(iter(batch.values())))
        if rows == 0:
            continue
        pending.append(batch)
        pending_rows += rows
        if pending_rows >= max(shuffle_buffer, batch_size):
            merged = concat()
            order = rng.permutation(pending_rows)
            full = (pending_rows // batch_size) * batch_size
            for start in range(0, full, batch_size):
                idx = order[start : start + batch_size]
                yield {k: v[idx] for k, v in merged.items()}
            rest = order[full:]
            pending = [{k: v[rest] for k, v in merged.items()}] if len(rest) else []
            pending_rows = len(rest)
    if pending_rows:
        merged = concat()
        order = rng.permutation(pending_rows)
        for start in range(0, pending_rows, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) == batch_size or not drop_last:
                yield {k: v[idx] for k, v in merged.items()}


_DONE = object()


def prefetch(source: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``source`` in a background thread, ``depth`` items ahead, so reading overlaps
    compute. An exception in the source is re-raised here, in the consumer's thread."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:
            items.put(exc)

    thread = threading.Thread(target=produce, name="cartwheel-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def recent_and_replay(
    batches: Iterable[Batch], since: np.datetime64, replay: float, seed: int
) -> Iterator[Batch]:
    """The rows of ``batches`` whose ``target_time`` is at or after ``since``, plus a random
    ``replay`` share of the older ones (another sample for another ``seed``), without the
    ``target_time`` column: what a warm start trains on."""
    rng = np.random.default_rng(seed)
    for batch in batches:
        times = np.asarray(batch["target_time"]).astype("datetime64[us]")
        keep = (times >= since) | (rng.random(len(times)) < replay)
        if keep.any():
            yield {k: v[keep] for k, v in batch.items() if k != "target_time"}


def to_tensors(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    out = {}
    for name in FEATURES:
        dtype = torch.float32 if name == "label_weight" else torch.long
        out[name] = torch.as_tensor(batch[name], dtype=dtype, device=device)
    return out


# -- the loop --------------------------------------------------------------------------------


def evaluate(
    model: TwoTower, batches: Iterable[Batch], k: int, device: torch.device, comm: Collective
) -> tuple[RankingTotals, RankingTotals]:
    """Recall@K / NDCG@K of the val split against all items, summed over workers: for every
    example, and for the *novel* ones (target not in the user's history) with the history's
    items excluded from the candidates, as a serving list that skips seen items would."""
    model.eval()
    every, novel = RankingTotals(k=k), RankingTotals(k=k)
    with torch.no_grad():
        items = model.all_item_vectors()
        for batch in batches:
            t = to_tensors(batch, device)
            users = model.user_vectors(
                t["hist_item_idx"], t["hist_type_idx"], t["hist_age_s"], t["hist_len"]
            )
            scores = mask_unrecommendable(users @ items.T)
            every.add(ranking_totals(scores, t["target_item_idx"], k))
            fresh = novel_targets(t["hist_item_idx"], t["hist_len"], t["target_item_idx"])
            if fresh.any():
                unseen = mask_history(
                    scores[fresh], t["hist_item_idx"][fresh], t["hist_len"][fresh]
                )
                novel.add(ranking_totals(unseen, t["target_item_idx"][fresh], k))
    s = comm.allreduce_sum(
        torch.tensor(
            [every.examples, every.hits, every.dcg, novel.examples, novel.hits, novel.dcg],
            dtype=torch.float64,
        )
    )
    return (
        RankingTotals(k=k, examples=float(s[0]), hits=float(s[1]), dcg=float(s[2])),
        RankingTotals(k=k, examples=float(s[3]), hits=float(s[4]), dcg=float(s[5])),
    )


def _state(
    model: TwoTower,
    optimizers: list[torch.optim.Optimizer],
    epoch: int,
    best: dict[str, Any],
    history: list[dict[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "model_config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizers": [o.state_dict() for o in optimizers],
        "best": best,
        "history": history,
        "meta": meta,
    }


def _own_random_state(loop: Callable[..., TrainOutcome]) -> Callable[..., TrainOutcome]:
    """Run ``loop`` with random draws (initial weights, dropout) from ``settings.seed`` inside
    a forked RNG: the caller's global random state is the same afterwards."""

    @functools.wraps(loop)
    def seeded(*, settings: TrainSettings, device: torch.device, **kwargs: Any) -> TrainOutcome:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(settings.seed)
            return loop(settings=settings, device=device, **kwargs)

    return seeded


def batch_loss(
    model: TwoTower,
    t: dict[str, Tensor],
    weights: Tensor,
    settings: TrainSettings,
    temperature: float,
) -> Tensor:
    """The training loss of one batch: full softmax over the catalog or in-batch sampled
    softmax (``settings.softmax``)."""
    if settings.full_softmax(model.config.num_items):
        users = model.user_vectors(
            t["hist_item_idx"], t["hist_type_idx"], t["hist_age_s"], t["hist_len"]
        )
        return full_softmax_loss(
            users, model.all_item_vectors(), t["target_item_idx"], weights, temperature
        )
    log_q = model.item_log_q[t["target_item_idx"]]
    if not settings.logq_correction:
        log_q = torch.zeros_like(log_q)
    users, items = model(t)
    return sampled_softmax_loss(users, items, t["target_item_idx"], weights, log_q, temperature)


def load_parameters(model: TwoTower, weights: dict[str, Tensor]) -> None:
    """Set every parameter of ``model`` from ``weights`` (buffers stay: they come from the
    vocabulary); ValueError naming a parameter that is missing or shaped differently."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            value = weights.get(name)
            if value is None or value.shape != parameter.shape:
                found = "missing" if value is None else f"shaped {tuple(value.shape)}"
                raise ValueError(
                    f"initial weights: parameter {name} is {found}, the model needs {tuple(parameter.shape)}"
                )
            parameter.copy_(value)


@_own_random_state
def train_loop(
    *,
    comm: Collective,
    model_config: ModelConfig,
    item_category: Tensor,
    item_log_q: Tensor,
    settings: TrainSettings,
    open_split: Callable[[str, int], Iterable[Batch]],
    checkpoints: Checkpoints | None,
    device: torch.device,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    initial_weights: dict[str, Tensor] | None = None,
) -> TrainOutcome:
    """Train the two-tower model on ``device``; every worker calls it with the same arguments
    (seeded by ``settings.seed`` without touching the caller's random state). A warm start
    passes ``initial_weights`` (every parameter, by name; ``model.carry_weights``): training
    begins from them unless it resumes from a checkpoint."""
    say = on_progress if (on_progress is not None and comm.rank == 0) else (lambda _msg: None)
    autocast, amp_dtype = autocast_for(device, settings.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    model = TwoTower(model_config, item_category, item_log_q)
    if initial_weights is not None:
        load_parameters(model, initial_weights)
    model = model.to(device)
    if model_config.sparse:
        # Sparse table gradients: only the rows a batch touched are synchronised and updated.
        optimizers = [
            comm.wrap_optimizer(
                torch.optim.SparseAdam(
                    list(model.sparse_parameters()), lr=settings.sparse_learning_rate
                ),
                model,
            ),
            comm.wrap_optimizer(
                torch.optim.Adam(list(model.dense_parameters()), lr=settings.learning_rate), model
            ),
        ]
    else:
        optimizers = [
            comm.wrap_optimizer(
                torch.optim.Adam(model.parameters(), lr=settings.learning_rate), model
            )
        ]
    start_epoch, history = 1, []
    best: dict[str, Any] = {
        "epoch": 0,
        "val_recall": -1.0,
        "val_ndcg": 0.0,
        "epochs_without_improvement": 0,
    }
    # Rank 0 decides which epoch to resume from; every worker then loads that same checkpoint
    # (the folder is shared: local mode, DBFS, NFS), so no multi-GB state crosses the wire.
    resume_epoch = (
        checkpoints.latest_epoch()
        if (resume and checkpoints is not None and comm.rank == 0)
        else None
    )
    resume_epoch = comm.broadcast_object(resume_epoch)
    if resume_epoch is not None:
        assert checkpoints is not None
        state = checkpoints.load(resume_epoch)
        model.load_state_dict(state["model"])
        for opt, opt_state in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        start_epoch, history, best = resume_epoch + 1, state["history"], state["best"]
        say(
            f"resuming after epoch {resume_epoch} (best val recall@{settings.k} {best['val_recall']:.4f} at epoch {best['epoch']})"
        )
    # Identical starting weights everywhere (optimizer states are identical already: empty on a
    # fresh start, loaded from the same file on resume).
    comm.broadcast_model(model)

    epochs_run: list[int] = []
    stopped_early = False
    for epoch in range(start_epoch, settings.epochs + 1):
        if best["epochs_without_improvement"] >= settings.patience:
            stopped_early = True
            break
        model.train()
        started = time.perf_counter()
        read_s = compute_s = 0.0
        loss_sum = torch.zeros((), dtype=torch.float64)
        examples = steps = 0
        bad_loss: str | None = None
        batches = iter(
            rebatch(
                open_split("train", epoch),
                settings.batch_size,
                settings.shuffle_buffer,
                settings.seed * 1000 + epoch * 10 + comm.rank,
            )
        )
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            read_s += t1 - t0
            # One all-reduce agrees on two things: every worker has a batch, and no worker saw a
            # non-finite loss on the previous step. Unequal slices would otherwise hang a worker.
            flags = comm.allreduce_sum(
                torch.tensor([0.0 if batch is not None else 1.0, 1.0 if bad_loss else 0.0])
            )
            if flags[1] > 0:
                raise TrainingError(
                    bad_loss or f"a non-finite loss on another worker at epoch {epoch} step {steps}"
                )
            if flags[0] > 0 or (
                settings.max_steps_per_epoch and steps >= settings.max_steps_per_epoch
            ):
                break
            assert batch is not None
            t = to_tensors(batch, device)
            weights = t["label_weight"]
            if settings.repeat_target_weight < 1:
                fresh = novel_targets(t["hist_item_idx"], t["hist_len"], t["target_item_idx"])
                weights = weights * torch.where(
                    fresh,
                    torch.ones_like(weights),
                    weights.new_tensor(settings.repeat_target_weight),
                )
            with autocast():
                loss = batch_loss(model, t, weights, settings, model_config.temperature)
            for opt in optimizers:
                opt.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                for opt in optimizers:
                    scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                for opt in optimizers:
                    opt.step()
            value = float(loss.detach())
            if not np.isfinite(value):
                bad_loss = (
                    f"loss is {value} at epoch {epoch} step {steps + 1} on worker {comm.rank}"
                )
            loss_sum += value * len(batch["target_item_idx"])
            examples += len(batch["target_item_idx"])
            steps += 1
            compute_s += time.perf_counter() - t1
            if settings.log_every_steps and steps % settings.log_every_steps == 0:
                say(
                    f"epoch {epoch} step {steps}: loss {value:.4f}, {examples * comm.size / (time.perf_counter() - started):,.0f} examples/s"
                )
        if bad_loss:
            raise TrainingError(bad_loss)
        totals = comm.allreduce_sum(
            torch.tensor([float(loss_sum), float(examples), float(steps)], dtype=torch.float64)
        )
        if totals[1] == 0:
            raise TrainingError(
                f"epoch {epoch}: no training batch on any worker (batch size {settings.batch_size} > rows per worker?)"
            )
        seconds = time.perf_counter() - started
        val, val_novel = evaluate(
            model,
            rebatch(open_split("val", epoch), settings.eval_batch_size, 0, 0, drop_last=False),
            settings.k,
            device,
            comm,
        )
        if val.examples == 0:
            raise TrainingError("the val split gave no examples to evaluate")
        chosen = val_novel if settings.select_on == "novel" else val
        improved = chosen.recall > best["val_recall"] + 1e-12
        if improved:
            best = {
                "epoch": epoch,
                "val_recall": chosen.recall,
                "val_ndcg": chosen.ndcg,
                "epochs_without_improvement": 0,
            }
        else:
            best = {**best, "epochs_without_improvement": best["epochs_without_improvement"] + 1}
        report = EpochReport(
            epoch=epoch, train_loss=float(totals[0] / totals[1]), examples=int(totals[1]), steps=int(totals[2]) // comm.size,
            seconds=seconds, read_seconds=read_s, compute_seconds=compute_s, val_recall=val.recall, val_ndcg=val.ndcg,
            val_examples=int(val.examples), improved=improved, workers=comm.size,
            val_recall_novel=val_novel.recall, val_ndcg_novel=val_novel.ndcg, val_novel_examples=int(val_novel.examples),
        )  # fmt: skip
        history.append(asdict(report))
        epochs_run.append(epoch)
        say(
            f"epoch {epoch}: loss {report.train_loss:.4f}, val recall@{settings.k} {val.recall:.4f}, "
            f"ndcg@{settings.k} {val.ndcg:.4f} (novel targets: recall {val_novel.recall:.4f}), "
            f"{report.examples_per_second:,.0f} examples/s"
            f"{' (best)' if improved else ''}"
        )
        # Record the epoch before checkpointing it: a run killed in between redoes the epoch
        # (its metrics logged again at the same step), but never resumes past unlogged metrics.
        if on_epoch is not None and comm.rank == 0:
            on_epoch(report)
        if comm.rank == 0 and checkpoints is not None:
            state = _state(model, optimizers, epoch, best, history, meta or {})
            if improved:
                checkpoints.save_best(state)
            checkpoints.save(epoch, state)

    return TrainOutcome(
        epochs_run=epochs_run,
        start_epoch=start_epoch,
        best_epoch=best["epoch"],
        best_val_recall=best["val_recall"],
        best_val_ndcg=best["val_ndcg"],
        stopped_early=stopped_early,
        history=history,
        best_checkpoint=str(checkpoints.best_path())
        if (checkpoints is not None and comm.rank == 0)
        else None,
    )
