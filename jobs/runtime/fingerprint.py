"""Fingerprints: short digests of configs and file listings, to tell whether inputs changed.

A fingerprint covers file names, sizes and modification times, not contents: listing a folder
is cheap at any scale, and every cartwheel step rewrites (and so re-stamps) what it publishes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from jobs.runtime.storage import FileInfo, Storage


def digest(value: Any) -> str:
    """A 16-hex-digit SHA-256 of ``value`` as canonical JSON."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def relative(path: str, root: str | None) -> str:
    """``path`` relative to ``root`` when it lies under it (so a moved data root keeps its
    fingerprints), else ``path`` itself."""
    if root:
        base = root.rstrip("/") + "/"
        if path.startswith(base):
            return path[len(base) :]
    return path


def files_digest(files: Iterable[FileInfo], root: str | None = None) -> str:
    """Digest of (path relative to ``root``, size, mtime) for each file, in path order."""
    return digest(sorted((relative(f.path, root), f.size, f.mtime_ms) for f in files))


def paths_digest(storage: Storage, paths: Iterable[str], root: str | None = None) -> str:
    """Digest of every visible file under each path (a missing path counts as empty), with
    paths taken relative to ``root``."""
    return digest(
        {relative(p, root): files_digest(storage.list_files(p), root) for p in sorted(paths)}
    )
