"""Errors that stop a step with a message naming what is wrong (a file, a path, a value)."""

from __future__ import annotations


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
