"""Ranked lists as evaluate and rank build them: the frames a computation keeps while it runs
(``Held``), every generator's lists (``generator_lists``), and a registered ranker's lists over
those generators' candidates (``ranked_lists``)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.runtime.session import materialize
from pipelines import baselines as B
from pipelines import candidates as C
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import schemas as S
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")


class Held:
    """Frames and broadcasts a computation keeps while it runs; ``release`` frees them."""

    def __init__(self, step: str = "evaluate") -> None:
        self.step = step
        self.frames: list[DataFrame] = []
        self.broadcasts: list[Any] = []
        self.built: dict[tuple[Any, ...], tuple[Any, DataFrame]] = {}

    def keep(self, frame: DataFrame) -> DataFrame:
        self.frames.append(frame.persist(StorageLevel.MEMORY_AND_DISK))
        return frame

    def lists(self, name: str, frame: DataFrame) -> DataFrame:
        """Materialise one method's lists once (the metrics read them several times)."""
        started = time.monotonic()
        frame = materialize(frame)
        self.frames.append(frame)  # persisted where Spark has no local checkpoint (Connect)
        rows = frame.count()
        log.info(
            "[%s] %s: %s list rows in %.1fs",
            self.step, name, f"{rows:,}", time.monotonic() - started,
        )  # fmt: skip
        return frame

    def lists_once(
        self, name: str, f: E.EvalFrames, settings: B.BaselineSettings | None, build: Any
    ) -> DataFrame:
        """``lists(name, build())``, built once per method, settings and frames ``f`` (by
        identity; ``f`` is kept so that no later frame takes its id) while this computation
        runs: two rankers over a generator with the same settings share its lists."""
        frames = (f.before, f.users, f.candidates, f.exclusions)
        key = (name, settings, f.k, f.test_start, *map(id, frames))
        if key not in self.built:
            self.built[key] = (f, self.lists(name, build()))
        return self.built[key][1]

    def release(self) -> None:
        for frame in self.frames:
            frame.unpersist()
        for bc in self.broadcasts:
            bc.unpersist()


def search_grid(
    label: str,
    name: str,
    grid: Sequence[dict[str, Any]],
    lists_at: Callable[[str, dict[str, Any]], DataFrame],
    per_unit: Callable[[DataFrame], DataFrame],
    column: str,
    metric: str,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], float]]]:
    """(the best point of method ``name``'s ``grid``, [(point, score)] in grid order): each
    point's lists (``lists_at(name, point)``), computed once and dropped once scored, score the
    mean of ``column`` over ``per_unit(lists)`` (one metrics row per evaluated user or query).
    ``label`` (the step) and ``metric`` name the point in the log."""
    tried: list[tuple[dict[str, Any], float]] = []
    for point in grid:
        # computed once: the metrics read a point's lists twice (the hits and the methods)
        lists = materialize(lists_at(name, point))
        [row] = per_unit(lists).agg(F.avg(column)).collect()
        lists.unpersist()
        # no row: the point listed nothing for any unit, which all score zero then
        tried.append((point, 0.0 if row[0] is None else float(row[0])))
        log.info("%s %s on val: %s -> %s %.4f", label, name, point, metric, tried[-1][1])
    return E.best_point(tried), tried


def generator_lists(
    f: E.EvalFrames, generators: Sequence[str], chosen: dict[str, B.BaselineSettings], held: Held
) -> DataFrame:
    """Every generator's ``RANKED_LISTS`` for ``f``'s users, each with its ``chosen`` settings
    (popularity, the fallback of every list, with ``f``'s); lists ``held`` already built for
    the same frames, depth and settings are not built again."""
    popular = held.lists_once(B.POPULARITY, f, None, lambda: E.popularity_lists(f))  # no settings

    def built(g: str) -> DataFrame:
        mine = dataclasses.replace(f, settings=chosen[g])
        return held.lists_once(g, mine, chosen[g], lambda: E.BASELINES[g](mine, popular))

    parts = [popular if g == B.POPULARITY else built(g) for g in generators]
    return functools.reduce(DataFrame.unionByName, parts)


def ranked_top(
    ranker: Any, f: E.EvalFrames, catalog: DataFrame, held: Held
) -> tuple[DataFrame, DataFrame]:
    """A registered ranker's top ``f.k`` per user of ``f``: (user_id, item_id, rank, score,
    source: the generator that ranked the item highest), and every generator's lists
    (``RANKED_LISTS``, method = generator). Its generators, with the settings it was fitted with,
    propose ``depth`` items each from ``f``'s events, candidates and exclusions; the features are
    computed as for its fitting lists and scored in a pandas UDF (``udfs.ranker``)."""
    from udfs.ranker import score_pairs

    info = ranker.info
    gens = list(info["generators"])
    names = C.feature_names(gens)
    if names != list(ranker.feature_names):
        raise InputError(
            f"the ranker was fitted on features {', '.join(ranker.feature_names)}; this cartwheel "
            f"computes {', '.join(names)} for its generators: run `cartwheel rank` again"
        )
    settings = {g: B.BaselineSettings(**info["generator_settings"][g]) for g in gens}
    proposed = generator_lists(dataclasses.replace(f, k=int(info["depth"])), gens, settings, held)
    pairs = C.features(
        C.merge(proposed, gens), f.before, catalog, f.test_start, L.DEFAULT_LABEL_WEIGHTS, gens
    )
    scored = score_pairs(pairs, ranker)
    order = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("item_id"))
    top = (
        scored.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= f.k)
        .select("user_id", "item_id", "rank", "score", C.lead_source(gens).alias("source"))
    )
    return top, proposed


def ranked_lists(
    ranker: Any,
    f: E.EvalFrames,
    catalog: DataFrame,
    held: Held,
    chosen: dict[str, B.BaselineSettings] | None = None,
) -> tuple[DataFrame, dict[str, DataFrame]]:
    """``ranked_top`` as ``RANKED_LISTS`` rows of method ``ranked``, and the baselines its
    generators' lists already hold: for each generator built with the settings ``chosen`` gives
    it (``f``'s where absent; popularity has none), the first ``f.k`` rows of its ``depth``-deep
    list, which are that baseline's lists at ``f.k`` (a method's list at K is the prefix of its
    deeper list, fill-up and tie order included), so evaluate does not build them again."""
    top, proposed = ranked_top(ranker, f, catalog, held)
    ranked = held.lists(E.RANKED, S.RANKED_LISTS.select(top.withColumn("method", F.lit(E.RANKED))))
    info = ranker.info
    if int(info["depth"]) < f.k:
        return ranked, {}
    same = [
        g
        for g in info["generators"]
        if g == B.POPULARITY
        or B.BaselineSettings(**info["generator_settings"][g]) == (chosen or {}).get(g, f.settings)
    ]
    prefix = F.col("rank") <= f.k
    return ranked, {g: proposed.where((F.col("method") == g) & prefix) for g in same}
