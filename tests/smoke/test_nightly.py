"""cartwheel nightly and backfill on the session's small generated log: idempotent, resumable, incremental,
locked and atomic in what they publish.

The nights run once per module, as a scheduler would run them (the fixtures ``first_night``
and ``second_night``); a test that changes a root's state (``--force``, ``--from-step``) works
on a copy of it, so every test passes alone and in any order.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import backfill, nightly
from jobs.night.options import NightOptions
from jobs.night.steps import STEP_NAMES
from jobs.runtime import layout
from jobs.runtime.lock import LockHeldError, data_root_lock, lock_path
from jobs.runtime.manifest import RunResult
from jobs.runtime.readers import date_window, read_clean_events
from jobs.runtime.storage import Storage
from pipelines import evaluation as E
from pipelines.errors import ConfigError, InputError
from tests.conftest import REPO

pytestmark = pytest.mark.smoke

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
LOOKBACK = 4
# Cheap baselines, untuned, and few bootstrap resamples keep each evaluation short; a ranker over
# three cheap generators, untuned, keeps rank short (tuning, the intervals and the other
# generators have their own tests); the sections also exercise --step-config.
GENERATORS = ["buy_again", "popularity", "recent_popularity"]
STEP_CONFIG = (
    "evaluate:\n  baselines: [popularity, recent_popularity]\n  ks: [10, 20]\n"
    "  tune_baselines: false\n  bootstrap_replicates: 20\n  gate_min_warm_users: 1\n"
    f"rank:\n  generators: {GENERATORS}\n  depth: 20\n  fit_days: 1\n"
    "  tune_generators: false\n  epochs: 3\n  lists_per_batch: 64\n"
)
TABLES = ("clean/events", "quarantine/events", "examples")


def night_config(root: Path, day: dt.date, **kw: Any) -> nightly.NightlyConfig:
    values: dict[str, Any] = {
        "data_root": str(root),
        "run_date": day,
        "lookback_days": LOOKBACK,
        "epochs": 1,
        # A 1-epoch model and a 3-epoch ranker on 30k rows need not beat a baseline, and two
        # such models differ by noise: a token gate (the ranked lists must be judged and score
        # above zero) and a wide champion tolerance (both rules have their own tests).
        "gate_min_ratio": 0.01,
        "champion_tolerance": 0.9,
        "step_config": str(root.parent / "steps.yaml"),
        **kw,
    }
    return nightly.NightlyConfig(**values)


def checksum(spark: SparkSession, path: Path, drop: tuple[str, ...] = ()) -> tuple[int, str]:
    """(rows, order-independent hash of every row's columns except ``drop``). A quarantined
    row's ``source_file`` counts from ``raw/``: it names its raw file under the data root it was
    cleaned in, which for a copied root is the copy."""
    df = spark.read.parquet(str(path))
    if "source_file" in df.columns:
        df = df.withColumn("source_file", F.regexp_extract("source_file", r"(raw/events/.*)$", 1))
    cols = [c for c in df.columns if c not in drop]
    row = df.agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h")
    ).first()
    assert row is not None
    return int(row["n"]), str(row["h"])


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def statuses(result: Any) -> dict[str, str]:
    return {name: s["status"] for name, s in result.manifest["steps"].items()}


@pytest.fixture(scope="module")
def root(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding only the raw logs of the session's template (generated, 8 days up to
    D2): nothing cleaned, labeled or trained yet."""
    base = tmp_path_factory.mktemp("nightly")
    (base / "steps.yaml").write_text(STEP_CONFIG)
    data = base / "data"
    shutil.copytree(trained_template / "raw", data / "raw")
    # Raw logs up to D1 only: D2's day arrives later, as it would overnight.
    late = data / "raw" / "events" / f"dt={D2}"
    late.rename(base / f"arrives-later-dt={D2}")
    return data


@pytest.fixture(scope="module")
def first_night(spark: SparkSession, root: Path) -> RunResult:
    # the default night: rank after train, its lists gated against the better of steps.yaml's
    # two baselines
    result = nightly.main(spark, night_config(root, D1))
    # What readers saw right after this night: later fixtures (second_night) move the root on,
    # and tests run in any order.
    pending = root / "_pending"
    result.details["latest"] = json.loads((root / "recs/_latest.json").read_text())
    result.details["pending"] = (
        sorted(p.name for p in pending.iterdir()) if pending.exists() else []
    )
    return result


def copy_of(root: Path, tmp_path: Path) -> Path:
    """A copy of a data root (times kept, as ``cp -a``), to change without touching the module's."""
    copy = tmp_path / "copy" / "data"
    shutil.copytree(root, copy)
    shutil.copy(root.parent / "steps.yaml", copy.parent / "steps.yaml")
    return copy


@pytest.fixture(scope="module")
def second_night(spark: SparkSession, first_night: Any, root: Path) -> dict[str, Any]:
    """D2's raw day arrives; D2's night fails its quality gate, then the same night is run again
    with the gate it should have. What the tests check is recorded between the two."""
    (root.parent / f"arrives-later-dt={D2}").rename(root / "raw" / "events" / f"dt={D2}")
    seen: dict[str, Any] = {
        "clean_before": {
            d: mtimes(root / "clean" / "events" / f"dt={d}")
            for d in (D1, D1 - dt.timedelta(days=1))
        },
        "yesterday": (checksum(spark, yesterday_recs(root)), mtimes(yesterday_recs(root))),
        "latest_before": (root / "recs/_latest.json").read_text(),
    }
    seen["failed"] = nightly.main(spark, night_config(root, D2, gate_min_ratio=1000.0))
    seen["after_failure"] = {
        "clean": json.loads((root / f"_runs/{D2}/clean.json").read_text()),
        "clean_mtimes": {
            d: mtimes(root / "clean" / "events" / f"dt={d}") for d in seen["clean_before"]
        },
        "d2_published": any((root / "recs" / t / f"dt={D2}").exists() for t in layout.RECS_TABLES),
        "yesterday": (checksum(spark, yesterday_recs(root)), mtimes(yesterday_recs(root))),
        "latest": (root / "recs/_latest.json").read_text(),
        "pending": (root / "_pending" / f"dt={D2}" / "recs" / "user_topk" / f"dt={D2}").is_dir(),
    }
    seen["resumed"] = nightly.main(spark, night_config(root, D2))
    return seen


def yesterday_recs(root: Path) -> Path:
    """The first night's published user_topk partition."""
    return root / "recs" / "user_topk" / f"dt={D1}"


def test_first_night_runs_every_step_and_publishes(first_night: Any, root: Path) -> None:
    assert first_night.succeeded, first_night.manifest["steps"]
    assert set(statuses(first_night).values()) == {"succeeded"}
    assert list(statuses(first_night)) == list(
        STEP_NAMES
    )  # rank too: the second stage is the default
    for step in statuses(first_night):
        assert json.loads((root / f"_runs/{D1}/{step}.json").read_text())["status"] == "succeeded"
    clean = json.loads((root / f"_runs/{D1}/clean.json").read_text())
    assert len(clean["days"]) == LOOKBACK and clean["days_reused"] == []
    assert first_night.details["latest"]["run_date"] == D1.isoformat()
    assert (root / f"recs/user_topk/dt={D1}").is_dir() and (
        root / f"recs/item_similar/dt={D1}"
    ).is_dir()
    assert first_night.details["pending"] == []
    evaluated = json.loads((root / f"_runs/{D1}/evaluate.json").read_text())
    # steps.yaml's baselines, the two-tower and the ranked lists, which the night published
    assert set(evaluated["metrics"]) == {"model", "ranked", "popularity", "recent_popularity"}
    html = (root / f"reports/dt={D1}/night.html").read_text()
    assert "Data quality (clean)" in html and "Sample recommendations" in html and "<svg" in html


def test_a_second_run_skips_every_step_and_changes_nothing(
    spark: SparkSession, first_night: Any, root: Path
) -> None:
    before = {t: checksum(spark, root / t) for t in TABLES}
    recs = root / "recs" / "user_topk" / f"dt={D1}"
    recs_before, recs_files = checksum(spark, recs), mtimes(recs)
    again = nightly.main(spark, night_config(root, D1))
    assert again.succeeded
    assert set(statuses(again).values()) == {"skipped"}
    assert {t: checksum(spark, root / t) for t in TABLES} == before
    assert checksum(spark, recs) == recs_before and mtimes(recs) == recs_files


@pytest.mark.slow  # a whole second night on a copy: about 2 minutes on 2 cores (make test-all)
def test_force_redoes_every_step_and_gives_the_same_tables(
    spark: SparkSession, first_night: Any, root: Path, tmp_path: Path
) -> None:
    root = copy_of(root, tmp_path)
    before = {t: checksum(spark, root / t) for t in TABLES}
    recs = root / "recs" / "user_topk" / f"dt={D1}"
    # A retrained model is a new registry version and its float scores differ in the last bits;
    # the lists themselves (users, items, ranks, sources) must be the same.
    lists_before = checksum(spark, recs, drop=("model_version", "score"))
    scores_before = spark.read.parquet(str(recs)).select("user_id", "rank", "score").toPandas()
    forced = nightly.main(spark, night_config(root, D1, force=True))
    assert forced.succeeded and set(statuses(forced).values()) == {"succeeded"}
    assert {t: checksum(spark, root / t) for t in TABLES} == before
    assert checksum(spark, recs, drop=("model_version", "score")) == lists_before
    after = spark.read.parquet(str(recs)).select("user_id", "rank", "score").toPandas()
    both = scores_before.merge(after, on=["user_id", "rank"], suffixes=("", "_after"))
    assert len(both) == len(scores_before) == len(after)
    assert (both["score"] - both["score_after"]).abs().max() < 1e-3


def test_the_first_night_publishes_the_ranked_lists(
    spark: SparkSession, first_night: Any, root: Path
) -> None:
    ranked = json.loads((root / f"_runs/{D1}/rank.json").read_text())
    version = ranked["model_version"]
    evaluated = json.loads((root / f"_runs/{D1}/evaluate.json").read_text())
    gate = evaluated["gate"]
    assert gate["passed"] and gate["method"] == "ranked"
    assert gate["baseline"] in ("popularity", "recent_popularity")  # the best of the two
    assert evaluated["ranker"] == {
        "name": "cartwheel-ranker", "version": version, "champion": True,
        "uri": f"models:/cartwheel-ranker/{version}",
        # both baselines are generators of the ranker, untuned on both sides: taken from its lists
        "baselines_from_its_lists": ["popularity", "recent_popularity"],
    }  # fmt: skip
    assert gate["model"] == evaluated["metrics"]["ranked"]["20"]["recall"]
    assert evaluated["labels"]["ranked"] == f"ranker v{version}"
    table = evaluated["metrics"]
    for k in ("10", "20"):
        assert table["ranked"][k]["users"] == table["model"][k]["users"] > 0  # the same users
        assert 0.0 <= table["ranked"][k]["recall"] <= table["ranked"][k]["hit_rate"] <= 1.0
    # every other method is paired with the ranked lists on the same resamples
    paired = json.loads((root / f"reports/dt={D1}/metrics.json").read_text())
    vs_ranked = paired["intervals_vs_ranked"]
    assert set(vs_ranked) == {"model", "popularity", "recent_popularity"}
    for method, per_metric in vs_ranked.items():
        assert set(per_metric) == {"recall@20", "ndcg@10"}
        for key, i in per_metric.items():
            metric, k = key.split("@")
            mean_diff = table[method][k][metric] - table["ranked"][k][metric]
            assert i["diff_lo"] <= i["diff_hi"] and i["verdict"] == E.verdict(
                i["diff_lo"], i["diff_hi"]
            )
            assert i["diff_lo"] - 0.05 <= mean_diff <= i["diff_hi"] + 0.05  # around the observed
    published = spark.read.parquet(str(yesterday_recs(root))).toPandas()
    assert set(published.model_name) == {"cartwheel-ranker"}
    assert set(published.model_version) == {version}
    assert set(published.source) <= set(GENERATORS)
    latest = first_night.details["latest"]
    assert latest["ranker"] == {"name": "cartwheel-ranker", "version": version}
    scored = json.loads((root / f"_runs/{D1}/score.json").read_text())
    assert scored["rows_out"] == published.user_id.nunique() == latest["users"]
    # score counted the candidates of every generator and the source of every published row
    assert set(scored["ranker"]["candidates_per_generator"]) == set(GENERATORS)
    assert all(n > 0 for n in scored["ranker"]["candidates_per_generator"].values())
    assert published.source.value_counts().to_dict() == scored["ranker"]["published_per_source"]
    assert len(published) == scored["user_topk_rows"]
    for _, rows in published.sort_values("rank").groupby("user_id"):  # ranks 1..n by score
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1)) and len(rows) <= scored["k"]
        assert rows.score.is_monotonic_decreasing
    # nothing the exclusion rule hides is recommended
    storage = Storage(spark)
    events = read_clean_events(spark, storage, str(root), date_window(D1, LOOKBACK))
    users = spark.createDataFrame(published[["user_id"]].drop_duplicates())
    hidden = E.exclusions_of(events, users, scored["config"]["exclude"])
    pairs = spark.createDataFrame(published[["user_id", "item_id"]])
    assert pairs.join(hidden, ["user_id", "item_id"], "left_semi").count() == 0


