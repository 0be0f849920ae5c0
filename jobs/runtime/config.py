"""Typed, frozen per-step config built from CLI flags and an optional YAML file.

Every step's config is a frozen, keyword-only pydantic dataclass (``@step_config``), declared
once: its fields become ``--kebab-case`` flags (help text from ``opt(help=...)``) and YAML keys
(snake or kebab case), and pydantic converts and checks every value, including the bounds
declared in the field's type (``AtLeast1``, ``NonNegative``, ``Positive``, ``Fraction``).
Precedence: field defaults < ``--config FILE.yaml`` < explicit flags. Everything is validated
before Spark starts; any problem raises ``ConfigError`` naming the flag, key or file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml
from pydantic import Field

from pipelines.errors import ConfigError

C = TypeVar("C", bound="StepConfig")
T = TypeVar("T")

# Bounds declared in a field's type, checked by pydantic wherever a config is built.
AtLeast1 = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Tolerance = Annotated[float, Field(ge=0, lt=1)]

_PYDANTIC = pydantic.ConfigDict(coerce_numbers_to_str=True, arbitrary_types_allowed=True)


def describe_errors(error: pydantic.ValidationError) -> str:
    """``invalid config value name=value: reason`` for each problem pydantic found."""
    words = (
        ("Input should be", "must be"), ("Value error, ", ""),
        ("greater than or equal to", ">="), ("less than or equal to", "<="),
        ("greater than", ">"), ("less than", "<"),
    )  # fmt: skip
    parts = []
    for e in error.errors():
        name = ".".join(str(x) for x in e["loc"]) or "config"
        reason = e["msg"]
        for a, b in words:
            reason = reason.replace(a, b)
        parts.append(f"invalid config value {name}={e.get('input')}: {reason}")
    return "; ".join(parts)


def opt(
    *, default: Any = dataclasses.MISSING, help: str = "", aliases: tuple[str, ...] = (), **kw: Any
) -> Any:
    """A config field with help text (and extra flag names, e.g. ``("--from",)``);
    ``default`` may be omitted for required fields."""
    meta = {"help": help, "aliases": aliases}
    if isinstance(default, dict | list):
        frozen = default
        return dataclasses.field(default_factory=lambda: type(frozen)(frozen), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


@typing.dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(opt,))
def step_config(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, keyword-only pydantic dataclass whose bad values raise
    ``ConfigError`` (not pydantic's ``ValidationError``), whoever builds it."""
    built = pydantic.dataclasses.dataclass(frozen=True, kw_only=True, config=_PYDANTIC)(cls)
    init: Callable[..., None] = built.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise ConfigError(describe_errors(exc)) from None

    setattr(built, "__init__", __init__)  # noqa: B010 (a method, replaced on the class)
    return built  # type: ignore[return-value]


def parse_date(value: Any, name: str) -> dt.date:
    """A YYYY-MM-DD string (or date) as a date; ``today`` and ``yesterday`` are UTC dates (for
    schedulers that cannot compute a date); ConfigError naming ``name`` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    relative = {"today": 0, "yesterday": 1}.get(str(value).strip().lower())
    if relative is not None:
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=relative)
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a date YYYY-MM-DD, got {value!r}") from None


def normalise_uri(path: str) -> str:
    """An absolute URI for a data root: Hadoop URIs pass through, local paths become absolute."""
    path = path.strip()
    if "://" in path or path.startswith(("dbfs:", "file:")):
        return path.rstrip("/")
    return os.path.abspath(os.path.expanduser(path))


@step_config
class StepConfig:
    """Flags every step shares."""

    data_root: str = opt(help="root folder or Hadoop URI (s3a://, abfss://, dbfs:/) of all data")
    config: str | None = opt(default=None, help="YAML file of config values (flags override it)")
    filter_warn_share: Fraction = opt(
        default=0.5,
        help="warn (log, manifest, night report) when one reason quarantines or filters more "
        "than this share of the step's input rows; 1: never",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for an invalid value; subclasses extend and call super()."""
        if not self.data_root:
            raise ConfigError("data_root: must not be empty")

    @property
    def manifest_date(self) -> dt.date:
        """The date whose ``_runs/<date>/`` folder holds this step's manifest."""
        raise NotImplementedError

    def to_record(self) -> dict[str, Any]:
        """The whole config as JSON-ready values, for manifests and MLflow."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


@step_config
class DatedStepConfig(StepConfig):
    """Flags of a step that runs for one ``--run-date``."""

    run_date: dt.date = opt(help="the run date, YYYY-MM-DD")

    @property
    def manifest_date(self) -> dt.date:
        return self.run_date


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# -- conversion ----------------------------------------------------------------------------------


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _prepare(value: Any, tp: Any, name: str) -> Any:
    """A flag's or YAML value in the form pydantic validates: ``a,b`` lists and ``k=v,...``
    maps split, ``today``/``yesterday`` dates resolved, ``1_000`` integers joined. Types and
    bounds are then pydantic's to check."""
    base, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required")
    origin = typing.get_origin(base)
    if base is dt.date:
        return parse_date(value, name)
    if not isinstance(value, str):
        return value
    if base is int:
        return value.replace("_", "")
    if origin is tuple:
        (elem_tp, *_rest) = typing.get_args(base)
        return [_prepare(v.strip(), elem_tp, name) for v in value.split(",") if v.strip()]
    if origin in (dict, Mapping) or base in (dict, Mapping):
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{name}: expected K=V,..., got {value!r}")
        return {k.strip(): v.strip() for k, v in pairs}
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(cls: type[StepConfig], prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one flag per config field; defaults come from the dataclass."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        base, _ = _strip_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            help_text += f" (default: {_jsonable(f.default)})"
        elif f.default_factory is not dataclasses.MISSING:
            help_text += f" (default: {_jsonable(f.default_factory())})"
        else:
            help_text += " (required)"
        help_text = help_text.replace("%", "%%")
        flags = [_flag(f.name), *f.metadata.get("aliases", ())]
        if base is bool:
            parser.add_argument(
                *flags, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            metavar = {int: "N", float: "X", dt.date: "YYYY-MM-DD"}.get(base, "VALUE")
            if typing.get_origin(base) is tuple:
                metavar = "A,B,..."
            elif typing.get_origin(base) in (dict, Mapping):
                metavar = "K=V,..."
            parser.add_argument(*flags, dest=f.name, metavar=metavar, help=help_text)
    return parser


def load_yaml(path: str) -> dict[str, Any]:
    """The mapping in a YAML config file; ConfigError naming the file if missing or not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of config keys, not {type(data).__name__}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def config_from_values(cls: type[C], values: Mapping[str, Any], *, source: str = "config") -> C:
    """Build and validate ``cls`` from raw values (strings or YAML scalars)."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = _prepare(value, hints[name], _flag(name))
    missing = [
        _flag(f.name)
        for f in known.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"missing required value(s): {', '.join(missing)} (as flags or in the --config file)"
        )
    if kwargs.get("data_root"):
        kwargs["data_root"] = normalise_uri(kwargs["data_root"])
    return cls(**kwargs)


def parse_config(cls: type[C], argv: Sequence[str] | None, *, prog: str, description: str) -> C:
    """Parse flags (and ``--config FILE``) into a validated ``cls``; ConfigError on any problem."""
    parser = build_parser(cls, prog, description)
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    if args.get("config"):
        values.update(load_yaml(args["config"]))
        values.pop("config", None)
    values.update(args)
    return config_from_values(cls, values, source=str(args.get("config") or "flags"))
