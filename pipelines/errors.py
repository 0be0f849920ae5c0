"""Errors that stop a step with a message naming what is wrong (a file, a path, a value)."""

from __future__ import annotations


class CartwheelError(Exception):
    """Base class: a step cannot go on; the message says why and names the culprit."""


class ConfigError(CartwheelError):
    """A config value or flag is invalid; raised before Spark starts."""


class InputError(CartwheelError):
    """An input path, file or table is missing, empty, corrupt or of the wrong shape."""