@pytest.mark.slow  # score, evaluate and publish again on a copy (20 s here under load; make test-all)
def test_a_night_without_the_second_stage_publishes_the_two_towers_lists(
    spark: SparkSession, first_night: Any, root: Path, tmp_path: Path
) -> None:
    root = copy_of(root, tmp_path)
    night = nightly.main(spark, night_config(root, D1, second_stage=False))
    assert night.succeeded, night.manifest["steps"]
    ran = statuses(night)
    assert list(ran) == [s for s in STEP_NAMES if s != "rank"]
    assert ran["train"] == "skipped" and ran["score"] == ran["publish"] == "succeeded"
    evaluated = json.loads((root / f"_runs/{D1}/evaluate.json").read_text())
    gate = evaluated["gate"]
    assert gate["passed"] and gate["method"] == "model" and gate["baseline"] == "popularity"
    assert "ranked" not in evaluated["metrics"]
    trained = json.loads((root / f"_runs/{D1}/train.json").read_text())
    published = spark.read.parquet(str(yesterday_recs(root))).toPandas()
    assert set(published.model_name) == {trained["registered_model"]}
    assert set(published.model_version) == {trained["model_version"]}
    latest = json.loads((root / "recs/_latest.json").read_text())
    assert latest.get("ranker") is None and latest["users"] == published.user_id.nunique()


