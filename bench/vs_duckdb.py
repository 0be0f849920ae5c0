"""cartwheel's label step against a DuckDB twin of the same rules, on the same clean events.

The twin (``twin_label``) is an independent SQL implementation of ``pipelines/label.py``'s
rules: the train-period vocabulary (items seen ``min_item_count``+ times, indexed by count),
the user's item events numbered by (time, event id), a group's history (the L item events
before the group's first one: its UTC day, or its timestamp with ``--history-cutoff event``),
the ``min_history`` and ``max_targets_per_user`` rules, and the time splits. It builds
histories only for the groups that hold an emitted target, and writes the examples as Parquet
partitioned by split plus its vocabulary, like the step.

Each round runs ``cartwheel label`` and the twin as separate processes, in turn, on one data
root, times both (wall seconds, peak RSS of the process tree) and checks that the two example
sets are equal as multisets of rows (every column of the examples contract) before the times
count. ``bench/results/vs-duckdb.json`` keeps, per step, the ratio of the fastest cartwheel
round to the fastest twin round, the rounds, and whether every round's rows were equal;
a run updates the steps it measured and keeps the others.

The data root is made by ``generate`` + ``clean`` (not timed) unless ``--root`` names one that
has clean events for the window (e.g. one kept by ``label_shard_bench.py --keep``).

usage: python bench/vs_duckdb.py [--rows 1000000] [--days 7] [--rounds 3] [--work-dir DIR]
                                 [--root DATA_ROOT]
       python bench/vs_duckdb.py twin-label --root R --run-date D --rules JSON --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

END = "2026-11-21"
RESULT = "vs-duckdb"


# -- the twin (runs in its own process; imports nothing but duckdb) -----------------------------


def twin_label(root: Path, run_date: dt.date, rules: dict[str, Any], out: Path) -> dict[str, int]:
    """Label the window ending at ``run_date`` with DuckDB; write ``out/examples`` (Parquet,
    ``split=`` folders) and ``out/vocab_items``; return examples per split."""
    import duckdb

    L = rules["history_length"]
    days = [run_date - dt.timedelta(days=k) for k in range(rules["lookback_days"] - 1, -1, -1)]
    folders = [root / "clean" / "events" / f"dt={d}" for d in days]
    files = [str(f / "*.parquet") for f in folders if f.is_dir()]
    if not files:
        raise SystemExit(
            f"no clean events under {root / 'clean' / 'events'} for {days[0]} .. {days[-1]}"
        )
    test_start = run_date - dt.timedelta(days=rules["test_days"] - 1)
    val_start = test_start - dt.timedelta(days=rules["val_days"])
    types = {"view": 1, "click": 2, "cart": 3, "purchase": 4}
    type_case = (
        "CASE event_type " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in types.items()) + " END"
    )
    weight_case = (
        "CASE event_type "
        + " ".join(f"WHEN '{k}' THEN {float(v)!r}" for k, v in rules["label_weights"].items())
        + " END"
    )
    targets = ", ".join(f"'{t}'" for t in rules["target_types"])
    day = rules["history_cutoff"] == "day"
    group = "CAST(event_time AS DATE)" if day else "event_time"
    t_ref = "date_trunc('day', event_time)" if day else "event_time"
    secs = "CAST(epoch_us({}) AS DOUBLE) / CAST(1000000 AS DOUBLE)"  # Spark's timestamp -> double

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""
        CREATE TEMP TABLE ev AS
        SELECT event_id, user_id, item_id, event_type, event_time, category, is_known_item
        FROM read_parquet({files!r}, hive_partitioning = false)
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE counts AS
        SELECT item_id, count(*) AS cnt, min(category) AS category FROM ev
        WHERE item_id IS NOT NULL AND is_known_item AND event_time < TIMESTAMPTZ '{val_start} 00:00:00+00'
        GROUP BY item_id HAVING count(*) >= {rules["min_item_count"]};
        CREATE TEMP TABLE categories AS
        SELECT category, CAST(row_number() OVER (ORDER BY sum(cnt) DESC, category) + 1 AS INTEGER)
            AS category_idx
        FROM counts WHERE category IS NOT NULL GROUP BY category;
        CREATE TEMP TABLE vocab AS
        SELECT c.item_id, CAST(row_number() OVER (ORDER BY c.cnt DESC, c.item_id) + 1 AS INTEGER)
            AS item_idx, c.category, coalesce(k.category_idx, 1) AS category_idx, c.cnt AS count
        FROM counts c LEFT JOIN categories k USING (category);
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE it AS
        SELECT e.user_id, e.item_id, e.event_type, e.event_time, v.item_idx,
            coalesce(v.category_idx, 1) AS category_idx, coalesce(v.item_idx, 1) AS idx,
            {type_case} AS type_idx, {secs.format("e.event_time")} AS t,
            {secs.format(t_ref)} AS t_ref,
            row_number() OVER (PARTITION BY e.user_id ORDER BY e.event_time, e.event_id) AS pos,
            rank() OVER (PARTITION BY e.user_id ORDER BY {group}) AS tie_start,
            e.event_id
        FROM ev e LEFT JOIN vocab v USING (item_id)
        WHERE e.item_id IS NOT NULL;
        CREATE TEMP TABLE targets AS
        SELECT * FROM (
            SELECT *, sum(CAST(emittable AS INTEGER)) OVER (
                PARTITION BY user_id ORDER BY event_time DESC, event_id DESC
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS recent_rank
            FROM (
                SELECT *, event_type IN ({targets}) AND item_idx IS NOT NULL
                    AND least(tie_start - 1, {L}) >= {rules["min_history"]} AS emittable
                FROM it))
        WHERE emittable AND recent_rank <= {rules["max_targets_per_user"]};
        CREATE TEMP TABLE histories AS
        SELECT a.user_id, a.tie_start,
            list(h.idx ORDER BY h.pos DESC) AS items,
            list(h.type_idx ORDER BY h.pos DESC) AS types,
            list(CAST(trunc(least(a.t_ref - h.t, 2147483647.0)) AS INTEGER) ORDER BY h.pos DESC)
                AS ages
        FROM (SELECT DISTINCT user_id, tie_start, t_ref FROM targets) a
        JOIN it h ON h.user_id = a.user_id AND h.pos >= a.tie_start - {L} AND h.pos < a.tie_start
        GROUP BY a.user_id, a.tie_start;
        """
    )

    def padded(name: str) -> str:
        return f"list_resize(coalesce(h.{name}, []::INTEGER[]), {L}, 0)"

    con.execute(
        f"""
        CREATE TEMP TABLE examples AS
        SELECT t.user_id, t.item_id AS target_item_id, t.item_idx AS target_item_idx,
            t.category_idx AS target_category_idx, t.event_type AS target_type,
            t.type_idx AS target_type_idx, CAST({weight_case} AS FLOAT) AS label_weight,
            t.event_time AS target_time, {padded("items")} AS hist_item_idx,
            {padded("types")} AS hist_type_idx, {padded("ages")} AS hist_age_s,
            CAST(least(t.tie_start - 1, {L}) AS INTEGER) AS hist_len,
            CASE WHEN t.event_time >= TIMESTAMPTZ '{test_start} 00:00:00+00' THEN 'test'
                 WHEN t.event_time >= TIMESTAMPTZ '{val_start} 00:00:00+00' THEN 'val'
                 ELSE 'train' END AS split
        FROM targets t LEFT JOIN histories h USING (user_id, tie_start)
        """
    )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con.execute(f"COPY examples TO '{out / 'examples'}' (FORMAT PARQUET, PARTITION_BY (split))")
    con.execute(
        f"COPY (SELECT * FROM vocab ORDER BY item_idx) TO '{out / 'vocab_items.parquet'}' (FORMAT PARQUET)"
    )
    return dict(con.execute("SELECT split, count(*) FROM examples GROUP BY split").fetchall())


