"""Scoring throughput: the pandas-UDF scorer in Spark vs pure torch on the same shapes.

For each user count (default 100k and 1M) and a fixed catalog (default 20k items, dim 64,
history length 50, K 50), with a two-tower model of the production shape (weights random:
throughput does not depend on them):

  spark_udf          histories in a cached Spark DataFrame -> ``mapInPandas`` scorer (user
                     tower + matmul + top-K, exclusions) -> a no-op sink; the real code path
  torch_end_to_end   the same tower + matmul + top-K in this process on numpy histories
  torch_matmul_topk  only matmul + top-K on precomputed user vectors

``bench/results/score-<users>.json`` records users/s, users/s per core, wall time and peak
resident memory (this process and its children: the Spark JVM and Python workers), and the
ratios torch / spark (the UDF's overhead). Linear scaling shows as a flat users/s across sizes.

usage: python bench/score_bench.py [--users 100000 1000000] [--items 20000] [--k 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench.common import PeakMemory, write_result

HISTORY, DIM = 50, 64


def build_model(items: int) -> Any:
    from pipelines.model import ModelConfig, TwoTower
    from udfs.pyfunc import UserTower

    torch.manual_seed(0)
    config = ModelConfig(num_items=items + 2, num_categories=50, history_length=HISTORY, dim=DIM)
    model = TwoTower(config, torch.randint(2, 50, (items + 2,)), None).eval()
    state = {"model_config": config.to_dict(), "model": model.state_dict()}
    return UserTower(None, state=state)


def payload(tower: Any, items: int) -> Any:
    from udfs.score import ScoringPayload

    candidates = np.ones(items + 2, dtype=bool)
    candidates[:2] = False
    return ScoringPayload(
        model_state=tower.state_bytes(),
        item_vectors=tower.item_vectors(),
        candidates=candidates,
        item_ids=np.array([""] * 2 + [f"i{i}" for i in range(items)], dtype=object),
        popularity=np.arange(2, items + 2, dtype=np.int64),
    )


def spark_inputs(spark: Any, users: int, items: int) -> Any:
    from pyspark.sql import functions as F

    uid = F.col("id")

    def ints(tag: str, lo: int, span: int) -> Any:
        return F.transform(
            F.sequence(F.lit(1), F.lit(HISTORY)),
            lambda x: (F.pmod(F.xxhash64(F.lit(tag), uid, x), F.lit(span)) + lo).cast("int"),
        )

    return spark.range(users, numPartitions=max(4, users // 25_000)).select(
        F.concat(F.lit("u"), uid.cast("string")).alias("user_id"),
        ints("item", 2, items).alias("hist_item_idx"),
        ints("type", 1, 4).alias("hist_type_idx"),
        ints("age", 60, 86_400 * 30).alias("hist_age_s"),
        F.lit(HISTORY).alias("hist_len"),
        F.slice(ints("item", 2, items), 1, 3).alias("excluded_idx"),
    )


def bench_spark(spark: Any, data: Any, users: int, items: int, k: int) -> dict[str, Any]:
    from pipelines import schemas as S
    from udfs import score as U

    inputs = spark_inputs(spark, users, items).cache()
    inputs.count()  # materialise the inputs: only scoring is timed
    bc = spark.sparkContext.broadcast(data)
    scored = inputs.mapInPandas(U.score_users(bc, k), S.SCORED.schema)
    with PeakMemory() as mem:
        start = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        wall = time.perf_counter() - start
    bc.unpersist()
    inputs.unpersist()
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(mem.peak / 2**20, 1)}


def bench_torch(tower: Any, data: Any, users: int, items: int, k: int) -> dict[str, Any]:
    from pipelines.recs import TopKScorer

    rng = np.random.default_rng(0)
    hist = {
        "hist_item_idx": rng.integers(2, items + 2, (users, HISTORY)),
        "hist_type_idx": rng.integers(1, 5, (users, HISTORY)),
        "hist_age_s": rng.integers(60, 86_400 * 30, (users, HISTORY)),
    }
    lengths = np.full(users, HISTORY)
    excluded = [row[:3] for row in hist["hist_item_idx"]]
    scorer = TopKScorer(data.item_vectors, data.candidates, device=tower.device)
    with PeakMemory() as mem:
        start = time.perf_counter()
        vectors = np.empty((users, DIM), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, users, 4096):
                sl = slice(s, s + 4096)
                vectors[sl] = (
                    tower.model.user_vectors(
                        *(torch.as_tensor(hist[c][sl]) for c in hist),
                        torch.as_tensor(lengths[sl]),
                    )
                    .float()
                    .numpy()
                )
        mid = time.perf_counter()
        scorer.top_k(vectors, k, excluded=excluded)
        end = time.perf_counter()
    return {
        "end_to_end_wall_s": round(end - start, 2),
        "matmul_topk_wall_s": round(end - mid, 2),
        "peak_rss_mb": round(mem.peak / 2**20, 1),
    }


def per_second(users: int, wall: float) -> dict[str, float]:
    cores = os.cpu_count() or 1
    return {
        "users_per_s": round(users / wall, 1),
        "users_per_s_per_core": round(users / wall / cores, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()

    from jobs.runtime.session import get_spark

    spark = get_spark("cartwheel-score-bench")
    tower = build_model(args.items)
    data = payload(tower, args.items)
    for users in args.users:
        print(f"[bench] {users:,} users x {args.items:,} items, K={args.k}", flush=True)
        s = bench_spark(spark, data, users, args.items, args.k)
        t = bench_torch(tower, data, users, args.items, args.k)
        doc = {
            "users": users, "items": args.items, "k": args.k, "dim": DIM, "history_length": HISTORY,
            "torch_threads_in_process": torch.get_num_threads(),
            "spark_udf": {**s, **per_second(users, s["wall_s"])},
            "torch_end_to_end": {"wall_s": t["end_to_end_wall_s"], "peak_rss_mb": t["peak_rss_mb"], **per_second(users, t["end_to_end_wall_s"])},
            "torch_matmul_topk": {"wall_s": t["matmul_topk_wall_s"], **per_second(users, t["matmul_topk_wall_s"])},
            "udf_overhead_ratio": round(s["wall_s"] / t["end_to_end_wall_s"], 3),
        }  # fmt: skip
        path = write_result(f"score-{users}", doc)
        print(
            f"[bench] spark UDF {doc['spark_udf']['users_per_s']:,.0f} users/s; torch end to end "
            f"{doc['torch_end_to_end']['users_per_s']:,.0f} users/s; matmul+top-K only "
            f"{doc['torch_matmul_topk']['users_per_s']:,.0f} users/s; ratio {doc['udf_overhead_ratio']} -> {path}",
            flush=True,
        )
    spark.stop()


if __name__ == "__main__":
    main()