def test_a_failed_evaluation_publishes_nothing(second_night: dict[str, Any]) -> None:
    failed, seen = second_night["failed"], second_night["after_failure"]
    assert not failed.succeeded
    assert statuses(failed) == {
        "clean": "succeeded", "label": "succeeded", "shard": "succeeded", "train": "succeeded",
        "rank": "succeeded", "score": "succeeded", "evaluate": "failed", "publish": "not run",
    }  # fmt: skip
    error = failed.manifest["steps"]["evaluate"]["error"]
    assert "the lists of ranker cartwheel-ranker" in error and "failed the quality gate" in error
    # incremental: only the new day was read and cleaned; earlier partitions kept their files
    clean = seen["clean"]
    assert clean["days"] == [D2.isoformat()] and len(clean["days_reused"]) == LOOKBACK - 1
    assert seen["clean_mtimes"] == second_night["clean_before"]
    # atomic: nothing for D2 in recs/, yesterday's tables untouched, latest still yesterday
    assert not seen["d2_published"]
    assert seen["yesterday"] == second_night["yesterday"]
    assert seen["latest"] == second_night["latest_before"]
    assert seen["pending"]


def test_the_next_run_resumes_at_evaluate_and_publishes(
    spark: SparkSession, second_night: dict[str, Any], root: Path
) -> None:
    resumed = second_night["resumed"]
    assert resumed.succeeded
    assert statuses(resumed) == {
        "clean": "skipped", "label": "skipped", "shard": "skipped", "train": "skipped",
        "rank": "skipped", "score": "skipped", "evaluate": "succeeded", "publish": "succeeded",
    }  # fmt: skip
    assert (root / "recs" / "user_topk" / f"dt={D2}").is_dir()
    assert json.loads((root / "recs/_latest.json").read_text())["run_date"] == D2.isoformat()
    # tonight's ranked lists were measured beside those of the ranker that served until now
    evaluated = json.loads((root / f"_runs/{D2}/evaluate.json").read_text())
    ranker = evaluated["ranker"]
    assert evaluated["labels"]["champion_ranked"] == "champion ranker v1"
    assert ranker["version"] == "2"
    check = evaluated["gate"]["champion_ranker"]
    assert check["champion_ranked"] == evaluated["metrics"]["champion_ranked"]["20"]["recall"]
    assert check["held"] and ranker["champion"]  # within steps' champion tolerance: it serves
    report = (root / f"reports/dt={D2}/report.md").read_text()
    assert f"Against the champion ranker: {check['reason']}." in report
    yesterday = yesterday_recs(root)
    assert (checksum(spark, yesterday), mtimes(yesterday)) == second_night["yesterday"]


