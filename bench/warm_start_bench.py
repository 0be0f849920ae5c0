"""Warm-started against full training over consecutive nights (issue 13: a warm-started model
must stay within 2 % of a full retrain's val Recall@20 over 7 nights).

Generates ``--rows`` raw rows over ``--days`` + ``--nights`` days and cleans them (not timed).
The first run date trains in full once (``--epochs``) and seeds the warm lineage. Then, for
each of the next ``--nights`` run dates: label the ``--days`` window and shard it, and train
twice on the same shards: from scratch (``--epochs``, model ``bench-full``) and warm-started
from the previous night's warm model (``--warm-epochs``, model ``bench-warm``; the schedule and
drift rules are switched off so every night of the lineage is warm). Both select their epoch
on the same val split at K=20.

Writes ``bench/results/warm-start-<rows>[-<tag>].json``: per night the val Recall@20 and NDCG@20 of
both, warm / full, train wall seconds and peak memory of both, the items the warm start carried
and started fresh; and the worst and mean ratio over the nights.

usage: python bench/warm_start_bench.py [--rows 300000] [--days 7] [--nights 7] [--epochs 4]
                                        [--warm-epochs 2] [--tag NAME]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_measured, write_result

END = dt.date(2026, 11, 21)
K = 20


def train(root: Path, day: dt.date, name: str, extra: list[str], logs: Path) -> dict[str, Any]:
    """One ``cartwheel train`` run: its wall time, peak memory and manifest figures."""
    ckpt = root / "bench-checkpoints" / f"{name}-{day}"
    args = ["train", "--data-root", str(root), "--run-date", day.isoformat(), "--k", str(K),
            "--model-name", name, "--checkpoint-dir", str(ckpt), *extra]  # fmt: skip
    measured = run_measured(args, logs / f"train-{name}-{day}.log")
    m = json.loads((root / "_runs" / day.isoformat() / "train.json").read_text())
    return {
        **measured,
        "model_version": m["model_version"],
        "epochs_run": m["epochs_run"],
        "best_epoch": m["best_epoch"],
        f"val_recall_at_{K}": m[f"best_val_recall_at_{K}"],
        f"val_ndcg_at_{K}": m[f"best_val_ndcg_at_{K}"],
        "training": m["training"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=7, help="lookback window of each night")
    parser.add_argument("--nights", type=int, default=7, help="warm-started nights compared")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of a full training")
    parser.add_argument("--warm-epochs", type=int, default=2)
    parser.add_argument("--tag", default="", help="appended to the result's name")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "cartwheel-bench"
    )
    a = parser.parse_args()
    root = a.work_dir / f"warm-start-{a.rows}"
    logs = a.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    total_days = a.days + a.nights
    window = ["--data-root", str(root), "--days", str(total_days)]
    run_measured(
        ["generate", *window, "--end-date", END.isoformat(), "--rows", str(a.rows)],
        logs / "warm-generate.log",
    )
    run_measured(["clean", *window, "--run-date", END.isoformat()], logs / "warm-clean.log")
    dates = [END - dt.timedelta(days=a.nights - i) for i in range(a.nights + 1)]
    epochs = ["--epochs", str(a.epochs)]
    nights: list[dict[str, Any]] = []
    for i, day in enumerate(dates):
        dated = ["--data-root", str(root), "--run-date", day.isoformat()]
        run_measured(["label", *dated, "--lookback-days", str(a.days)], logs / f"label-{day}.log")
        run_measured(["shard", *dated, "--workers", "2"], logs / f"shard-{day}.log")
        if i == 0:  # the lineage's full training
            seed = train(root, day, "bench-warm", epochs, logs)
            print(f"{day} seed: val recall@{K} {seed[f'val_recall_at_{K}']:.4f}", flush=True)
            continue
        full = train(root, day, "bench-full", epochs, logs)
        warm = train(
            root, day, "bench-warm",
            [*epochs, "--warm-start", "models:/bench-warm@candidate", "--warm-epochs",
             str(a.warm_epochs), "--full-retrain-every", str(10 * a.nights), "--max-new-items", "0.99"],
            logs,
        )  # fmt: skip
        if warm["training"]["mode"] != "warm":
            raise RuntimeError(f"{day}: the warm lineage trained in full: {warm['training']}")
        ratio = warm[f"val_recall_at_{K}"] / full[f"val_recall_at_{K}"]
        nights.append(
            {
                "run_date": day.isoformat(),
                "full": full,
                "warm": warm,
                f"warm_over_full_val_recall_at_{K}": round(ratio, 4),
                "train_wall_warm_over_full": round(warm["wall_s"] / full["wall_s"], 3),
            }
        )
        print(
            f"{day}: val recall@{K} full {full[f'val_recall_at_{K}']:.4f} ({full['wall_s']:.0f} s), "
            f"warm {warm[f'val_recall_at_{K}']:.4f} ({warm['wall_s']:.0f} s): {ratio:.3f}x",
            flush=True,
        )
    ratios = [n[f"warm_over_full_val_recall_at_{K}"] for n in nights]
    path = write_result(
        f"warm-start-{a.rows}" + (f"-{a.tag}" if a.tag else ""),
        {
            "rows": a.rows,
            "days": a.days,
            "nights": a.nights,
            "epochs": a.epochs,
            "warm_epochs": a.warm_epochs,
            "k": K,
            "seed_night": {"run_date": dates[0].isoformat(), **seed},
            "per_night": nights,
            "worst_ratio": min(ratios),
            "mean_ratio": round(sum(ratios) / len(ratios), 4),
            "within_2_percent_every_night": min(ratios) >= 0.98,
            "train_wall_s": {
                "full": round(sum(n["full"]["wall_s"] for n in nights), 1),
                "warm": round(sum(n["warm"]["wall_s"] for n in nights), 1),
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
