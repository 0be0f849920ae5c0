"""Ranker settings compared on val only: `cartwheel rank --reuse-lists` with each variant.

On a data root where `cartwheel rank` has published the run date's lists (for example a
`bench/quality.py DATASET --ranker --work-dir DIR` root), each variant fits a ranker again on
the same fitting lists and is judged by its best epoch's recall@20 on the same selection lists
(val users held out from fitting). Nothing here reads the test split. Each variant is
registered under its own alias (``variant-<n>``), so the ``candidate`` alias is not moved.

With ``--rebuild-lists`` each variant builds its own lists instead (for flags that change them,
such as ``--depth`` or ``--fit-days``): the selection users are the same (a hash of the user),
and the selection recall counts every val target of a list, proposed or not, so deeper or
shallower candidate lists are judged on the same footing. The lists the last variant built
stay published.

Writes ``bench/results/ranker-variants-<name>.json``: per variant its flags, best epoch, the
selection recall, the epochs run and the wall time, and the variant with the best selection
recall. The differences between variants are within the noise of a few hundred selection
lists unless they are large; the file says how many selection lists there were.

usage: python bench/ranker_variants.py --root ROOT --run-date D --name NAME
           [--variant "FLAGS"]... [--rebuild-lists]   (default: the variants below)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_measured, write_result

VARIANTS = (
    "",  # the step's defaults
    "--kind dcn",
    "--hidden 64",
    "--lists-per-batch 32",
    "--learning-rate 1e-3 --epochs 60 --patience 10",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--variant", action="append", help="rank flags of one variant")
    parser.add_argument(
        "--rebuild-lists", action="store_true",
        help="each variant builds its lists (tuning the generators on val again) instead of "
        "fitting on the published ones",
    )  # fmt: skip
    args = parser.parse_args()
    logs = Path(args.root).parent / "logs"
    runs: list[dict[str, Any]] = []
    for n, flags in enumerate(args.variant or VARIANTS):
        argv = [
            "rank", "--data-root", args.root, "--run-date", args.run_date,
            *([] if args.rebuild_lists else ["--reuse-lists"]),
            "--alias", f"variant-{n}", *shlex.split(flags),
        ]  # fmt: skip
        print(f"[variants] {n}: {flags or '(defaults)'}", flush=True)
        timing = run_measured(argv, logs / f"variant-{n}.log")
        m = json.loads(Path(args.root, "_runs", args.run_date, "rank.json").read_text())
        k = m["config"]["selection_k"]
        runs.append({
            "flags": flags, "kind": m["config"]["kind"], "best_epoch": m["best_epoch"],
            f"best_selection_recall_at_{k}": m[f"best_selection_recall_at_{k}"],
            "epochs_run": len(m["epochs"]), "model_version": m["model_version"],
            "lists": m["lists"], **timing,
        })  # fmt: skip
        print(
            f"[variants] {n}: selection recall@{k} {runs[-1][f'best_selection_recall_at_{k}']:.4f}"
        )
    key = next(k for k in runs[0] if k.startswith("best_selection_recall_at_"))
    best = max(range(len(runs)), key=lambda i: runs[i][key])
    doc = {
        "root": args.root, "run_date": args.run_date, "rebuilt_lists": args.rebuild_lists,
        "lists": m["lists"],
        "cutoffs": m["cutoffs"], "variants": runs, "best": runs[best]["flags"],
        "note": "val only: fitted on the fit lists, each epoch judged on the selection lists",
    }  # fmt: skip
    print(f"[variants] -> {write_result(f'ranker-variants-{args.name}', doc)}")


if __name__ == "__main__":
    main()
