"""Config from flags and YAML: types, precedence, and errors that name the culprit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs import cli
from jobs.clean import CleanConfig
from jobs.evaluate import EvaluateConfig
from jobs.generate import GenerateConfig
from jobs.night.options import NightlyConfig
from jobs.runtime.config import parse_config
from jobs.score import ScoreConfig
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit


def parse(argv: list[str]) -> CleanConfig:
    return parse_config(CleanConfig, argv, prog="cartwheel clean", description="")


def test_flags_become_typed_values(tmp_path: Path) -> None:
    cfg = parse(
        ["--data-root", str(tmp_path), "--run-date", "2026-11-20", "--days", "3", "--allow-missing-days",
         "--max-price", "50.5", "--ignored-event-types", "cancel,void", "--event-type-synonyms", "tap=click"]
    )  # fmt: skip
    assert (cfg.run_date, cfg.days, cfg.allow_missing_days, cfg.max_price) == (
        dt.date(2026, 11, 20),
        3,
        True,
        50.5,
    )
    assert cfg.ignored_event_types == ("cancel", "void")
    assert cfg.event_type_synonyms == {"tap": "click"}
    assert cfg.data_root == str(tmp_path)


def test_relative_data_root_is_made_absolute() -> None:
    cfg = parse(["--data-root", "some/where", "--run-date", "2026-11-20"])
    assert Path(cfg.data_root).is_absolute() and cfg.data_root.endswith("some/where")


def test_cluster_uri_data_root_is_kept() -> None:
    cfg = parse(["--data-root", "s3a://bucket/cw/", "--run-date", "2026-11-20"])
    assert cfg.data_root == "s3a://bucket/cw"


def test_yaml_sets_values_and_flags_override_it(tmp_path: Path) -> None:
    conf = tmp_path / "clean.yaml"
    conf.write_text(
        "data-root: /data/cw\nrun_date: 2026-11-19\ndays: 5\nbot_max_events_per_minute: 0\n"
    )
    cfg = parse(["--config", str(conf), "--days", "2"])
    assert (cfg.data_root, cfg.run_date, cfg.days, cfg.bot_max_events_per_minute) == (
        "/data/cw",
        dt.date(2026, 11, 19),
        2,
        0,
    )
    assert cfg.to_record()["config"] == str(conf)


def test_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("data_root: /x\nrun_date: 2026-11-19\nbot_rate: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key\(s\) bot_rate"):
        parse(["--config", str(conf)])


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        parse(["--config", str(tmp_path / "nope.yaml")])


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    conf = tmp_path / "list.yaml"
    conf.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse(["--config", str(conf)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "three"], r"days=three: must be a valid integer"),
        (["--days", "0"], r"days=0"),
        (["--max-price", "-5"], r"max_price=-5.0"),
        (["--event-type-synonyms", "tap"], r"--event-type-synonyms: expected"),
    ],
)
def test_invalid_values_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(["--data-root", "/x", "--run-date", "2026-11-20", *argv])


def test_invalid_date_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"--run-date: expected a date YYYY-MM-DD, got '2026-13-01'"
    ):
        parse(["--data-root", "/x", "--run-date", "2026-13-01"])


def test_missing_required_flags_are_named() -> None:
    with pytest.raises(ConfigError, match=r"--data-root, --run-date"):
        parse([])


def test_generate_config_validates_the_generator_spec() -> None:
    with pytest.raises(ConfigError, match="output_format"):
        parse_config(
            GenerateConfig,
            ["--data-root", "/x", "--end-date", "2026-11-20", "--output-format", "xml"],
            prog="g",
            description="",
        )


@pytest.mark.parametrize("step", sorted(cli.STEPS))
def test_every_step_has_help(step: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([step, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"cartwheel {step}" in out and "--data-root" in out


def test_top_level_help_lists_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(step in out for step in cli.STEPS)


def test_unknown_step_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fly"]) == 2
    assert "unknown step 'fly'" in capsys.readouterr().err


def test_bad_config_exits_2_before_spark_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["clean", "--data-root", "/x", "--run-date", "2026-11-20", "--days", "-1"]) == 2
    assert "invalid config value days=-1" in capsys.readouterr().err


def test_relative_run_dates_are_utc_dates() -> None:
    import datetime as dt

    from jobs.runtime.config import parse_date

    today = dt.datetime.now(dt.UTC).date()
    assert parse_date("yesterday", "--run-date") == today - dt.timedelta(days=1)
    assert parse_date(" Today ", "--run-date") == today


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("champion_tolerance", 1.0, r"champion_tolerance=1.0: must be < 1"),
        ("gate_min_ratio", -1.0, r"gate_min_ratio=-1.0: must be >= 0"),
    ],
)
def test_night_options_are_checked_before_spark_starts(
    tmp_path: Path, flag: str, value: float, message: str
) -> None:
    # `nightly --champion-tolerance 1.0` used to run every step for minutes, then fail in
    # evaluate; the night's options are now checked when its config is parsed.
    from jobs import backfill, nightly

    with pytest.raises(ConfigError, match=message):
        nightly.NightlyConfig(
            data_root=str(tmp_path), run_date=dt.date(2026, 11, 20), **{flag: value}
        )
    with pytest.raises(ConfigError, match=message):
        backfill.BackfillConfig(
            data_root=str(tmp_path), from_date=dt.date(2026, 11, 20),
            to_date=dt.date(2026, 11, 21), **{flag: value},
        )  # fmt: skip


@pytest.mark.parametrize("config", [ScoreConfig, EvaluateConfig, NightlyConfig])
def test_precision_is_float32_or_bfloat16_and_anything_else_is_named(config: type) -> None:
    flags = ["--data-root", "/x", "--run-date", "2026-11-20"]
    half = parse_config(config, [*flags, "--precision", "bfloat16"], prog="p", description="")
    assert half.precision == "bfloat16"
    assert parse_config(config, flags, prog="p", description="").precision == "float32"
    with pytest.raises(ConfigError, match=r"precision=int8: one of float32 or bfloat16"):
        parse_config(config, [*flags, "--precision", "int8"], prog="p", description="")
