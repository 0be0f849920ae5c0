"""Item-kNN, the slowest generator, timed by phase on a real data root's val workload.

On a data root that label has split (for example a `bench/quality.py DATASET --work-dir DIR`
root), for each grid point of item-kNN (`pipelines/evaluation.py: GRIDS`) this builds what
tuning builds: from the clean events before the val start, each item's neighbours, then the
val users' lists (candidates: every item with an event; no exclusions). It times three phases
in one Spark session, each ended by a count: the decayed strengths of each user's recent items
(`strengths` + `most_recent`), the neighbour table (`item_neighbours`, from the cached
strengths), and then the whole baseline from the events as tuning runs it (`item_knn_lists`,
nothing cached); its time less the first two is the scoring (the users' seeds joined with
their neighbours and summed) and the ranking.

Writes ``bench/results/knn-<name>.json``: the events, users, items and val users, and per grid
point the rows and wall seconds of each phase (``scoring_and_ranking_s`` derived as above) and
the peak memory of the process tree (the
Spark JVM included).

usage: python bench/knn_bench.py --root ROOT --run-date D --name NAME
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PeakMemory, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from jobs import evaluate as EV
    from jobs.runtime.readers import date_window, read_clean_events
    from jobs.runtime.session import get_spark
    from jobs.runtime.storage import Storage
    from pipelines import baselines as B
    from pipelines import evaluation as E
    from pipelines import label as L

    spark = get_spark("knn-bench", {})
    storage, day = Storage(spark), dt.date.fromisoformat(args.run_date)
    b = EV.read_boundaries(storage, args.root, day)
    val_start = b["val_start"]
    events = read_clean_events(
        spark, storage, args.root, date_window(day, (day - b["window_start"]).days + 1)
    )
    before = events.where(F.col("event_time") < L.day_start(val_start)).cache()
    users = EV.read_targets(spark, storage, args.root, day, L.VAL).select("user_id").distinct()
    users = users.cache()
    candidates = before.where(F.col("item_id").isNotNull()).select("item_id").distinct().cache()
    none = spark.createDataFrame([], "user_id string, item_id string")
    sizes = {
        "events_before_val_start": before.count(),
        "users": before.select("user_id").distinct().count(),
        "items": candidates.count(),
        "val_users": users.count(),
        "val_start": val_start.isoformat(),
    }
    print(f"[knn] {sizes}", flush=True)

    def timed(frame: Any) -> tuple[Any, dict[str, float]]:
        started = time.monotonic()
        frame = frame.cache()
        rows = frame.count()
        return frame, {"rows": rows, "wall_s": round(time.monotonic() - started, 2)}

    def measure_point(s: B.BaselineSettings) -> dict[str, Any]:
        strength, t_strength = timed(
            B.most_recent(
                B.strengths(before, L.DEFAULT_LABEL_WEIGHTS, val_start, s.knn_half_life_days),
                s.knn_items,
            )
        )
        neighbours, t_neighbours = timed(B.item_neighbours(strength, s.knn_neighbours))
        neighbours.unpersist()
        strength.unpersist()
        # the whole baseline as tuning runs it (it builds strengths and neighbours again)
        fit = B.Decayed(before, users, candidates, none, L.DEFAULT_LABEL_WEIGHTS, val_start, 20, s)
        lists, t_lists = timed(B.item_knn_lists(fit))
        lists.unpersist()
        rest = t_lists["wall_s"] - t_strength["wall_s"] - t_neighbours["wall_s"]
        return {
            "strengths": t_strength, "neighbours": t_neighbours, "lists_whole": t_lists,
            "scoring_and_ranking_s": round(max(0.0, rest), 2),
        }  # fmt: skip

    points: list[dict[str, Any]] = []
    with PeakMemory() as memory:
        for point in E.GRIDS[B.ITEM_KNN]:
            points.append(
                {
                    "point": point,
                    **measure_point(E.tuned(B.BaselineSettings(), point)),
                }
            )
            print(f"[knn] {points[-1]}", flush=True)
    write_result(
        f"knn-{args.name}",
        {
            "root": args.root, "run_date": args.run_date, "k": 20, **sizes, "points": points,
            "peak_rss_mb": round(memory.peak / 2**20, 1),
        },
    )  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()
