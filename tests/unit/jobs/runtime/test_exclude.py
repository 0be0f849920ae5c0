"""``--exclude auto``: the rule the ingested source suits, written by ingest in raw/_source.json."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import evaluate, score
from jobs.runtime import layout
from jobs.runtime.scoring import resolve_exclude, with_resolved_exclude
from jobs.runtime.storage import Storage
from pipelines.errors import ConfigError, InputError

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 21)


def test_auto_is_purchased_without_a_source_file(spark: SparkSession, tmp_path: Path) -> None:
    assert resolve_exclude(Storage(spark), str(tmp_path), "auto") == "purchased"


def test_auto_takes_the_rule_the_ingested_source_names(spark: SparkSession, tmp_path: Path) -> None:
    source = Path(layout.raw_source(str(tmp_path)))
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps({"format": "movielens", "exclude": "interacted"}))
    storage = Storage(spark)
    assert resolve_exclude(storage, str(tmp_path), "auto") == "interacted"
    assert resolve_exclude(storage, str(tmp_path), "none") == "none"  # a flag wins
    config = evaluate.EvaluateConfig(data_root=str(tmp_path), run_date=DAY)
    assert config.exclude == "auto"
    resolved = with_resolved_exclude(storage, config)
    assert resolved.exclude == "interacted" and resolved.to_record()["exclude"] == "interacted"
    source.write_text(json.dumps({"exclude": "everything"}))
    with pytest.raises(InputError, match=r"_source.json: exclude='everything' is not a rule"):
        resolve_exclude(storage, str(tmp_path), "auto")


def test_an_unknown_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"exclude=bought: .*purchased, interacted, none or auto"):
        score.ScoreConfig(data_root="/x", run_date=DAY, exclude="bought")