def test_the_first_night_trains_from_scratch_and_the_second_from_the_champion(
    second_night: dict[str, Any], root: Path
) -> None:
    first = json.loads((root / f"_runs/{D1}/train.json").read_text())
    assert first["training"]["mode"] == "full"  # no champion yet
    assert first["training"]["reason"] == (
        "no model to start from at models:/cartwheel-two-tower@champion"
    )
    second = json.loads((root / f"_runs/{D2}/train.json").read_text())
    # the first night's model became the champion; D2's vocabulary is mostly the same items
    assert second["training"]["mode"] == "warm", second["training"]
    assert second["training"]["source"] == f"models:/cartwheel-two-tower/{first['model_version']}"
    assert second["training"]["full_retrain_date"] == D1.isoformat()
    assert second["training"]["carried"]["items_carried"] > 0
    assert len(second["epochs_run"]) <= NightOptions().warm_epochs
    first_page = (root / f"reports/dt={D1}/night.html").read_text()
    assert (
        "Trained from scratch: no model to start from at models:/cartwheel-two-tower@champion"
        in first_page
    )
    second_page = (root / f"reports/dt={D2}/night.html").read_text()
    assert (
        f"Warm-started from {second['training']['source']}: last full training {D1}" in second_page
    )


def test_the_second_nights_score_advances_the_first_nights_user_history_state(
    second_night: dict[str, Any], root: Path
) -> None:
    first = json.loads((root / f"_runs/{D1}/score.json").read_text())["user_history"]
    assert first["built"] == "rebuilt"  # the first night has no state of the day before
    assert f"no user history state of {D1 - dt.timedelta(days=1)}" in first["reason"]
    second = json.loads((root / f"_runs/{D2}/score.json").read_text())
    state = second["user_history"]
    assert state["built"] == "incremental", state
    assert state["previous"].endswith(f"state/user_history/dt={D1}")
    assert state["users"] == second["active_users"] > 0
    meta = json.loads((root / f"state/user_history/dt={D2}/_meta.json").read_text())
    assert (meta["built"], meta["users"], meta["lookback_days"]) == (
        "incremental",
        state["users"],
        LOOKBACK,
    )


