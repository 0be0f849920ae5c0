"""The night's plan: the skip and redo rules, fingerprints, the step registry and its sections."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import clean, nightly
from jobs.night.options import step_sections
from jobs.night.plan import Plan
from jobs.night.steps import BY_NAME, STEP_NAMES, STEPS, build_config
from jobs.runtime.manifest import code_version
from jobs.runtime.storage import Storage
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 20)


def finished_night(root: Path, version: str) -> None:
    runs = root / "_runs" / DAY.isoformat()
    runs.mkdir(parents=True)
    step = {"status": "succeeded", "fingerprint": "f1", "code_version": version}
    (runs / "nightly.json").write_text(json.dumps({"steps": {"label": step}}))
    (runs / "label.json").write_text(json.dumps({"status": "succeeded", "finished_at": "t"}))


@pytest.mark.parametrize(
    ("recorded", "keep", "skipped"),
    [
        ("same", False, True),  # same version, same fingerprint: kept
        ("cartwheel 0.0.1+gold", False, False),  # an upgrade redoes the step
        ("cartwheel 0.0.1+gold", True, True),  # unless the user keeps results across versions
        (None, False, False),  # a state written before versions were recorded
    ],
)
def test_a_new_code_version_redoes_a_finished_step_unless_kept(
    spark: SparkSession, tmp_path: Path, recorded: str | None, keep: bool, skipped: bool
) -> None:
    finished_night(tmp_path, code_version() if recorded == "same" else recorded)
    config = nightly.NightlyConfig(
        data_root=str(tmp_path), run_date=DAY, keep_results_across_versions=keep
    )
    night = nightly.Night(spark, config)
    assert (night.plan.skippable("label", "f1") is not None) is skipped
    assert night.plan.skippable("label", "other fingerprint") is None


def plan(tmp_path: Path, **rules: object) -> Plan:
    return Plan.load(Storage(None), str(tmp_path), DAY, **rules)  # type: ignore[arg-type]


def test_force_and_from_step_redo_exactly_the_steps_they_name(tmp_path: Path) -> None:
    assert [s for s in STEP_NAMES if plan(tmp_path).redo(s)] == []
    assert [s for s in STEP_NAMES if plan(tmp_path, force=True).redo(s)] == list(STEP_NAMES)
    later = [s for s in STEP_NAMES if plan(tmp_path, from_step="score").redo(s)]
    assert later == ["score", "evaluate", "publish"]


def test_a_fingerprint_ignores_how_and_where_but_not_what(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.json").write_text("{}")
    p = plan(tmp_path)
    base = clean.CleanConfig(data_root=str(tmp_path), run_date=DAY, days=3)
    same = clean.CleanConfig(data_root=str(tmp_path), run_date=DAY, days=3, incremental=True)
    other = clean.CleanConfig(data_root=str(tmp_path), run_date=DAY, days=4)
    inputs = [str(tmp_path / "raw")]
    assert p.fingerprint(base, inputs, {}) == p.fingerprint(same, inputs, {})
    assert p.fingerprint(base, inputs, {}) != p.fingerprint(other, inputs, {})
    assert p.fingerprint(base, inputs, {}) != p.fingerprint(base, inputs, {"model": "m/2"})
    before = p.fingerprint(base, inputs, {})
    (tmp_path / "raw" / "b.json").write_text("{}")  # a new input file
    assert p.fingerprint(base, inputs, {}) != before


def test_every_step_of_the_registry_builds_its_config_before_anything_runs(
    spark: SparkSession, tmp_path: Path
) -> None:
    config = nightly.NightlyConfig(data_root=str(tmp_path), run_date=DAY, k=7, num_proc=3)
    night = nightly.Night(spark, config)
    built = {s.name: build_config(s, night, check=True) for s in STEPS}
    assert list(built) == list(STEP_NAMES) and built["publish"] is None
    assert built["score"].k == 7 and built["shard"].workers == 3  # type: ignore[union-attr]
    assert built["clean"].incremental and built["evaluate"].model_uri == "models:/check/1"  # type: ignore[union-attr]


def test_the_second_stage_is_the_default_and_gates_the_ranked_lists_against_the_best_baseline(
    spark: SparkSession, tmp_path: Path
) -> None:
    plain = nightly.Night(
        spark, nightly.NightlyConfig(data_root=str(tmp_path), run_date=DAY, second_stage=False)
    )
    assert [s.name for s in plain.steps] == [n for n in STEP_NAMES if n != "rank"]
    assert build_config(BY_NAME["score"], plain, check=True).ranker_uri is None  # type: ignore[union-attr]
    assert build_config(BY_NAME["evaluate"], plain, check=True).gate_baseline == "popularity"  # type: ignore[union-attr]
    config = nightly.NightlyConfig(data_root=str(tmp_path), run_date=DAY, num_proc=3)
    night = nightly.Night(spark, config)
    names = [s.name for s in night.steps]
    assert names == list(STEP_NAMES) and names.index("rank") == names.index("train") + 1
    ranked = build_config(BY_NAME["rank"], night, check=True)
    assert (ranked.model_uri, ranked.num_proc) == ("models:/check/1", 3)  # type: ignore[union-attr]
    assert build_config(BY_NAME["score"], night, check=True).ranker_uri == "models:/check/1"  # type: ignore[union-attr]
    evaluated = build_config(BY_NAME["evaluate"], night, check=True)
    assert evaluated.ranker_uri == "models:/check/1" and evaluated.gate_baseline == "best"  # type: ignore[union-attr]
    assert evaluated.rules.published == "ranked"  # type: ignore[union-attr]


def test_a_step_config_section_overrides_what_the_night_derives(
    spark: SparkSession, tmp_path: Path
) -> None:
    sections = tmp_path / "steps.yaml"
    sections.write_text("score:\n  k: 11\nshard:\n  row-group-mb: 8\n")
    config = nightly.NightlyConfig(
        data_root=str(tmp_path), run_date=DAY, k=7, step_config=str(sections)
    )
    night = nightly.Night(spark, config)
    assert build_config(BY_NAME["score"], night, check=True).k == 11  # type: ignore[union-attr]
    assert build_config(BY_NAME["shard"], night, check=True).row_group_mb == 8  # type: ignore[union-attr]
    sections.write_text("score:\n  run_date: 2020-01-01\n")
    with pytest.raises(ConfigError, match=r"section score sets run_date, which the night sets"):
        step_sections(str(sections))
    sections.write_text("scoring:\n  k: 3\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) scoring"):
        step_sections(str(sections))


def test_the_sessions_profile_labels_in_session_histories_and_gates_on_next_clicks(
    spark: SparkSession, tmp_path: Path
) -> None:
    shop = nightly.Night(spark, nightly.NightlyConfig(data_root=str(tmp_path), run_date=DAY))
    assert build_config(BY_NAME["label"], shop, check=True).history_cutoff == "day"  # type: ignore[union-attr]
    assert not build_config(BY_NAME["evaluate"], shop, check=True).next_click  # type: ignore[union-attr]
    sections = tmp_path / "steps.yaml"
    sections.write_text("evaluate:\n  gate-min-warm-users: 50\n")
    config = nightly.NightlyConfig(
        data_root=str(tmp_path), run_date=DAY, profile="sessions", step_config=str(sections)
    )
    night = nightly.Night(spark, config)
    assert build_config(BY_NAME["label"], night, check=True).history_cutoff == "event"  # type: ignore[union-attr]
    evaluated = build_config(BY_NAME["evaluate"], night, check=True)
    assert evaluated.next_click and evaluated.gate_on == "next-click"  # type: ignore[union-attr]
    assert evaluated.gate_min_warm_users == 50  # type: ignore[union-attr]  # the section still wins
    with pytest.raises(ConfigError, match=r"profile='clicks': one of shop, sessions"):
        nightly.NightlyConfig(data_root=str(tmp_path), run_date=DAY, profile="clicks")
