"""Scoring chunk size: users/s of ``TopKScorer.top_k`` (matmul + mask + top-K) against the cap
on scores held at once, per catalog size.

``TopKScorer`` scores ``max_scores_per_chunk // num_items`` users per matrix product. At 200k
items the default cap (2^26 scores, 256 MB) means 335 users per product; this measures whether
larger products pay, and what they cost in memory (the chunk's score matrix: cap x 4 bytes).

For each catalog size and cap, with the scorer's grouped top-K (``pipelines/recs.py:
grouped_top_k``) and with one ``torch.topk`` over every column: random unit item vectors (dim
64, every item a candidate), random unit user vectors, K 50, one warm-up pass, then the best of
``--repeats`` timed passes.
``bench/results/score-chunks.json`` records users/s, users per chunk, the chunk's MB, the
machine's float32 matmul rate at the largest chunk's shape (measured first, in the same run),
the users/s that rate allows (2 x items x dim flops a user) and each row's fraction of it.

usage: python bench/score_chunks.py [--items 20000 200000] [--users 8192] [--caps 24 26 28]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench.common import best_of, write_result

DIM, K = 64, 50


def unit(rows: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--items", type=int, nargs="+", default=[20_000, 200_000])
    p.add_argument("--users", type=int, default=8192)
    p.add_argument(
        "--caps", type=int, nargs="+", default=[24, 26, 28], help="log2 of max_scores_per_chunk"
    )
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    from pipelines.recs import TopKScorer

    rng = np.random.default_rng(0)
    users = unit(a.users, rng)
    rows = []
    for n_items in a.items:
        items = unit(n_items, rng)
        candidates = np.ones(n_items, dtype=bool)
        # the machine's float32 matmul rate at the largest chunk's shape: the bound on users/s
        u = torch.as_tensor(users[: min(a.users, (1 << max(a.caps)) // n_items)])
        it = torch.as_tensor(items)
        wall = best_of(partial(torch.matmul, u, it.T), a.repeats)
        gflops = 2 * len(u) * n_items * DIM / wall / 1e9
        bound = gflops * 1e9 / (2 * n_items * DIM)
        for cap, grouped in [(c, g) for c in a.caps for g in (False, True)]:
            scorer = TopKScorer(
                items, candidates, torch.device("cpu"), max_scores_per_chunk=1 << cap,
                grouped=grouped,
            )  # fmt: skip
            wall = best_of(partial(scorer.top_k, users, K), a.repeats)
            row = {
                "items": n_items,
                "cap_log2": cap,
                "top_k": "grouped" if grouped else "torch.topk",
                "users_per_chunk": min(scorer.chunk, a.users),
                "chunk_mb": round(min(scorer.chunk, a.users) * n_items * 4 / 2**20, 1),
                "users_per_s": round(a.users / wall, 1),
                "wall_s": round(wall, 3),
                "fraction_of_matmul_bound": round(a.users / wall / bound, 3),
            }
            rows.append(row)
            print(
                f"  {n_items:>7,} items, cap 2^{cap}, {row['top_k']:>10}: {row['users_per_chunk']:>5} users/chunk, "
                f"{row['users_per_s']:>9,.0f} users/s ({row['fraction_of_matmul_bound']:.0%} of the matmul bound)",
                flush=True,
            )
        rows.append(
            {
                "items": n_items,
                "matmul_gflops": round(gflops, 1),
                "matmul_users": len(u),
                "matmul_bound_users_per_s": round(bound, 1),
            }
        )
    write_result(
        "score-chunks",
        {
            "users": a.users,
            "dim": DIM,
            "k": K,
            "torch_threads": torch.get_num_threads(),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
