"""Compressed scoring: the two-tower's users/s and its quality in float32 and in bfloat16.

``cartwheel score --precision bfloat16`` (and evaluate's, and the night's) holds the item table
and the user tower's weights in bfloat16 and computes the product there. This measures what
that buys and what it costs, on a trained model:

  speed      ``udfs/score.py: score_frame`` (the user tower, the product with the item table and
             the top-K: what the score step runs in its pandas UDF) over the test users'
             histories, repeated to ``--users`` rows, K 50; best of ``--repeats`` passes after a
             warm-up, torch on every core of this process
  quality    Recall@20 and NDCG@10 of each precision's top-20 for the test split's users: the
             history of a user's first test target (the history before the test day), every
             distinct test target item relevant; every vocabulary item a candidate and nothing
             excluded, alike for both. Means per user (``pipelines/metrics.py``) with 95 %
             Poisson-bootstrap intervals over users and of the paired difference bfloat16 -
             float32 (200 resamples)
  agreement  the mean share of a user's float32 top-20 that bfloat16 also lists
  catalog    on a synthetic catalog of ``--catalog-items`` random unit vectors (dim 64): the
             scorer's product + top-K users/s per precision, and the matrix product's GFLOP/s
             per precision at the scorer's chunk shape, measured in the same run

The trained root is built as ``bench/quality.py`` builds the demo log (generate 200k rows over 7
days, clean, label, shard, train with 2 Horovod workers), unless ``--root`` names one that
already holds a registered model. ``bench/results/score-precision.json`` records every figure,
the CPU's bfloat16 flags and the wall time and peak memory of this process.

usage: python bench/score_precision.py [--root DIR | --work-dir DIR] [--epochs 2]
                                       [--users 20000] [--catalog-items 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
import torch

from bench.common import PeakMemory, best_of, run_measured, write_result
from pipelines.model import PRECISIONS as MODEL_PRECISIONS

RESULT = "score-precision"
MODEL_URI = "models:/cartwheel-two-tower@candidate"
PRECISIONS = tuple(MODEL_PRECISIONS)  # float32 first: the reference
K_SCORE, K_EVAL = 50, 20


def cpu_flags() -> list[str]:
    """The CPU's bfloat16-related flags (what makes bfloat16 fast or slow here)."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def build_root(work: Path, epochs: int) -> Path:
    """The demo log trained as ``bench/quality.py demo`` trains it (no evaluate)."""
    from bench.quality import DATASETS, commands

    root = work / "demo"
    steps = commands(DATASETS["demo"], str(root), epochs, ranker=False)
    steps.pop("evaluate")
    for name, args in steps.items():
        print(f"  {name} ...", flush=True)
        run_measured(args, work / "logs" / f"{name}.log")
    return root


