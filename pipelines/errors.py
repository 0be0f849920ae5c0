"""Errors that stop a step with a message naming what is wrong (a file, a path, a value)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CartwheelError(Exception):
    """Base class: a step cannot go on; the message says why and names the culprit."""

    exit_code = 1  # what `cartwheel <step>` exits with


class ConfigError(CartwheelError):
    """A config value or flag is invalid; raised before Spark starts."""

    exit_code = 2


class InputError(CartwheelError):
    """An input path, file or table is missing, empty, corrupt or of the wrong shape."""


class QualityGateError(CartwheelError):
    """A model did not reach the quality a run requires before it publishes anything."""


def require_at_least_1(settings: Any, names: Iterable[str]) -> None:
    """ConfigError naming the first of ``names`` whose value on ``settings`` is below 1."""
    for name in names:
        value = getattr(settings, name)
        if value < 1:
            raise ConfigError(f"invalid config value {name}={value!r}: must be >= 1")
