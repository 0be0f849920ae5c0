"""Label and shard on a copy of the session's template root (generate -> clean -> label -> shard), then every
shard read back with Petastorm readers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from petastorm import make_batch_reader
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import clean, generate, label, shard
from jobs.runtime.manifest import RunResult
from pipelines import label as L
from pipelines.errors import InputError
from tests.conftest import copy_root

pytestmark = pytest.mark.smoke

END = dt.date(2026, 11, 21)
WORKERS = 2


def recorded(root: Path, step: str) -> RunResult:
    """A step's result as its manifest under ``_runs/`` recorded it."""
    path = root / "_runs" / END.isoformat() / f"{step}.json"
    manifest = json.loads(path.read_text())
    return RunResult(step, manifest["status"], manifest, str(path))


@pytest.fixture(scope="module")
def run(
    trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RunResult, RunResult]:
    """A copy of the session's template root (generated, cleaned over 8 days, labeled, sharded
    for 2 workers; see ``trained_template``) with its label and shard results."""
    root = copy_root(trained_template, tmp_path_factory, "label")
    label_result, shard_result = recorded(root, "label"), recorded(root, "shard")
    assert shard_result.manifest["config"]["workers"] == WORKERS
    return root, label_result, shard_result


def read_with_petastorm(
    files: list[str], cur_shard: int, shard_count: int
) -> dict[str, np.ndarray]:
    """All rows a Petastorm worker gets for its shard, column by column."""
    urls = [f"file://{p}" if p.startswith("/") else p for p in files]
    columns: dict[str, list[np.ndarray]] = {}
    with make_batch_reader(
        urls, cur_shard=cur_shard, shard_count=shard_count, num_epochs=1, reader_pool_type="dummy",
        shuffle_row_groups=False,
    ) as reader:  # fmt: skip
        for batch in reader:
            for name, values in batch._asdict().items():
                columns.setdefault(name, []).append(values)
    return {k: np.concatenate(v) for k, v in columns.items()}


def test_label_accounts_for_every_clean_event(run: tuple[Path, RunResult, RunResult]) -> None:
    root, lab, _ = run
    m = lab.manifest
    assert lab.succeeded
    clean_rows = json.loads((root / "_runs" / END.isoformat() / "clean.json").read_text())[
        "rows_out"
    ]
    assert m["rows_in"] == clean_rows
    assert m["rows_in"] == m["rows_out"] + sum(m["rows_filtered"].values()) + sum(
        m["rows_consumed"].values()
    )
    assert m["rows_out"] == sum(m["examples"].values()) and all(
        v > 0 for v in m["examples"].values()
    )
    assert m["rows_filtered"][L.SEARCH_EVENT] > 0 and m["rows_consumed"][L.HISTORY_ONLY] > 0


def test_examples_never_see_the_future(
    spark: SparkSession, run: tuple[Path, RunResult, RunResult]
) -> None:
    root, _, _ = run
    ex = spark.read.parquet(str(root / "examples" / f"dt={END}"))
    # every real history entry is earlier than its target (the generator spaces a user's events >= 5 s)
    ages = ex.select(F.posexplode("hist_age_s").alias("pos", "age"), "hist_len").where(
        F.col("pos") < F.col("hist_len")
    )
    assert ages.agg(F.min("age")).first()[0] >= 5
    # padding sits exactly after hist_len, and the three arrays agree
    bad = ex.where(
        (F.size(F.filter("hist_item_idx", lambda x: x != L.PAD)) != F.col("hist_len"))
        | (F.size(F.filter("hist_type_idx", lambda x: x != L.PAD)) != F.col("hist_len"))
    )
    assert bad.count() == 0
    # time-based splits: every val target after every train target, every test target after val
    bounds = ex.groupBy("split").agg(
        F.min("target_time").alias("lo"), F.max("target_time").alias("hi")
    )
    b = {r["split"]: (r["lo"], r["hi"]) for r in bounds.collect()}
    assert b["train"][1] < b["val"][0] and b["val"][1] < b["test"][0]


def test_shards_are_balanced_multiples_of_the_workers(
    run: tuple[Path, RunResult, RunResult],
) -> None:
    root, lab, shd = run
    manifest = json.loads((root / "shards" / END.isoformat() / "_manifest.json").read_text())
    assert shd.manifest["rows_in"] == shd.manifest["rows_out"] == lab.manifest["rows_out"]
    for split, info in manifest["splits"].items():
        assert len(info["files"]) % WORKERS == 0, split
        assert info["rows"] == lab.manifest["examples"][split]
        assert info["balance_ratio"] <= 1.01  # exact deal: files differ by at most one row
        assert all(Path(f["path"]).exists() and f["row_groups"] >= 1 for f in info["files"])
    assert manifest["vocab"]["num_items"] == lab.manifest["num_items"]
    assert (root / "shards" / END.isoformat() / "vocab" / "items").is_dir()