def test_users(root: Path, run_date: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one scoring-input row per test user: the history of their first test target, nothing
    excluded; (user_id, item_id) of every test target)."""
    examples = pd.read_parquet(root / "examples" / f"dt={run_date}" / "split=test")
    first = examples.sort_values(["user_id", "target_time"]).drop_duplicates("user_id")
    inputs = first[["user_id", "hist_item_idx", "hist_type_idx", "hist_age_s", "hist_len"]].copy()
    inputs["excluded_idx"] = [np.zeros(0, dtype=np.int64)] * len(inputs)
    relevant = examples[["user_id", "target_item_id"]].drop_duplicates()
    return inputs.reset_index(drop=True), relevant.rename(columns={"target_item_id": "item_id"})


def quality(spark: Any, lists: dict[str, pd.DataFrame], relevant: pd.DataFrame) -> dict[str, Any]:
    """Recall@20 / NDCG@10 per precision with intervals, paired against float32."""

    from pipelines import metrics as M

    recs = spark.createDataFrame(
        pd.concat(
            [f[["user_id", "item_id", "rank"]].assign(method=name) for name, f in lists.items()]
        )
    )
    per_user = M.per_user_metrics(recs, spark.createDataFrame(relevant), [10, K_EVAL]).cache()
    rows = (
        M.bootstrap(per_user, [("recall", K_EVAL), ("ndcg", 10)], reference="float32")
        .orderBy("method", "metric")
        .collect()  # one row per (precision, metric)
    )
    users = per_user.select("user_id").distinct().count()
    per_user.unpersist()
    out: dict[str, Any] = {"test_users": users}
    for r in rows:
        name = f"{r['metric']}_at_{r['k']}"
        out.setdefault(r["method"], {})[name] = round(r["mean"], 4)
        out[r["method"]][f"{name}_ci"] = [round(r["lo"], 4), round(r["hi"], 4)]
        if r["method"] != "float32":
            diff = [round(r["diff_lo"], 4), round(r["diff_hi"], 4)]
            out[r["method"]][f"{name}_diff_vs_float32_ci"] = diff
            out[r["method"]][f"{name}_verdict"] = (
                "tie (the paired interval holds zero)"
                if diff[0] <= 0 <= diff[1]
                else ("better" if diff[0] > 0 else "worse")
            )
    return out


def agreement(a: pd.DataFrame, b: pd.DataFrame, k: int) -> float:
    """Mean over users of |a's top-k ∩ b's top-k| / k."""
    top = [f[f["rank"] <= k].groupby("user_id")["item_id"].agg(set) for f in (a, b)]
    shared = [len(x & top[1].get(u, set())) / k for u, x in top[0].items()]
    return round(float(np.mean(shared)), 4)


def catalog_speed(items: int, repeats: int) -> dict[str, Any]:
    """Product + top-K users/s per precision on random unit vectors, and the product's
    GFLOP/s per precision at the scorer's chunk shape."""
    from pipelines import recs as R

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, 64)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors, candidates = unit(items), np.ones(items, dtype=bool)
    out: dict[str, Any] = {"items": items, "dim": 64, "k": K_SCORE}
    for precision in PRECISIONS:
        scorer = R.TopKScorer(vectors, candidates, precision=precision)
        users = unit(scorer.chunk * 4)
        seconds = best_of(partial(scorer.top_k, users, K_SCORE), repeats)
        chunk = torch.as_tensor(users[: scorer.chunk]).to(scorer.items.dtype)
        product = best_of(partial(torch.matmul, chunk, scorer.items.T), repeats)
        out[precision] = {
            "users_per_chunk": scorer.chunk,
            "users_per_s": round(len(users) / seconds, 1),
            "product_gflop_per_s": round(2 * scorer.chunk * items * 64 / product / 1e9, 1),
        }
    out["speedup"] = round(out["bfloat16"]["users_per_s"] / out["float32"]["users_per_s"], 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, help="a trained data root (a registered model)")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/cartwheel-score-precision"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--run-date", default="2026-11-21")
    p.add_argument("--users", type=int, default=20_000, help="rows per timed scoring pass")
    p.add_argument("--catalog-items", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    from jobs.runtime import registry, scoring
    from jobs.runtime.session import get_spark
    from pipelines.label import FIRST_INDEX
    from udfs import score as U

    started = time.perf_counter()
    with PeakMemory() as peak:
        root = a.root or build_root(a.work_dir, a.epochs)
        torch.set_num_threads(os.cpu_count() or 1)
        spark = get_spark("bench-score-precision")
        registry.configure_tracking(str(root))
        model = registry.resolve(MODEL_URI)
        inputs, relevant = test_users(root, a.run_date)
        candidates = np.ones(len(model.item_ids), dtype=bool)
        candidates[:FIRST_INDEX] = False
        timed = inputs.iloc[np.arange(a.users) % len(inputs)].reset_index(drop=True)
        lists: dict[str, pd.DataFrame] = {}
        speed: dict[str, Any] = {}
        for precision in PRECISIONS:
            # the payload score builds; no user is cold here, so the popularity order is unused
            payload = scoring.payload(model, candidates, np.flatnonzero(candidates), precision)
            loaded = U._load(payload)
            lists[precision] = U.score_frame(loaded, inputs, K_EVAL)
            seconds = best_of(partial(U.score_frame, loaded, timed, K_SCORE), a.repeats)
            speed[precision] = {"users_per_s": round(len(timed) / seconds, 1)}
            print(f"  {precision}: {speed[precision]['users_per_s']:,.0f} users/s", flush=True)
        speed["speedup"] = round(
            speed["bfloat16"]["users_per_s"] / speed["float32"]["users_per_s"], 2
        )
        measured = quality(spark, lists, relevant)
        measured["top20_agreement"] = agreement(lists["float32"], lists["bfloat16"], K_EVAL)
        catalog = catalog_speed(a.catalog_items, a.repeats)
        spark.stop()
    doc = {
        "dataset": "demo" if a.root is None else str(root),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "model": {
            "uri": MODEL_URI,
            "version": model.version,
            "items": len(model.item_ids),
            "dim": int(model.vectors.shape[1]),
            "history_length": model.history_length,
        },
        "scoring": {"users": len(timed), "k": K_SCORE, **speed},
        "quality": measured,
        "catalog": catalog,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak.peak / 2**20, 1),
    }
    path = write_result(RESULT, doc)
    print(
        f"scoring {speed['speedup']}x in bfloat16 ({speed['float32']['users_per_s']:,.0f} -> "
        f"{speed['bfloat16']['users_per_s']:,.0f} users/s); recall@20 "
        f"{measured['float32']['recall_at_20']} -> {measured['bfloat16']['recall_at_20']} "
        f"({measured['bfloat16']['recall_at_20_verdict']}); catalog of {a.catalog_items:,}: "
        f"{catalog['speedup']}x\n-> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
