"""What the torch-only modules share with the table contracts, without pyspark: the reserved
indices of every vocabulary and history list, and the dataclass field helper of every config.

``pipelines.model`` imports from here, not from ``pipelines.schemas``, so the model (and
``bench/gpu_check.py``) runs where torch is installed and Spark is not."""

from __future__ import annotations

from dataclasses import field
from typing import Any

# Index conventions of every vocabulary and history list (items, categories, event types).
PAD = 0  # padding
OOV = 1  # rare / unseen items and unknown categories
FIRST_INDEX = 2  # the first real entry


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with a default and the help text its flag shows (``meta``: e.g.
    ``aliases=("--old-name",)``); rules and specs in ``pipelines/`` are also step configs."""
    return field(default=default, metadata={"help": help, **meta})