def test_the_second_nights_rank_carries_the_first_nights_lists(
    spark: SparkSession, second_night: dict[str, Any], root: Path
) -> None:
    """D2's fit cutoff (D1's val start, a one-day val split there) was listed by D1's rank with
    the same generators and settings from clean days not cleaned since: D2 takes those rows as
    they are and builds only its own val start's lists."""
    ranked = json.loads((root / f"_runs/{D2}/rank.json").read_text())
    carried = (D1 - dt.timedelta(days=1)).isoformat()
    assert ranked["cutoffs"] == [D1.isoformat(), carried]
    assert ranked["cutoffs_carried"] == {"from": D1.isoformat(), "cutoffs": [carried]}
    cols = ["group_id", "user_id", "item_id", "label", "relevant", "features"]

    def rows(day: dt.date) -> list[tuple]:
        fit = spark.read.parquet(layout.ranker_lists(str(root), day, "fit"))
        picked = fit.where(F.col("cutoff") == carried).select(*cols).collect()
        return sorted((*r[:5], tuple(r[5])) for r in picked)

    tonight = rows(D2)
    assert tonight and tonight == rows(D1)
    assert ranked["lists"]["fit"]["rows"] > len(tonight)  # and its own val start's lists


def test_backfill_runs_the_nights_in_order_and_skips_what_is_done(
    spark: SparkSession, second_night: dict[str, Any], root: Path
) -> None:
    config = backfill.BackfillConfig(
        data_root=str(root), from_date=D1, to_date=D2, **night_config(root, D1).night_options()
    )
    result = backfill.main(spark, config)
    assert result.succeeded
    assert [n["run_date"] for n in result.manifest["nights"]] == [D1.isoformat(), D2.isoformat()]
    for day in (D1, D2):
        doc = json.loads((root / f"_runs/{day}/nightly.json").read_text())
        assert {s["status"] for s in doc["steps"].values()} == {"skipped"}
    assert "2026-11-20  succeeded" in backfill.summarize(result)


