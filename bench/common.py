"""Shared benchmark plumbing: run a cartwheel command as a subprocess, time it and sample the
peak resident memory of its whole process tree (Python driver + Spark JVM + Python workers)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CARTWHEEL = [sys.executable, "-m", "jobs.cli"]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import pyspark

    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "platform": platform.platform(),
    }


def tree_rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and its children now (0 once it has exited)."""
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # it exited between two samples
        return 0
    total = 0
    for p in tree:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (seconds), after one untimed warm-up
    call (the first pass allocates and picks kernels)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class PeakMemory:
    """Peak RSS of this process tree while the block runs."""

    def __enter__(self) -> PeakMemory:
        self.peak, self._done = 0, threading.Event()
        me = psutil.Process()

        def sample() -> None:
            while not self._done.is_set():
                self.peak = max(self.peak, tree_rss(me))
                self._done.wait(0.25)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()


def run_sampled(
    args: list[str], log_path: Path, command: list[str] = CARTWHEEL
) -> tuple[float, int, list[tuple[float, int]]]:
    """Run ``cartwheel <args>`` (or ``command <args>``): (wall seconds, exit code, [(epoch
    seconds, tree RSS bytes)])."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    samples: list[tuple[float, int]] = []
    with open(log_path, "w") as log:
        start = time.monotonic()
        proc = subprocess.Popen([*command, *args], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        ps = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), tree_rss(ps)))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    return time.monotonic() - start, code, samples


def run_measured(args: list[str], log_path: Path) -> dict[str, Any]:
    """Run ``cartwheel <args>``; return wall seconds and peak tree RSS (MB); raise on failure."""
    wall, code, samples = run_sampled(args, log_path)
    peak = max((rss for _, rss in samples), default=0)
    if code != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"cartwheel {' '.join(args)} failed with exit code {code}:\n{tail}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def cleaned_root(root: Path, rows: int, days: int, end: str, logs: Path) -> Path:
    """``root`` holding ``rows`` generated raw rows over ``days`` ending at ``end``, cleaned
    (``generate`` + ``clean``, not timed); kept as it is when a clean run is already there."""
    if not (root / "_runs" / end / "clean.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        window = ["--data-root", str(root), "--days", str(days)]
        run_measured(
            ["generate", *window, "--end-date", end, "--rows", str(rows)],
            logs / f"prep-generate-{rows}.log",
        )
        run_measured(["clean", *window, "--run-date", end], logs / f"prep-clean-{rows}.log")
    return root


def rates(rows: int, wall_s: float) -> dict[str, float]:
    cores = os.cpu_count() or 1
    return {
        "rows_per_s": round(rows / wall_s, 1),
        "rows_per_s_per_core": round(rows / wall_s / cores, 1),
    }


def write_result(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    from jobs.runtime.manifest import code_version

    doc = {
        "benchmark": name,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "machine": machine(),
        **doc,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def scale_args(description: str, keep_help: str) -> argparse.Namespace:
    """The flags every scale benchmark takes: ``--rows`` (one run per value), ``--days``,
    ``--work-dir`` and ``--keep``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "cartwheel-bench"
    )
    parser.add_argument("--keep", action="store_true", help=keep_help)
    return parser.parse_args()