def compare_examples(cartwheel: Path, twin: Path) -> dict[str, int]:
    """Rows only in cartwheel's examples, only in the twin's (multisets), and each side's rows."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    from pipelines.schemas import EXAMPLES

    cols = ", ".join(EXAMPLES.columns)
    a = f"SELECT {cols} FROM read_parquet('{cartwheel}/split=*/*.parquet', hive_partitioning = true)"
    b = f"SELECT {cols} FROM read_parquet('{twin}/split=*/*.parquet', hive_partitioning = true)"

    def count(sql: str) -> int:
        row = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        assert row is not None  # a count always returns one row
        return int(row[0])

    return {
        "cartwheel_rows": count(a),
        "twin_rows": count(b),
        "only_cartwheel": count(f"{a} EXCEPT ALL {b}"),
        "only_twin": count(f"{b} EXCEPT ALL {a}"),
    }


# -- the comparison -----------------------------------------------------------------------------


def label_rules(rules: Any) -> dict[str, Any]:
    """A ``pipelines.label.LabelRules`` (or a label config) as the twin's plain rules."""
    from pipelines.label import LabelRules

    plain = {f.name: getattr(rules, f.name) for f in dataclasses.fields(LabelRules)}
    plain["label_weights"] = dict(plain["label_weights"])
    plain["target_types"] = list(plain["target_types"])
    return plain


