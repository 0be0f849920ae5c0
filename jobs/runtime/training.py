"""What runs inside each training process: the collective (Horovod or torch.distributed), the
Petastorm reader of this rank's slice, and MLflow logging on rank 0, around
``pipelines.train.train_loop`` (the two-tower) and ``pipelines.ranker.fit_ranker`` (the
ranker); and ``launch``, which starts them.

``horovod_worker`` and ``ranker_horovod_worker`` are launched by ``horovod.spark.run``;
``torch_worker`` and ``ranker_torch_worker`` by ``TorchDistributor``. Each takes one plain dict
(``WorkerSpec.to_dict()``, ``RankerSpec.to_dict()``) so it pickles small, and each writes a
failing worker's traceback to ``<error_dir>/rank-<r>.txt`` before re-raising, so the driver can
report *that* error instead of a launcher's generic one.

Why one module of over 400 lines: both workers run on the same collectives, Petastorm reader
and error recording, and both are started by the same ``launch``; splitting them would put
each half beside code it depends on in another file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import shutil
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jobs.runtime.checkpoints import CheckpointStore
from pipelines import ranker as R
from pipelines import train as T
from pipelines.model import ModelConfig, log_q_from_counts

# Petastorm 0.13 drives pyarrow 14's legacy dataset API, which warns on every file it opens.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petastorm(\.|$)")

FEATURE_COLUMNS = list(T.FEATURES)
LAUNCHERS = ("horovod", "torch-distributor")


@dataclasses.dataclass
class WorkerSpec:
    """Everything a worker needs, as plain data."""

    files: dict[str, list[str]]  # split -> shard file URIs
    vocab_items: str  # local path of the shard set's vocab/items parquet folder
    model: dict[str, Any]  # ModelConfig fields
    settings: dict[str, Any]  # TrainSettings fields
    checkpoint_dir: str
    error_dir: str
    resume: bool
    tracking_uri: str | None
    mlflow_run_id: str | None
    meta: dict[str, Any]
    threads: int = 0  # torch threads per worker (0: cores / workers on this host)
    initial_weights: str | None = None  # a warm start: parameters to begin from (torch file)
    # a warm start: train on targets from this ISO time on, plus a replay share of older ones
    train_since: str | None = None
    replay: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- collectives ------------------------------------------------------------------------------


class HorovodCollective:
    """Horovod over Gloo (CPU) or NCCL (GPU)."""

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def wrap_optimizer(
        self, optimizer: torch.optim.Optimizer, model: torch.nn.Module
    ) -> torch.optim.Optimizer:
        mine = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(n, p) for n, p in model.named_parameters() if id(p) in mine]
        # sparse gradients are all-gathered (Horovod's default sparse_as_dense=False)
        return self.hvd.DistributedOptimizer(optimizer, named_parameters=named)

    def broadcast_model(self, model: torch.nn.Module) -> None:
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)

    def broadcast_object(self, obj: Any) -> Any:
        # An explicit name: by default Horovod names the op after type(obj), which differs when
        # only the root passes a value (int on rank 0, None elsewhere) and then never matches.
        return self.hvd.broadcast_object(obj, root_rank=0, name="cartwheel.broadcast_object")

    def allreduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.hvd.allreduce(tensor, op=self.hvd.Sum)


class _AveragedGradients(torch.optim.Optimizer):
    """Wraps an optimizer so ``step`` first averages its parameters' gradients over workers.

    torch.distributed has no sparse all-reduce: a sparse embedding gradient is densified,
    all-reduced and made sparse again (rows that any worker touched). Horovod's launcher
    all-gathers sparse gradients instead, which is cheaper for large tables.
    """

    def __init__(self, inner: torch.optim.Optimizer, size: int) -> None:
        self.inner, self.size = inner, size
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        import torch.distributed as dist

        for group in self.inner.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    dense = p.grad.coalesce().to_dense()
                    dist.all_reduce(dense)
                    p.grad = (dense / self.size).to_sparse(sparse_dim=1)
                else:
                    dist.all_reduce(p.grad)
                    p.grad /= self.size
        return self.inner.step(closure)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner.load_state_dict(state_dict)


class TorchCollective:
    """torch.distributed (Gloo on CPU, NCCL on GPU) under TorchDistributor's environment."""

    def __init__(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        self.dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(self.local_rank)

    def wrap_optimizer(
        self, optimizer: torch.optim.Optimizer, model: torch.nn.Module
    ) -> torch.optim.Optimizer:
        return _AveragedGradients(optimizer, self.size)

    def broadcast_model(self, model: torch.nn.Module) -> None:
        for tensor in model.state_dict().values():
            self.dist.broadcast(tensor, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def allreduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        t = tensor.to(self.device)
        self.dist.all_reduce(t)
        return t.cpu()


# -- data ------------------------------------------------------------------------------------


def petastorm_batches(
    files: list[str],
    rank: int,
    size: int,
    seed: int,
    shuffle: bool,
    columns: Sequence[str] = FEATURE_COLUMNS,
) -> Iterator[T.Batch]:
    """This rank's slice of a split (row groups rank, rank+size, ...) as numpy column batches
    (a list column stacked into a 2-d array).

    Petastorm's own thread pool returned no rows for a whole epoch at random inside Horovod
    workers here (checked: same files, same shard, 1 of 4 reads empty), so the reader runs in
    its deterministic in-thread pool and ``pipelines.train.prefetch`` overlaps it with compute.
    """
    from petastorm import make_batch_reader

    reader = make_batch_reader(
        files,
        schema_fields=list(columns),
        cur_shard=rank,
        shard_count=size,
        num_epochs=1,
        shuffle_row_groups=shuffle,
        seed=seed,
        reader_pool_type="dummy",
    )
    try:
        for batch in reader:
            out: T.Batch = {}
            for name in columns:
                values = getattr(batch, name)
                out[name] = np.stack(values) if values.dtype == object else values
            yield out
    finally:
        # (not the context manager: its exit only adds a cache cleanup that prints to stdout,
        # and there is no cache here)
        reader.stop()
        reader.join()


def item_tables(vocab_items: str, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(item -> category index, item -> log q) tensors from the shard set's vocabulary."""
    import pyarrow.parquet as pq

    table = pq.read_table(
        vocab_items, columns=["item_idx", "category_idx", "target_count"]
    ).to_pandas()
    category = torch.zeros(num_items, dtype=torch.long)
    counts = torch.zeros(num_items, dtype=torch.float64)
    idx = torch.as_tensor(table["item_idx"].to_numpy(), dtype=torch.long)
    category[idx] = torch.as_tensor(table["category_idx"].to_numpy(), dtype=torch.long)
    counts[idx] = torch.as_tensor(table["target_count"].to_numpy(), dtype=torch.float64)
    return category, log_q_from_counts(counts)


# -- the worker --------------------------------------------------------------------------------


def pick_device(local_rank: int) -> torch.device:
    """cuda:<local_rank> (made this process's current device) when a GPU is visible, else the CPU."""
    if torch.cuda.is_available():
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


@contextlib.contextmanager
def failure_recorded(error_dir: str, rank: int) -> Iterator[None]:
    """Write a failing worker's traceback to ``<error_dir>/rank-<rank>.txt``, then re-raise."""
    try:
        yield
    except BaseException:
        Path(error_dir).mkdir(parents=True, exist_ok=True)
        Path(error_dir, f"rank-{rank}.txt").write_text(traceback.format_exc())
        raise


def run_worker(comm: T.Collective, spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Train on this rank; returns the outcome as a dict. Records a traceback on failure."""
    spec = WorkerSpec(**spec_dict)
    with failure_recorded(spec.error_dir, comm.rank):
        # Workers sharing a host share its cores; oversubscribed torch threads thrash.
        local_size = max(
            1, int(os.environ.get("HOROVOD_LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
        )
        torch.set_num_threads(spec.threads or max(1, (os.cpu_count() or 1) // local_size))
        model_config = ModelConfig(**spec.model)
        settings = T.TrainSettings(**spec.settings)
        category, log_q = item_tables(spec.vocab_items, model_config.num_items)

        def open_split(split: str, epoch: int) -> Iterator[T.Batch]:
            seed = settings.seed + epoch
            if split == "train" and spec.train_since is not None:
                rows: Iterable[T.Batch] = T.recent_and_replay(
                    petastorm_batches(
                        spec.files[split], comm.rank, comm.size, seed, True,
                        [*FEATURE_COLUMNS, "target_time"],
                    ),
                    np.datetime64(spec.train_since, "us"), spec.replay, seed * 1000 + comm.rank,
                )  # fmt: skip
            else:
                rows = petastorm_batches(
                    spec.files[split], comm.rank, comm.size, seed, split == "train"
                )
            return T.prefetch(rows)

        on_epoch = None
        if comm.rank == 0 and spec.tracking_uri and spec.mlflow_run_id:
            from mlflow import MlflowClient

            client = MlflowClient(spec.tracking_uri)
            run_id = spec.mlflow_run_id

            def on_epoch(report: T.EpochReport) -> None:
                for name, value in report.metrics(settings.k).items():
                    client.log_metric(run_id, name, value, step=report.epoch)

        def progress(message: str) -> None:
            print(f"[train] {message}", flush=True)

        outcome = T.train_loop(
            comm=comm,
            model_config=model_config,
            item_category=category,
            item_log_q=log_q,
            settings=settings,
            open_split=open_split,
            checkpoints=CheckpointStore(spec.checkpoint_dir, keep=settings.checkpoints_kept),
            device=pick_device(comm.local_rank),
            on_epoch=on_epoch,
            on_progress=progress,
            resume=spec.resume,
            meta=spec.meta,
            initial_weights=(
                torch.load(spec.initial_weights, map_location="cpu", weights_only=True)
                if spec.initial_weights
                else None
            ),
        )
        return {"rank": comm.rank, **dataclasses.asdict(outcome)}


def horovod_worker(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Entry point for ``horovod.spark.run``."""
    return run_worker(HorovodCollective(), spec_dict)


def torch_worker(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Entry point for ``TorchDistributor.run``."""
    return run_worker(TorchCollective(), spec_dict)


# -- the ranker's worker -------------------------------------------------------------------------


@dataclasses.dataclass
class RankerSpec:
    """Everything a ranker-fitting worker needs, as plain data."""

    files: dict[str, list[str]]  # split (fit, select) -> list files; rank r reads r, r+size, ...
    dim: int  # features per candidate
    ranker: dict[str, Any]  # RankerSettings fields
    fit: dict[str, Any]  # FitSettings fields
    output: str  # where rank 0 saves the fitted ranker (a local path)
    error_dir: str
    tracking_uri: str | None
    mlflow_run_id: str | None
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_ranker_worker(comm: T.Collective, spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Fit the ranker on this rank's own list files (whole lists, never split between ranks);
    rank 0 saves it to ``spec.output``. Returns the outcome as a dict."""
    spec = RankerSpec(**spec_dict)
    with failure_recorded(spec.error_dir, comm.rank):
        local_size = max(
            1, int(os.environ.get("HOROVOD_LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
        )
        torch.set_num_threads(spec.threads or max(1, (os.cpu_count() or 1) // local_size))
        settings, fit = R.RankerSettings(**spec.ranker), R.FitSettings(**spec.fit)

        def open_split(split: str, epoch: int) -> Iterator[T.Batch]:
            mine = spec.files[split][comm.rank :: comm.size]
            if split == "fit" and epoch > 0:  # another file order every epoch
                random.Random(fit.seed * 1000 + epoch).shuffle(mine)
            return T.prefetch(petastorm_batches(mine, 0, 1, 0, False, R.LIST_COLUMNS))

        on_epoch = None
        if comm.rank == 0 and spec.tracking_uri and spec.mlflow_run_id:
            from mlflow import MlflowClient

            client, run_id = MlflowClient(spec.tracking_uri), spec.mlflow_run_id

            def on_epoch(report: dict[str, Any]) -> None:
                for name, value in report.items():
                    if name not in ("epoch", "improved") and isinstance(value, int | float):
                        client.log_metric(
                            run_id, f"ranker.{name}", float(value), step=report["epoch"]
                        )

        def progress(message: str) -> None:
            print(f"[rank] {message}", flush=True)

        model, outcome = R.fit_ranker(
            comm=comm, dim=spec.dim, settings=settings, fit=fit, open_split=open_split,
            device=torch.device("cpu"), on_epoch=on_epoch, on_progress=progress,
        )  # fmt: skip
        if comm.rank == 0:
            Path(spec.output).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": model.state_dict()}, spec.output)
        return {"rank": comm.rank, **dataclasses.asdict(outcome)}


def ranker_horovod_worker(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Entry point for ``horovod.spark.run``."""
    return run_ranker_worker(HorovodCollective(), spec_dict)


def ranker_torch_worker(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Entry point for ``TorchDistributor.run``."""
    return run_ranker_worker(TorchCollective(), spec_dict)


# -- launching ----------------------------------------------------------------------------------


def local_threads(spark: Any, num_proc: int) -> int:
    """Torch threads per worker when every worker shares this machine (a local master)."""
    master = spark.sparkContext.master or ""
    return max(1, (os.cpu_count() or 1) // num_proc) if master.startswith("local") else 0


def worker_failure(error_dir: str, exc: BaseException) -> T.TrainingError:
    """The first failing worker's own error, in place of the launcher's generic one."""
    reports = sorted(Path(error_dir).glob("rank-*.txt")) if os.path.isdir(error_dir) else []
    if not reports:
        return T.TrainingError(f"training failed: {type(exc).__name__}: {exc}")
    first = reports[0]
    text = first.read_text().strip()
    # The exception line itself (an error message may span several lines after it).
    raised = [
        line
        for line in text.splitlines()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Invalid|Interrupt|Exit)\w*\b", line)
    ]
    last = raised[-1] if raised else (text.splitlines()[-1] if text else "unknown error")
    return T.TrainingError(f"training worker {first.stem} failed: {last}\n{text}")


def launch(
    launcher: str,
    num_proc: int,
    spec: WorkerSpec | RankerSpec,
    horovod_fn: Callable[[dict[str, Any]], dict[str, Any]],
    torch_fn: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``num_proc`` workers (``horovod_fn`` under ``horovod.spark.run``, or ``torch_fn``
    under ``TorchDistributor``) on ``spec``; rank 0's outcome."""
    shutil.rmtree(spec.error_dir, ignore_errors=True)
    try:
        if launcher == "horovod":
            import horovod.spark

            results = horovod.spark.run(
                horovod_fn, args=(spec.to_dict(),), num_proc=num_proc, use_gloo=True, verbose=0,
                start_timeout=int(os.environ.get("HOROVOD_SPARK_START_TIMEOUT", "600")),
            )  # fmt: skip
            return next(r for r in results if r["rank"] == 0)
        from pyspark.ml.torch.distributor import TorchDistributor

        distributor = TorchDistributor(
            num_processes=num_proc, local_mode=False, use_gpu=torch.cuda.is_available()
        )
        result = distributor.run(torch_fn, spec.to_dict())
        assert isinstance(result, dict)
        return result
    except Exception as exc:
        raise worker_failure(spec.error_dir, exc) from exc
