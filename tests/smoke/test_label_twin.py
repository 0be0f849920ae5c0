"""The label step against its DuckDB twin (``bench/vs_duckdb.py``): an independent SQL
implementation of the same rules must produce the same examples, row for row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bench.vs_duckdb import compare_examples, label_rules, twin_label
from jobs import label
from tests.conftest import TEMPLATE_END, copy_root

pytestmark = pytest.mark.smoke

END = dt.date.fromisoformat(TEMPLATE_END)


@pytest.fixture
def root(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy per test: the second test relabels its root."""
    return copy_root(trained_template, tmp_path_factory, "label-twin")


def assert_twin_agrees(root: Path, config: label.LabelConfig, out: Path) -> None:
    per_split = twin_label(root, END, label_rules(config), out)
    diff = compare_examples(root / "examples" / f"dt={END}", out / "examples")
    assert diff["only_cartwheel"] == diff["only_twin"] == 0, diff
    assert diff["cartwheel_rows"] == diff["twin_rows"] == sum(per_split.values()) > 0


def test_the_template_examples_equal_the_twins(root: Path, tmp_path: Path) -> None:
    # the template was labelled with the defaults over its 8 days
    assert_twin_agrees(
        root, label.LabelConfig(data_root=str(root), run_date=END, lookback_days=8), tmp_path
    )


def test_event_cutoff_caps_and_empty_histories_equal_the_twins(
    spark: SparkSession, root: Path, tmp_path: Path
) -> None:
    config = label.LabelConfig(
        data_root=str(root),
        run_date=END,
        lookback_days=8,
        history_cutoff="event",
        history_length=5,
        min_history=0,  # a user's first item event is a target with an empty history
        max_targets_per_user=3,
    )
    result = label.main(spark, config)
    assert result.succeeded, result.manifest.get("error")
    assert result.manifest["rows_filtered"]["user_target_cap"] > 0
    assert_twin_agrees(root, config, tmp_path)
