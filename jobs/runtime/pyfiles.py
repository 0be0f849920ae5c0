"""Build the zip that ``spark-submit --py-files`` ships to a cluster: cartwheel's packages
(jobs, pipelines, udfs) and their data files, without caches.

``python -m jobs.runtime.pyfiles DEST_DIR`` writes ``DEST_DIR/cartwheel-<version>-pyfiles.zip`` (the
wheel is built beside it by ``make package``). The zip holds only cartwheel's own code: the
cluster provides pyspark, torch, horovod, petastorm and mlflow (DESIGN.md's pinned set).
"""

from __future__ import annotations

import sys
import zipfile
from importlib import metadata
from pathlib import Path

PACKAGES = ("jobs", "pipelines", "udfs")
SUFFIXES = (".py", ".properties", ".j2")
REPO = Path(__file__).resolve().parents[2]


def build(dest: Path, source: Path = REPO) -> Path:
    """Write the zip into ``dest``; returns its path."""
    try:
        version = metadata.version("cartwheel")
    except metadata.PackageNotFoundError:
        version = "0"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"cartwheel-{version}-pyfiles.zip"
    files = sorted(
        f
        for package in PACKAGES
        for f in (source / package).rglob("*")
        if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts
    )
    if not any(f.name == "__init__.py" for f in files):
        raise FileNotFoundError(f"no cartwheel packages under {source}")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            # A fixed timestamp: the same code gives the same zip.
            info = zipfile.ZipInfo(str(f.relative_to(source)), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m jobs.runtime.pyfiles DEST_DIR", file=sys.stderr)
        return 2
    path = build(Path(args[0]))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
