"""``cartwheel <step> [flags]``: one console entry point for every step.

``cartwheel <step> --help`` lists a step's flags; the same flags work for
``spark-submit jobs/<step>.py``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# step name -> (module, one-line description)
STEPS: dict[str, tuple[str, str]] = {
    "generate": ("jobs.generate", "write synthetic raw logs + catalog with an exact defect ledger"),
    "ingest": (
        "jobs.ingest",
        "convert a real dataset (online-retail, taobao, movielens) to the raw layout",
    ),
    "clean": ("jobs.clean", "raw logs -> clean events, quarantine and a data-quality report"),
    "label": (
        "jobs.label",
        "clean events -> next-item examples with histories, split by time, + vocabularies",
    ),
    "shard": ("jobs.shard", "examples -> shuffled, balanced Parquet shards for Petastorm readers"),
    "train": (
        "jobs.train",
        "two-tower model with Horovod on Spark (or TorchDistributor), logged to MLflow",
    ),
    "rank": (
        "jobs.rank",
        "candidate lists from several generators + a ranker fitted on them with Horovod",
    ),
    "evaluate": (
        "jobs.evaluate",
        "model vs popularity, co-occurrence and ALS on the test period; promotes the champion",
    ),
    "score": ("jobs.score", "the champion model -> recs/user_topk and recs/item_similar tables"),
    "nightly": (
        "jobs.nightly",
        "one night for --run-date: clean .. evaluate, then publish; resumable, locked, atomic",
    ),
    "backfill": (
        "jobs.backfill",
        "run the nights --from D1 --to D2 in order, stopping at a failure",
    ),
    "demo": ("jobs.demo", "generate a small log and run one night on it, printing what came out"),
}


def usage() -> str:
    width = max(len(s) for s in STEPS)
    lines = [
        "usage: cartwheel <step> [--help] [flags]",
        "",
        "cartwheel: nightly batch recommendations on Apache Spark.",
        "",
        "steps:",
        *[f"  {name:<{width}}  {desc}" for name, (_, desc) in STEPS.items()],
        "",
        "Every step takes --data-root URI and --config FILE.yaml; see `cartwheel <step> --help`.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    step, rest = args[0], args[1:]
    if step not in STEPS:
        print(f"cartwheel: unknown step {step!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(STEPS[step][0])
    return int(module.cli(rest))


if __name__ == "__main__":
    sys.exit(main())