def measure_label(root: Path, days: int, rounds: int, work: Path) -> dict[str, Any]:
    from bench.common import run_sampled
    from pipelines.label import LabelRules

    rules = label_rules(LabelRules(lookback_days=days))
    twin_out = work / "twin-label"
    runs: list[dict[str, Any]] = []
    for n in range(1, rounds + 1):
        lab = ["label", "--data-root", str(root), "--run-date", END, "--lookback-days", str(days)]
        wall, code, samples = run_sampled(lab, work / "logs" / f"label-{n}.log")
        if code != 0:
            raise SystemExit(
                f"cartwheel label failed (exit {code}): see {work / 'logs' / f'label-{n}.log'}"
            )
        cw = {"wall_s": round(wall, 2), "peak_rss_mb": round(max(r for _, r in samples) / 2**20, 1)}
        twin_cmd = [
            "twin-label", "--root", str(root), "--run-date", END, "--rules", json.dumps(rules),
            "--out", str(twin_out),
        ]  # fmt: skip
        wall, code, samples = run_sampled(
            twin_cmd, work / "logs" / f"twin-label-{n}.log", command=[sys.executable, __file__]
        )
        if code != 0:
            raise SystemExit(
                f"the DuckDB twin failed (exit {code}): see {work / 'logs' / f'twin-label-{n}.log'}"
            )
        tw = {"wall_s": round(wall, 2), "peak_rss_mb": round(max(r for _, r in samples) / 2**20, 1)}
        eq = compare_examples(root / "examples" / f"dt={END}", twin_out / "examples")
        equal = (
            eq["only_cartwheel"] == eq["only_twin"] == 0 and eq["cartwheel_rows"] == eq["twin_rows"]
        )
        runs.append({"round": n, "cartwheel": cw, "duckdb": tw, "rows_equal": equal, **eq})
        print(
            f"  round {n}: cartwheel {cw['wall_s']:.1f}s, DuckDB {tw['wall_s']:.1f}s, "
            f"{eq['cartwheel_rows']:,} examples, equal {equal}",
            flush=True,
        )
    best_cw = min(r["cartwheel"]["wall_s"] for r in runs)
    best_tw = min(r["duckdb"]["wall_s"] for r in runs)
    manifest = json.loads((root / "_runs" / END / "label.json").read_text())
    return {
        "ratio": round(best_cw / best_tw, 2),
        "rounds": rounds,
        "rows_equal": all(r["rows_equal"] for r in runs),
        "clean_events": manifest["rows_in"],
        "examples": manifest["rows_out"],
        "cartwheel_best_wall_s": best_cw,
        "duckdb_best_wall_s": best_tw,
        "rules": rules,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["twin-label"]:
        p = argparse.ArgumentParser(prog="vs_duckdb.py twin-label")
        p.add_argument("--root", type=Path, required=True)
        p.add_argument("--run-date", type=dt.date.fromisoformat, required=True)
        p.add_argument("--rules", type=json.loads, required=True)
        p.add_argument("--out", type=Path, required=True)
        a = p.parse_args(argv[1:])
        print(json.dumps(twin_label(a.root, a.run_date, a.rules, a.out)))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="raw rows to generate")
    p.add_argument("--days", type=int, default=7, help="days of log (and the label window)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/cartwheel-vs-duckdb"))
    p.add_argument("--root", type=Path, help="an existing data root with clean events to reuse")
    a = p.parse_args(argv)
    from bench.common import RESULTS, cleaned_root, write_result

    root = a.root or cleaned_root(
        a.work_dir / f"vs-duckdb-{a.rows}", a.rows, a.days, END, a.work_dir / "logs"
    )
    print(f"label vs its DuckDB twin on {root}: {a.rounds} rounds ...", flush=True)
    label = measure_label(root, a.days, a.rounds, a.work_dir)
    previous = RESULTS / f"{RESULT}.json"
    doc = json.loads(previous.read_text()) if previous.exists() else {}
    steps = {k: doc[k] for k in ("clean", "label") if k in doc}
    steps["label"] = {"rows_target": a.rows if a.root is None else None, "days": a.days, **label}
    path = write_result(RESULT, steps)
    print(f"  label: {label['ratio']}x DuckDB, rows equal {label['rows_equal']} -> {path}")
    return 0 if label["rows_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
