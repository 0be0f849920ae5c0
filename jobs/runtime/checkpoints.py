"""Training checkpoints on a local folder, and a model rebuilt from one.

Rank 0 of the training loop writes through ``CheckpointStore`` (it satisfies
``pipelines.train.Checkpoints``); ``cartwheel train`` resumes from it and logs the best model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from pipelines.model import ModelConfig, TwoTower


class CheckpointStore:
    """Epoch checkpoints in a folder: ``epoch-NNNN.pt``, ``best.pt``, ``latest.json``,
    ``complete.json``. Writes are atomic (write then rename), so a killed job leaves the
    previous checkpoint intact and loses at most the epoch in progress."""

    def __init__(self, folder: str | os.PathLike[str], keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def _write(self, name: str, state: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        path = self._write(f"epoch-{epoch:04d}.pt", state)
        self._write_json("latest.json", {"epoch": epoch, "path": path.name})
        for old in sorted(self.folder.glob("epoch-*.pt"))[: -self.keep]:
            old.unlink()
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        return self._write("best.pt", state)

    def _write_json(self, name: str, doc: dict[str, Any]) -> None:
        path = self.folder / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)

    def latest_epoch(self) -> int | None:
        pointer = self.folder / "latest.json"
        return int(json.loads(pointer.read_text())["epoch"]) if pointer.exists() else None

    def load(self, epoch: int) -> dict[str, Any]:
        return torch.load(
            self.folder / f"epoch-{epoch:04d}.pt", map_location="cpu", weights_only=False
        )

    def best_path(self) -> Path:
        return self.folder / "best.pt"

    def mark_complete(self, summary: dict[str, Any]) -> None:
        self._write_json("complete.json", summary)

    def is_complete(self) -> bool:
        return (self.folder / "complete.json").exists()

    def has_progress(self) -> bool:
        return (self.folder / "latest.json").exists() and not self.is_complete()


def load_model(checkpoint: str | os.PathLike[str], device: str = "cpu") -> TwoTower:
    """A model rebuilt from a checkpoint (config, buffers and weights), in eval mode."""
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    config = ModelConfig(**state["model_config"])
    model = TwoTower(config, state["model"]["item_category"], state["model"]["item_log_q"])
    model.load_state_dict(state["model"])
    return model.eval()