def test_redoing_an_earlier_nights_evaluation_reads_that_nights_own_examples(
    spark: SparkSession, second_night: dict[str, Any], root: Path, tmp_path: Path
) -> None:
    root = copy_of(root, tmp_path)
    metas = {day: root / "examples" / f"dt={day}" / "_meta.json" for day in (D1, D2)}
    assert {day: json.loads(m.read_text())["run_date"] for day, m in metas.items()} == {
        D1: D1.isoformat(),
        D2: D2.isoformat(),
    }  # each night keeps its own labels
    redo = nightly.main(spark, night_config(root, D1, from_step="evaluate"))
    assert redo.succeeded
    assert statuses(redo) == {
        "clean": "skipped", "label": "skipped", "shard": "skipped", "train": "skipped",
        "rank": "skipped", "score": "skipped", "evaluate": "succeeded", "publish": "succeeded",
    }  # fmt: skip
    evaluated = json.loads((root / f"_runs/{D1}/evaluate.json").read_text())
    assert str(layout.examples(str(root), D1)) in " ".join(evaluated["inputs"])
    # re-running an older night never moves the published pointer back
    assert json.loads((root / "recs/_latest.json").read_text())["run_date"] == D2.isoformat()


def test_a_second_run_on_a_locked_data_root_refuses_to_start(
    spark: SparkSession, second_night: dict[str, Any], root: Path
) -> None:
    """The installed ``cartwheel`` entry point, in its own process, is refused with exit 3."""
    state = root / f"_runs/{D2}/nightly.json"
    before = state.read_text()
    with data_root_lock(Storage(spark), str(root), D2.isoformat()):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "cartwheel"), "nightly", "--data-root", str(root),
             "--run-date", D2.isoformat(), "--lookback-days", str(LOOKBACK)],
            capture_output=True, text=True, cwd=REPO, timeout=600,
            env={**os.environ, "CARTWHEEL_DRIVER_MEMORY": "1g"},
        )  # fmt: skip
        assert done.returncode == 3, done.stderr[-3000:]
        assert f"pid {os.getpid()}" in done.stderr and "holds the lock" in done.stderr
        assert state.read_text() == before  # the refused run wrote nothing
    assert not Path(lock_path(str(root))).exists()  # released on exit


def test_a_lock_left_by_a_dead_process_here_is_taken_over(
    spark: SparkSession, tmp_path: Path
) -> None:
    storage = Storage(spark)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    holder = {"host": socket.gethostname(), "pid": int(dead.stdout), "run_date": "2026-11-01",
              "started_at": "2026-11-01T00:00:00+00:00"}  # fmt: skip
    path = Path(lock_path(str(tmp_path)))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(holder))
    with data_root_lock(storage, str(tmp_path), "2026-11-02") as me:
        assert json.loads(path.read_text())["token"] == me["token"]
    # A live holder on another host is never taken over.
    path.write_text(json.dumps({**holder, "host": "elsewhere", "pid": 1}))
    with (
        pytest.raises(LockHeldError, match="elsewhere"),
        data_root_lock(storage, str(tmp_path), "x"),
    ):
        pass
    with data_root_lock(storage, str(tmp_path), "x", break_lock=True):
        pass


def test_bad_night_configs_fail_before_anything_runs(spark: SparkSession, tmp_path: Path) -> None:
    bad = tmp_path / "steps.yaml"
    bad.write_text("trian:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=r"steps.yaml: unknown section\(s\) trian"):
        nightly.NightlyConfig(data_root=str(tmp_path), run_date=D1, step_config=str(bad))
    bad.write_text("score:\n  output_root: /elsewhere\n")
    with pytest.raises(ConfigError, match="sets output_root, which the night sets itself"):
        nightly.NightlyConfig(data_root=str(tmp_path), run_date=D1, step_config=str(bad))
    bad.write_text("train:\n  epochs: lots\n")
    config = nightly.NightlyConfig(data_root=str(tmp_path), run_date=D1, step_config=str(bad))
    with pytest.raises(
        ConfigError,
        match=r"steps.yaml \[train\]: invalid config value epochs=lots: must be a valid integer",
    ):
        nightly.main(spark, config)
    assert not (tmp_path / "_runs" / D1.isoformat() / "clean.json").exists()
    # a run date with no raw day fails before any step, names the folder, and frees the lock
    empty = nightly.NightlyConfig(data_root=str(tmp_path / "empty"), run_date=D1)
    with pytest.raises(
        InputError, match=f"no raw events for the run date {D1}: .*dt={D1} is missing"
    ):
        nightly.main(spark, empty)
    assert not Path(lock_path(str(tmp_path / "empty"))).exists()
    with pytest.raises(ConfigError, match="from_step='bogus'"):
        nightly.NightlyConfig(data_root=str(tmp_path), run_date=D1, from_step="bogus")
    with pytest.raises(ConfigError, match="--to 2026-11-20 is before --from 2026-11-21"):
        backfill.BackfillConfig(data_root=str(tmp_path), from_date=D2, to_date=D1)
