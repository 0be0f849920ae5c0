"""cartwheel rank end to end on the session's trained data root: candidate lists from several
generators at two cutoffs, written as files of whole lists, and a ranker fitted on them by two
Horovod workers (Gloo) over Petastorm readers, logged and registered in MLflow. Scoring and
evaluating with the ranker (what score publishes, the pairing with the ranked lists) are checked
on the nightly smoke's first night (``test_nightly.py``), which runs both."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import evaluate, rank
from jobs.runtime import layout, registry, scoring
from jobs.runtime.lists import Held, ranked_lists
from jobs.runtime.manifest import RunResult
from jobs.runtime.readers import date_window, read_catalog, read_clean_events
from jobs.runtime.storage import Storage
from pipelines import baselines as B
from pipelines import candidates as C
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import schemas as S
from pipelines.errors import ConfigError, InputError
from tests.conftest import TEMPLATE_END, copy_root

pytestmark = pytest.mark.smoke

END = dt.date.fromisoformat(TEMPLATE_END)
# The cheapest generators, untuned (tuning is evaluate's own code and has its own test).
GENERATORS = (B.BUY_AGAIN, B.POPULARITY, B.RECENT_POPULARITY)


@pytest.fixture(scope="module")
def ranked(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RunResult]:
    root = copy_root(trained_template, tmp_path_factory, "rank")
    result = rank.main(
        spark,
        rank.RankConfig(
            data_root=str(root), run_date=END, generators=GENERATORS, depth=20, fit_days=1,
            tune_generators=False, epochs=4, patience=4, lists_per_batch=64,
        ),
    )  # fmt: skip
    assert result.succeeded, result.manifest.get("error")
    return root, result


def split_files(root: Path, role: str) -> list[Path]:
    return sorted(Path(layout.ranker_lists(str(root), END, role)).glob("*.parquet"))


def read_split(root: Path, role: str) -> pd.DataFrame:
    return pd.concat(
        [pq.read_table(f).to_pandas().assign(file=f.name) for f in split_files(root, role)],
        ignore_index=True,
    )


def test_rank_writes_whole_lists_and_counts_every_row(ranked: tuple[Path, RunResult]) -> None:
    root, result = ranked
    m = result.manifest
    boundaries = json.loads(Path(layout.examples_meta(str(root), END)).read_text())["boundaries"]
    val_start = dt.date.fromisoformat(boundaries["val_start"])
    assert m["cutoffs"] == [val_start.isoformat(), (val_start - dt.timedelta(days=1)).isoformat()]
    assert m["features"] == C.feature_names(GENERATORS)
    total = 0
    for role in (rank.FIT, rank.SELECT):
        frame = read_split(root, role)
        total += len(frame)
        assert len(split_files(root, role)) == m["lists"][role]["files"] == 2  # one per worker
        assert list(pq.read_schema(split_files(root, role)[0]).names) == S.RANKER_LISTS.columns
        assert len(frame) == m["lists"][role]["rows"]
        assert frame.group_id.nunique() == m["lists"][role]["lists"]
        assert int(frame.label.sum()) == m["lists"][role]["positives"]
        # a list lives in one file, its rows next to each other (ordered by group_id)
        assert (frame.groupby("group_id").file.nunique() == 1).all()
        for _, rows in frame.groupby("file", sort=False):
            assert rows.group_id.is_monotonic_increasing
        assert frame.features.map(len).eq(len(m["features"])).all()
        # one list per user and cutoff, at most depth items from each generator
        assert (frame.groupby("group_id")[["user_id", "cutoff"]].nunique() == 1).all().all()
        assert frame.groupby("group_id").size().max() <= 20 * len(GENERATORS)
    assert m["rows_in"] == m["rows_out"] == total
    select, fit = read_split(root, rank.SELECT), read_split(root, rank.FIT)
    assert set(select.cutoff) == {val_start}
    assert set(fit.cutoff) == {val_start, val_start - dt.timedelta(days=1)}
    assert not set(select.user_id) & set(fit.user_id)  # the epoch is chosen on other users


def test_labels_are_the_users_targets_after_the_cutoff(
    spark: SparkSession, ranked: tuple[Path, RunResult]
) -> None:
    root, _ = ranked
    select = read_split(root, rank.SELECT)
    val = (
        spark.read.parquet(layout.examples_split(str(root), END, "val"))
        .select("user_id", F.col("target_item_id").alias("item_id"))
        .distinct()
        .toPandas()
    )
    targets = val[val.user_id.isin(set(select.user_id))]
    assert set(select.user_id) == set(val.user_id) & set(select.user_id)
    positives = set(map(tuple, select.loc[select.label == 1.0, ["user_id", "item_id"]].values))
    proposed = set(map(tuple, select[["user_id", "item_id"]].values))
    assert positives == set(map(tuple, targets.values)) & proposed
    relevant = targets.groupby("user_id").size()
    assert (select.groupby("user_id").relevant.first() == relevant.reindex(
        select.groupby("user_id").relevant.first().index)).all()  # fmt: skip


def test_the_registered_ranker_is_the_best_epoch_and_scores_raw_features(
    ranked: tuple[Path, RunResult],
) -> None:
    root, result = ranked
    m = result.manifest
    recalls = [e["selection_recall_at_20"] for e in m["epochs"]]
    assert m["best_selection_recall_at_20"] == max(recalls)
    assert m["fitted_on"]["rows"] == m["lists"]["fit"]["rows"]
    # through cartwheel: a bare mlflow.set_tracking_uri reads as the user's own choice and
    # steered every later test in this process to this store (test_train's tests, say)
    registry.configure_tracking(str(root))
    model = mlflow.pyfunc.load_model(f"models:/{m['registered_model']}@candidate")
    ranker = model.get_raw_model()
    assert ranker.feature_names == m["features"]
    assert ranker.info["generators"] == list(GENERATORS)
    select = read_split(root, rank.SELECT)
    select["score"] = model.predict(select[["features"]])
    # the selection recall, recomputed from the registered ranker's scores
    top = (
        select.sort_values(["group_id", "score"], ascending=[True, False])
        .groupby("group_id")
        .head(20)
    )
    per_list = top.groupby("group_id").label.sum() / select.groupby("group_id").relevant.first()
    assert float(per_list.mean()) == pytest.approx(m["best_selection_recall_at_20"], rel=1e-4)
    with pytest.raises(ValueError, match="the ranker was fitted on"):
        model.predict(pd.DataFrame({"features": [np.zeros(3, dtype=np.float32)]}))


def test_ranked_lists_score_the_candidates_the_ranker_was_fitted_on(
    spark: SparkSession, ranked: tuple[Path, RunResult]
) -> None:
    """At the val start, for the selection users, the evaluation path (generators with the
    ranker's settings, features, the pandas UDF) ranks exactly the selection split's rows."""
    root, result = ranked
    storage, r = Storage(spark), str(root)
    registry.configure_tracking(r)
    ranker = registry.resolve_ranker("models:/cartwheel-ranker@candidate")
    model = registry.resolve("models:/cartwheel-two-tower@candidate")
    catalog = read_catalog(spark, storage, r)
    mask, _ = scoring.sellable_candidates(spark, model, catalog)
    val_start = dt.date.fromisoformat(result.manifest["cutoffs"][0])
    before = read_clean_events(spark, storage, r, date_window(END, 10)).where(
        F.col("event_time") < L.day_start(val_start)
    )
    select = read_split(root, rank.SELECT)
    users = spark.createDataFrame(pd.DataFrame({"user_id": sorted(set(select.user_id))}))
    exclusions = E.exclusions_of(before, users, result.manifest["config"]["exclude"])
    items = scoring.candidate_items(spark, model, mask)
    f = E.EvalFrames(before, users, items, exclusions, 20, val_start, B.BaselineSettings())
    # evaluate's settings: buy-again's as the ranker's, recent popularity's not
    built = ranker.model.info["generator_settings"]
    chosen = {g: B.BaselineSettings(**built[g]) for g in GENERATORS}
    chosen[B.RECENT_POPULARITY] = dataclasses.replace(
        chosen[B.RECENT_POPULARITY], recent_days=chosen[B.RECENT_POPULARITY].recent_days + 1
    )
    held = Held("test")
    try:
        lists, reused = ranked_lists(ranker.model, f, catalog, held, chosen)
        got = lists.toPandas()
        # a baseline taken from the ranker's generator lists is the one evaluate would build
        assert set(reused) == {B.POPULARITY, B.BUY_AGAIN}
        own = dataclasses.replace(f, settings=chosen[B.BUY_AGAIN])
        again = E.BASELINES[B.BUY_AGAIN](own, E.popularity_lists(f))
        cols = ["user_id", "rank", "item_id"]
        assert sorted(map(tuple, reused[B.BUY_AGAIN].select(cols).collect())) == sorted(
            map(tuple, again.select(cols).collect())
        )
    finally:
        held.release()
    assert set(got.method) == {E.RANKED} and got.groupby("user_id")["rank"].max().max() <= 20
    select["score"] = ranker.model.predict(select[["features"]])
    top = select.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True])
    top["rank"] = top.groupby("user_id").cumcount() + 1
    expected = top[top["rank"] <= 20][["user_id", "item_id", "rank"]]
    assert got.sort_values(["user_id", "rank"])[["user_id", "item_id", "rank"]].values.tolist() == (
        expected.sort_values(["user_id", "rank"]).values.tolist()
    )


def test_a_ranker_fitted_on_other_features_is_refused(
    spark: SparkSession, ranked: tuple[Path, RunResult]
) -> None:
    root, _ = ranked
    registry.configure_tracking(str(root))
    resolved = registry.resolve_ranker("models:/cartwheel-ranker@candidate")
    model = copy.copy(resolved.model)
    model.feature_names = [*model.feature_names[:-1], "a_feature_from_another_version"]
    catalog = read_catalog(spark, Storage(spark), str(root))
    with pytest.raises(InputError, match="run `cartwheel rank` again"):
        ranked_lists(model, None, catalog, Held("test"))  # type: ignore[arg-type]
    # as the serving ranker beside tonight's, it is left out of the comparison (evaluate warns)
    serving = dataclasses.replace(resolved, model=model)
    left_out = evaluate.champion_ranker_lists(serving, None, catalog, Held("test"))  # type: ignore[arg-type]
    assert left_out is None
    with pytest.raises(
        InputError, match=r"models:/no-such-ranker@candidate does not exist .*rank` first"
    ):
        registry.resolve_ranker("models:/no-such-ranker@candidate")


def test_reuse_lists_fits_again_on_the_published_lists_without_rebuilding_them(
    spark: SparkSession, ranked: tuple[Path, RunResult]
) -> None:
    root, first = ranked
    folder = Path(layout.ranker_lists(str(root), END))
    written = {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}
    config = rank.RankConfig(
        data_root=str(root), run_date=END, generators=GENERATORS, epochs=2, patience=2,
        lists_per_batch=16, kind="dcn", reuse_lists=True, alias="reused",
    )  # fmt: skip
    result = rank.main(spark, config)
    assert result.succeeded, result.manifest.get("error")
    m = result.manifest
    assert m["reused_lists"] and m["inputs"] == [layout.ranker_lists(str(root), END)]
    # the same lists (untouched files), cutoffs and generator settings as the run that built them
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")} == written
    for key in ("lists", "cutoffs", "generator_settings", "features"):
        assert m[key] == first.manifest[key], key
    assert len(m["epochs"]) <= 2 and m["fitted_on"]["rows"] == m["lists"]["fit"]["rows"]
    registry.configure_tracking(str(root))
    ranker = registry.resolve_ranker("models:/cartwheel-ranker@reused")
    assert ranker.version == m["model_version"] != first.manifest["model_version"]
    assert ranker.model.info["depth"] == 20  # the lists' depth, not this config's default
    with pytest.raises(InputError, match="were built for the generators buy_again, popularity"):
        rank.main(spark, dataclasses.replace(config, generators=(B.POPULARITY,)))


def test_a_recent_nights_generator_tuning_is_reused_instead_of_tuning_again(
    spark: SparkSession, ranked: tuple[Path, RunResult]
) -> None:
    """--retune-days: the night before chose buy-again's setting on its val split two days ago;
    tonight's lists take that setting and its record, with no tuning lists built (the val
    scores are the earlier ones, which tuning on this root would not reproduce)."""
    root, _ = ranked
    storage, r = Storage(spark), str(root)
    config = rank.RankConfig(
        data_root=r, run_date=END, generators=(B.BUY_AGAIN, B.POPULARITY), depth=20,
        fit_days=0, retune_days=3,
    )  # fmt: skip
    config = scoring.with_resolved_exclude(storage, config)
    tuning = config.tuning()
    grid, night_before = E.GRIDS[B.BUY_AGAIN], END - dt.timedelta(days=1)
    choice = {
        "chosen": grid[2],
        "tried": [
            {**p, tuning.rules.key: s} for p, s in zip(grid, (0.1, 0.2, 0.3, 0.05), strict=True)
        ],
        "chosen_for": (END - dt.timedelta(days=2)).isoformat(),
    }
    path = Path(layout.manifest(r, night_before, "rank"))
    made = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "status": "succeeded", "config": {"exclude": config.exclude},
        "tuning_defaults": dataclasses.asdict(tuning.settings_without_blocks()),
        "tuning": {"metric": tuning.rules.key, "methods": {B.BUY_AGAIN: choice}},
    }))  # fmt: skip
    registry.configure_tracking(r)
    model = registry.resolve(config.model_uri)
    catalog = read_catalog(spark, storage, r)
    mask, _ = scoring.sellable_candidates(spark, model, catalog)
    held = Held("test")
    try:
        items = held.keep(scoring.candidate_items(spark, model, mask))
        b = evaluate.read_boundaries(storage, r, END)
        built = rank.build_lists(spark, storage, config, b, catalog, items, held)
        assert built["stats"][rank.FIT]["lists"] >= 2
    finally:
        held.release()
        path.unlink()
        if made:
            path.parent.rmdir()
    assert built["tuning"]["reused_from"] == night_before.isoformat()
    assert built["tuning"]["methods"] == {
        B.BUY_AGAIN: {**choice, "from": f"cartwheel rank of {night_before}"}
    }
    assert (
        built["settings"][B.BUY_AGAIN]["buy_again_half_life_days"]
        == (grid[2]["buy_again_half_life_days"])
    )


def test_too_few_lists_for_the_workers_stop_the_step_before_writing(
    spark: SparkSession, ranked: tuple[Path, RunResult], tmp_path: Path
) -> None:
    root, _ = ranked
    before = sorted(p.name for p in Path(layout.ranker_lists(str(root), END, rank.FIT)).iterdir())
    config = rank.RankConfig(
        data_root=str(root), run_date=END, generators=(B.POPULARITY,), depth=5, fit_days=0,
        tune_generators=False, num_proc=5_000,
    )  # fmt: skip
    with pytest.raises(InputError, match=r"fit split has \d+ lists, fewer than the 5000 workers"):
        rank.main(spark, config)
    manifest = json.loads(Path(layout.manifest(str(root), END, "rank")).read_text())
    assert manifest["status"] == "failed" and "5000 workers" in manifest["error"]
    # the lists the earlier run published are untouched
    assert (
        sorted(p.name for p in Path(layout.ranker_lists(str(root), END, rank.FIT)).iterdir())
        == before
    )


def test_reuse_lists_before_any_rank_run_is_refused_by_name(
    spark: SparkSession, trained_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(trained_template, tmp_path_factory, "no-lists")
    config = rank.RankConfig(
        data_root=str(root), run_date=END, generators=GENERATORS, reuse_lists=True
    )
    with pytest.raises(InputError, match=r"_lists.json is missing\): run `cartwheel rank` without"):
        rank.main(spark, config)
    manifest = json.loads(Path(layout.manifest(str(root), END, "rank")).read_text())
    assert manifest["status"] == "failed" and "--reuse-lists" in manifest["error"]
    assert not Path(layout.ranker_lists(str(root), END)).exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"generators": ("model", B.ITEM_KNN)}, "the two-tower is not a generator"),
        ({"generators": ()}, "give one or more of"),
        ({"selection_share": 1.0}, "selection_share=1.0"),
        ({"kind": "gbdt"}, "invalid ranker kind 'gbdt'"),
        ({"lists_per_batch": 0}, "lists_per_batch=0"),
    ],
)
def test_bad_rank_configs_are_named(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        rank.RankConfig(data_root=str(tmp_path), run_date=END, **values)
