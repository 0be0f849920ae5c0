"""Every path convention under a data root, in one place.

Steps, the night, reports and readers ask this module where a table, a manifest or a pointer
lives; none of them joins path segments under the data root themselves (a test checks this).
A data root is a local folder or any Hadoop URI; the names below are relative to it:

    raw/events/dt=D/          raw logs (JSON lines or CSV, gzip or not)
    raw/catalog/              the item catalog (Parquet)
    raw/_source.json          the ingested format and the exclusion rule it suits
    clean/events/dt=D/        clean events (+ _cleaned.json per day)
    quarantine/events/dt=D/   quarantined lines with their reason
    examples/dt=D/split=S/    examples labelled for run date D (+ dt=D/_meta.json)
    vocab/dt=D/{items,categories}  the vocabularies of run date D
    state/user_history/dt=D/  each user's last L item events of the window ending at D (+ _meta.json)
    shards/<run id>/          Petastorm-ready shards (+ manifest)
    checkpoints/<run id>/     training checkpoints (the ranker's: checkpoints/ranker-D/)
    ranker/dt=D/split=S/      the second stage's candidate lists of run date D (fit, select)
    recs/<table>/dt=D/        published recommendation tables; recs/_latest.json the pointer
    _pending/dt=D/            a night's scores, waiting for its evaluation
    reports/dt=D/             data-quality, evaluation and night reports
    _runs/D/<step>.json       manifests; _runs/_lock.json the lock
    _staging/                 in-flight outputs of a step
    mlflow/                   the default MLflow store (mlflow.db, artifacts/)
"""

from __future__ import annotations

import datetime as dt

from jobs.runtime.storage import join

RECS_TABLES: tuple[str, ...] = ("user_topk", "item_similar")


def partition(day: dt.date | str) -> str:
    """The partition folder name of a day: ``dt=YYYY-MM-DD``."""
    return f"dt={day.isoformat() if isinstance(day, dt.date) else day}"


def raw_events(root: str) -> str:
    return join(root, "raw", "events")


def raw_catalog(root: str) -> str:
    return join(root, "raw", "catalog")


def raw_source(root: str) -> str:
    """What ``ingest`` wrote the raw logs from: its format and the exclusion rule it suits."""
    return join(root, "raw", "_source.json")


def clean_events(root: str) -> str:
    return join(root, "clean", "events")


def quarantine_events(root: str) -> str:
    return join(root, "quarantine", "events")


def examples_root(root: str) -> str:
    """``examples/``: one ``dt=D`` folder per labelled run date."""
    return join(root, "examples")


def examples(root: str, day: dt.date | str) -> str:
    """The examples labelled for run date ``day`` (``split=S`` folders and ``_meta.json``)."""
    return join(root, "examples", partition(day))


def examples_split(root: str, day: dt.date | str, split: str) -> str:
    return join(examples(root, day), f"split={split}")


def examples_meta(root: str, day: dt.date | str) -> str:
    return join(examples(root, day), "_meta.json")


def vocab_root(root: str) -> str:
    """``vocab/``: one ``dt=D`` folder per labelled run date."""
    return join(root, "vocab")


def vocab(root: str, day: dt.date | str, name: str | None = None) -> str:
    """The vocabularies built for run date ``day``, or one of them (``items``, ``categories``)."""
    folder = join(root, "vocab", partition(day))
    return join(folder, name) if name else folder


def user_history(root: str, day: dt.date | str) -> str:
    """The per-user history state as of the end of ``day`` (``pipelines.user_state``)."""
    return join(user_history_root(root), partition(day))


def user_history_root(root: str) -> str:
    return join(root, "state", "user_history")


def shards(root: str, run_id: str) -> str:
    return join(root, "shards", run_id)


def checkpoints(root: str, run_id: str) -> str:
    return join(root, "checkpoints", run_id)


def ranker_root(root: str) -> str:
    """``ranker/``: one ``dt=D`` folder of candidate lists per run date."""
    return join(root, "ranker")


def ranker_lists(root: str, day: dt.date | str, split: str | None = None) -> str:
    """The ranker's candidate lists of run date ``day``, or one split of them."""
    folder = join(root, "ranker", partition(day))
    return join(folder, f"split={split}") if split else folder


def ranker_work(root: str, day: dt.date | str) -> str:
    """Where the ranker's fitting workers leave the fitted weights and their errors."""
    return join(root, "checkpoints", f"ranker-{partition(day)[3:]}")


def recs(root: str, table: str, day: dt.date | str | None = None) -> str:
    """A published recommendation table, or its partition for ``day``."""
    folder = join(root, "recs", table)
    return join(folder, partition(day)) if day is not None else folder


def recs_root(root: str) -> str:
    return join(root, "recs")


def latest(root: str) -> str:
    """The pointer to the latest published night."""
    return join(root, "recs", "_latest.json")


def pending(root: str, day: dt.date) -> str:
    """Where a night's scores wait for its evaluation before they are published."""
    return join(root, "_pending", partition(day))


def reports(root: str, day: dt.date | str, name: str | None = None) -> str:
    folder = join(root, "reports", partition(day))
    return join(folder, name) if name else folder


def runs(root: str, day: dt.date | str) -> str:
    """The folder of a run date's manifests."""
    return join(root, "_runs", day.isoformat() if isinstance(day, dt.date) else day)


def manifest(root: str, day: dt.date, step: str) -> str:
    return join(runs(root, day), f"{step}.json")


def lock(root: str) -> str:
    return join(root, "_runs", "_lock.json")


def staging(root: str) -> str:
    return join(root, "_staging")


def mlflow_dir(root: str) -> str:
    return join(root, "mlflow")
