"""GPU check: the two-tower's CUDA paths, briefly, on whatever machine runs it.

Run through ``bench/gpu_check.sh`` from the repository root on a machine with a GPU (a lent
device: torch with CUDA is there, Spark is not; ``pipelines.model`` needs torch only). It
measures, on the GPU when one is visible and on the CPU otherwise (the fallback a test runs to
the end):

  train        training steps of ``pipelines.model.TwoTower`` (in-batch sampled softmax with
               logQ, sparse embedding tables with SparseAdam, as ``cartwheel train``), examples/s
               in float32 and under ``autocast_for(device, "bf16")``
  score        user tower + scores against every item + top-k, users/s in float32, under
               bf16 autocast, and with the weights and item table cast to bfloat16
               (``bf16_weights``: what ``cartwheel score --precision bfloat16`` runs)
  collective   ``torch.distributed`` all-reduce over NCCL (one process per GPU, at most 2) or
               Gloo (2 processes on the CPU): the sum checked, bus bandwidth in GB/s

Each section that fails records its error verbatim and the others still run. The result is
``<out>/gpu-<device>.json`` (``gpu-cuda.json`` or ``gpu-cpu.json``).

usage: python bench/gpu_check.py [--out bench/results] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.model import PRECISIONS as MODEL_PRECISIONS
from pipelines.model import (
    ModelConfig,
    TwoTower,
    autocast_for,
    log_q_from_counts,
    sampled_softmax_loss,
)

PRECISIONS = ("off", "bf16")  # float32, then autocast to bfloat16


# Shapes of one run: a 200k-item catalog on a GPU, smaller on the CPU, tiny with --quick.
SIZES: dict[str, dict[str, int]] = {
    "cuda": {"items": 200_000, "batch": 2048, "steps": 50, "users": 100_000, "chunk": 2048, "floats": 1 << 26},
    "cpu": {"items": 50_000, "batch": 512, "steps": 10, "users": 4_096, "chunk": 512, "floats": 1 << 22},
    "quick": {"items": 2_000, "batch": 64, "steps": 3, "users": 256, "chunk": 128, "floats": 1 << 16},
}  # fmt: skip


def build_model(device: torch.device, n_items: int, history: int = 50) -> TwoTower:
    config = ModelConfig(num_items=n_items, num_categories=100, history_length=history)
    categories = torch.randint(2, 100, (n_items,))
    log_q = log_q_from_counts(torch.randint(1, 1000, (n_items,)))
    return TwoTower(config, categories, log_q).to(device)


def histories(n: int, n_items: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {
        "hist_item_idx": torch.randint(2, n_items, (n, length), device=device),
        "hist_type_idx": torch.randint(1, 5, (n, length), device=device),
        "hist_age_s": torch.randint(0, 30 * 86_400, (n, length), device=device),
        "hist_len": torch.randint(1, length + 1, (n,), device=device),
        "target_item_idx": torch.randint(2, n_items, (n,), device=device),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rates(device: torch.device, s: dict[str, int]) -> dict[str, Any]:
    """examples/s of training steps per precision (two warm-up steps first)."""
    out: dict[str, Any] = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        model = build_model(device, s["items"])
        sparse = torch.optim.SparseAdam(list(model.sparse_parameters()), lr=3e-2)
        dense = torch.optim.Adam(list(model.dense_parameters()), lr=1e-3)
        autocast, dtype = autocast_for(device, precision)
        losses = []
        for step in range(2 + s["steps"]):
            if step == 2:
                sync(device)
                started = time.perf_counter()
            batch = histories(s["batch"], s["items"], model.config.history_length, device)
            with autocast():
                users, items = model(batch)
                loss = sampled_softmax_loss(
                    users, items, batch["target_item_idx"], torch.ones(s["batch"], device=device),
                    model.item_log_q[batch["target_item_idx"]], model.config.temperature,
                )  # fmt: skip
            sparse.zero_grad()
            dense.zero_grad()
            loss.backward()
            sparse.step()
            dense.step()
            losses.append(float(loss.detach()))
        sync(device)
        seconds = time.perf_counter() - started
        out[precision] = {
            "dtype": str(dtype or torch.float32),
            "examples_per_s": round(s["batch"] * s["steps"] / seconds, 1),
            "seconds": round(seconds, 3),
            "losses_finite": all(torch.isfinite(torch.tensor(losses)).tolist()),
        }
    return out


def score_rates(device: torch.device, s: dict[str, int], k: int = 50) -> dict[str, Any]:
    """users/s of the user tower, the scores against every item and the top k, per precision."""
    torch.manual_seed(0)
    full = build_model(device, s["items"]).eval()
    out: dict[str, Any] = {}
    for precision in (*PRECISIONS, "bf16_weights"):
        autocast: Callable[[], AbstractContextManager[Any]]
        dtype: torch.dtype | None
        model = full
        if precision == "bf16_weights":
            model = copy.deepcopy(full).to(MODEL_PRECISIONS["bfloat16"])
            autocast, dtype = nullcontext, MODEL_PRECISIONS["bfloat16"]
        else:
            autocast, dtype = autocast_for(device, precision)
        with torch.no_grad(), autocast():
            items = model.all_item_vectors()
            top = histories(2, s["items"], model.config.history_length, device)  # warm-up
            model.user_vectors(top["hist_item_idx"], top["hist_type_idx"], top["hist_age_s"], top["hist_len"])  # fmt: skip
            sync(device)
            started = time.perf_counter()
            for start in range(0, s["users"], s["chunk"]):
                n = min(s["chunk"], s["users"] - start)
                h = histories(n, s["items"], model.config.history_length, device)
                users = model.user_vectors(h["hist_item_idx"], h["hist_type_idx"], h["hist_age_s"], h["hist_len"])  # fmt: skip
                torch.topk(users @ items.T, k, dim=1)
            sync(device)
        seconds = time.perf_counter() - started
        out[precision] = {
            "dtype": str(dtype or torch.float32),
            "users_per_s": round(s["users"] / seconds, 1),
            "items": s["items"],
            "k": k,
            "seconds": round(seconds, 3),
        }
    return out


def _all_reduce(rank: int, world: int, backend: str, port: int, floats: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(rank)
    x = torch.full((floats,), float(rank + 1), device=device)
    dist.all_reduce(x)  # warm-up, and the value checked
    ok = bool(torch.all(x == world * (world + 1) / 2))
    rounds = 5
    sync(device)
    started = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(x)
    sync(device)
    seconds = (time.perf_counter() - started) / rounds
    dist.destroy_process_group()
    # bus bandwidth of a ring all-reduce: 2 (n-1)/n of the buffer crosses each link
    bus = 4 * floats * 2 * (world - 1) / world / seconds / 1e9 if world > 1 else None
    Path(folder, f"rank-{rank}.json").write_text(
        json.dumps({"sum_ok": ok, "seconds_per_all_reduce": seconds, "bus_gb_per_s": bus})
    )


def collective(device: torch.device, s: dict[str, int]) -> dict[str, Any]:
    """All-reduce of ``floats`` float32 values over NCCL (GPUs) or Gloo (2 CPU processes)."""
    if device.type == "cuda":
        backend, world = "nccl", min(2, torch.cuda.device_count())
    else:
        backend, world = "gloo", 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_all_reduce, args=(world, backend, port, s["floats"], folder), nprocs=world)
        ranks = [json.loads(Path(folder, f"rank-{r}.json").read_text()) for r in range(world)]
    return {
        "backend": backend,
        "processes": world,
        "floats": s["floats"],
        "sum_ok": all(r["sum_ok"] for r in ranks),
        "seconds_per_all_reduce": round(max(r["seconds_per_all_reduce"] for r in ranks), 6),
        "bus_gb_per_s": ranks[0]["bus_gb_per_s"] and round(ranks[0]["bus_gb_per_s"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", default="bench/results", help="folder of gpu-<device>.json")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (the CPU test)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    s = SIZES["quick" if args.quick else device.type]
    result: dict[str, Any] = {
        "benchmark": f"gpu-{device.type}",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpus": torch.cuda.device_count() if cuda else 0,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
            "cpu_threads": torch.get_num_threads(),
        },
        "device": device.type,
        "quick": args.quick,
        "sizes": s,
        "errors": {},
    }
    started = time.perf_counter()
    for name, section in (("train", train_rates), ("score", score_rates), ("collective", collective)):  # fmt: skip
        print(f"[gpu check] {name} on {device.type} ...", flush=True)
        try:
            result[name] = section(device, s)
            print(f"[gpu check] {name}: {json.dumps(result[name])}", flush=True)
        except Exception:  # every section runs; a failure is recorded verbatim
            result["errors"][name] = traceback.format_exc()
            print(f"[gpu check] {name} FAILED:\n{result['errors'][name]}", flush=True)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    out = Path(args.out) / f"gpu-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"[gpu check] -> {out}", flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
