"""Training throughput benchmark: Horovod on Spark, CPU (and GPU when one is visible).

Prepares shards once (generate + clean + label + shard, not timed), then runs ``cartwheel
train`` for a fixed number of epochs in these configurations:

  hvd-1proc-sparse   1 Horovod process, sparse embedding gradients (SparseAdam, all-gather)
  hvd-2proc-sparse   2 Horovod processes, sparse embedding gradients
  hvd-2proc-dense    2 Horovod processes, dense embedding gradients (Adam, all-reduce)
  gpu-fp32 / gpu-amp (only with a GPU) 1 process, mixed precision off / auto

``bench/results/train-<device>.json`` records per configuration: examples/s (mean over
epochs after the first, which includes start-up), the time spent waiting for Petastorm
batches vs computing, wall time and peak resident memory, plus the final val Recall@10.

usage: python bench/train_bench.py [--rows 1000000] [--items 50000] [--epochs 2] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_measured, write_result

END = "2026-11-21"


def prepare(root: Path, rows: int, items: int, logs: Path) -> None:
    if (root / "shards" / END / "_manifest.json").exists():
        return
    steps = [
        [
            "generate",
            "--end-date",
            END,
            "--days",
            "7",
            "--rows",
            str(rows),
            "--items",
            str(items),
            "--seed",
            "5",
        ],
        ["clean", "--run-date", END, "--days", "7"],
        ["label", "--run-date", END, "--lookback-days", "7"],
        ["shard", "--run-date", END, "--workers", "2"],
    ]
    for step in steps:
        run_measured([step[0], "--data-root", str(root), *step[1:]], logs / f"prep-{step[0]}.log")


def train_once(root: Path, name: str, extra: list[str], epochs: int, logs: Path) -> dict:
    ckpt = root / "bench-checkpoints" / name
    measured = run_measured(
        ["train", "--data-root", str(root), "--run-date", END, "--epochs", str(epochs), "--patience", str(epochs),
         "--checkpoint-dir", str(ckpt), "--restart", "--model-name", f"bench-{name}", *extra],
        logs / f"train-{name}.log",
    )  # fmt: skip
    m = json.loads((root / "_runs" / END / "train.json").read_text())
    epochs_after_first = m["epochs"][1:] or m["epochs"]
    rate = sum(e["examples"] for e in epochs_after_first) / sum(
        e["seconds"] for e in epochs_after_first
    )
    read = sum(e["read_seconds"] for e in m["epochs"])
    compute = sum(e["compute_seconds"] for e in m["epochs"])
    return {
        **measured,
        "workers": m["epochs"][0]["workers"],
        "examples_per_second": round(rate, 1),
        "examples_per_second_per_worker": round(rate / m["epochs"][0]["workers"], 1),
        "read_seconds": round(read, 2),
        "compute_seconds": round(compute, 2),
        "read_share": round(read / (read + compute), 4) if read + compute else None,
        "epochs": [
            {
                k: e[k]
                for k in (
                    "epoch",
                    "examples",
                    "seconds",
                    "read_seconds",
                    "compute_seconds",
                    "train_loss",
                    "val_recall",
                )
            }
            for e in m["epochs"]
        ],
        "best_val_recall_at_10": m["best_val_recall_at_10"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "cartwheel-bench"
    )
    args = parser.parse_args()
    import torch

    root = args.work_dir / f"train-{args.rows}-{args.items}"
    logs = args.work_dir / "logs"
    prepare(root, args.rows, args.items, logs)
    shard_manifest = json.loads((root / "shards" / END / "_manifest.json").read_text())
    configs: dict[str, list[str]] = {
        "hvd-1proc-sparse": ["--num-proc", "1"],
        "hvd-2proc-sparse": ["--num-proc", "2"],
        "hvd-2proc-dense": ["--num-proc", "2", "--no-sparse-embeddings"],
    }
    device = "cpu"
    if torch.cuda.is_available():
        device = "gpu"
        configs = {
            "gpu-fp32": ["--num-proc", "1", "--mixed-precision", "off"],
            "gpu-amp": ["--num-proc", "1", "--mixed-precision", "auto"],
            **configs,
        }
    results = {}
    for name, extra in configs.items():
        print(f"train benchmark: {name} ...", flush=True)
        results[name] = train_once(root, name, extra, args.epochs, logs)
        r = results[name]
        print(
            f"  {r['examples_per_second']:>10,.0f} examples/s ({r['workers']} workers), read {r['read_seconds']:.1f}s / "
            f"compute {r['compute_seconds']:.1f}s, wall {r['wall_s']:.0f}s, peak {r['peak_rss_mb']:,.0f} MB, "
            f"val recall@10 {r['best_val_recall_at_10']:.4f}",
            flush=True,
        )
    doc = {
        "rows": args.rows,
        "items": args.items,
        "num_items_in_vocab": shard_manifest["vocab"]["num_items"],
        "train_examples": shard_manifest["splits"]["train"]["rows"],
        "epochs": args.epochs,
        "device": device,
        "gpu": torch.cuda.get_device_name(0)
        if device == "gpu"
        else "none visible: GPU figures not measured on this machine",
        "configs": results,
    }
    path = write_result(f"train-{device}", doc)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