@pytest.mark.parametrize("split", L.SPLITS)
def test_petastorm_workers_read_disjoint_slices_that_cover_the_split(
    run: tuple[Path, RunResult, RunResult], split: str
) -> None:
    root, _, _ = run
    manifest = json.loads((root / "shards" / END.isoformat() / "_manifest.json").read_text())
    files = [f["path"] for f in manifest["splits"][split]["files"]]
    parts = [read_with_petastorm(files, rank, WORKERS) for rank in range(WORKERS)]
    keys = [
        {
            (u, i, int(t))
            for u, i, t in zip(
                p["user_id"], p["target_item_id"], p["target_time"].astype("int64"), strict=True
            )
        }
        for p in parts
    ]
    assert all(
        len(k) == len(p["user_id"]) for k, p in zip(keys, parts, strict=True)
    )  # no duplicates
    assert not keys[0] & keys[1]
    assert sum(len(k) for k in keys) == manifest["splits"][split]["rows"]
    history = parts[0]["hist_item_idx"]
    assert (
        history.shape[1:] == (manifest["history_length"],)
        or len(history[0]) == manifest["history_length"]
    )


def test_label_refuses_an_empty_window_or_no_training_examples_and_publishes_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    root = tmp_path / "d"
    generate.main(
        spark, generate.GenerateConfig(data_root=str(root), end_date=END, days=2, rows=3000, seed=1)
    )
    clean.main(spark, clean.CleanConfig(data_root=str(root), run_date=END, days=2))
    with pytest.raises(
        InputError, match=r"no clean events under .*clean/events for 2025-01-0\d .. 2025-01-10"
    ):
        label.main(
            spark,
            label.LabelConfig(data_root=str(root), run_date=dt.date(2025, 1, 10), lookback_days=5),
        )
    with pytest.raises(InputError, match=r"the vocabulary has no items"):
        label.main(
            spark,
            label.LabelConfig(
                data_root=str(root), run_date=END, lookback_days=5, min_item_count=10**6
            ),
        )
    # every target filtered for want of history: the message counts the filters and, with the
    # day cutoff, points at --history-cutoff event (session logs); train never sees an empty split
    for cutoff, hint in (("day", True), ("event", False)):
        with pytest.raises(
            InputError, match=r"no training examples: .*filtered: .*no_history"
        ) as e:
            label.main(
                spark,
                label.LabelConfig(
                    data_root=str(root), run_date=END, lookback_days=3, val_days=0,
                    history_cutoff=cutoff, min_history=10**6,
                ),
            )  # fmt: skip
        assert ("for session data use --history-cutoff event" in str(e.value)) == hint
    assert not (root / "examples").exists() and not (root / "vocab").exists()


def test_label_names_a_damaged_clean_file_and_keeps_the_published_examples(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(trained_template, tmp_path_factory, "damaged")
    published = root / "examples" / f"dt={END}"
    before = sorted(p.relative_to(published) for p in published.rglob("*.parquet"))
    part = next((root / "clean" / "events").glob("dt=*/*.parquet"))
    part.write_bytes(b"PAR1 garbage garbage garbage PAR1")
    with pytest.raises(InputError, match=rf"cannot read clean events: .*{part.name}"):
        label.main(spark, label.LabelConfig(data_root=str(root), run_date=END, lookback_days=8))
    assert sorted(p.relative_to(published) for p in published.rglob("*.parquet")) == before


def test_label_warns_when_one_rule_filters_a_large_share(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(trained_template, tmp_path_factory, "warn")
    result = label.main(
        spark,
        label.LabelConfig(
            data_root=str(root), run_date=END, lookback_days=8, min_history=20,
            filter_warn_share=0.05,
        ),
    )  # fmt: skip
    m = result.manifest
    assert result.succeeded
    over = {r: n for r, n in m["rows_filtered"].items() if n > 0.05 * m["rows_in"]}
    assert L.NO_HISTORY in over  # 20 earlier-day items is a lot to ask of an 8-day log
    assert sorted(w.split(" as ")[1].split(",")[0] for w in m["warnings"]) == sorted(over)
    (no_history,) = [w for w in m["warnings"] if f"as {L.NO_HISTORY}," in w]
    assert f"{m['rows_filtered'][L.NO_HISTORY]:,} of {m['rows_in']:,}" in no_history
    assert "--history-cutoff event" in no_history


def test_shard_refuses_missing_examples_and_too_many_workers(
    spark: SparkSession, run: tuple[Path, RunResult, RunResult], tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=rf"no labelled examples for {END} at .*examples/dt={END}"):
        shard.main(spark, shard.ShardConfig(data_root=str(tmp_path / "empty"), run_date=END))
    root, lab, _ = run
    too_many = lab.manifest["examples"]["test"] + 1
    with pytest.raises(
        InputError, match=rf"split \w+ has \d+ examples, fewer than the {too_many} workers"
    ):
        shard.main(
            spark,
            shard.ShardConfig(
                data_root=str(root), run_date=END, workers=too_many, run_id="too-many"
            ),
        )
    assert not (root / "shards" / "too-many").exists()
