"""cartwheel score: the registered model -> tomorrow's recommendation tables.

Reads ``clean/events/`` for the ``--lookback-days`` ending at ``--run-date`` (the active users
and their histories), ``raw/catalog/`` (what is sellable) and the model (``--model-uri``,
default ``models:/cartwheel-two-tower@champion``). Writes ``recs/user_topk/dt=D/`` (the top
``--k`` items per active user, without the items the ``--exclude`` rule hides and without
unsellable items) and ``recs/item_similar/dt=D/`` (each vocabulary item's ``--k`` nearest
items by embedding), replacing only that date's partition, and ``_runs/<run-date>/score.json``.

The histories come from the per-user history state (``state/user_history/dt=D/``: each
active user's last L item events of the window, ``pipelines.user_state``), which score writes
with the tables: yesterday's state advanced by the new day's events when it is usable, else
rebuilt from the window (the manifest's ``user_history`` says which, and why).

User vectors are computed in executors by a pandas UDF in iterator form (the model loads once
per Python worker); the item table is broadcast; top-K is one matrix product + ``torch.topk``
per Arrow batch. Users without any item event get the most popular candidates
(``source = popularity``); the manifest counts them.

With ``--ranker-uri`` (a ranker ``cartwheel rank`` registered) ``recs/user_topk`` holds the
second stage's lists instead: the ranker's generators (with the settings it was fitted with)
propose candidates for every active user from the window's events, the ranker orders them (a
pandas UDF), and each row's ``source`` names the generator that ranked the item highest; the
rows carry the ranker's name and version, and the manifest counts each generator's candidates
and the published rows per source. ``recs/item_similar`` stays the two-tower's.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import layout, registry, scoring, user_state
from jobs.runtime.config import AtLeast1, DatedStepConfig, Fraction, opt, step_config
from jobs.runtime.lists import Held, ranked_top
from jobs.runtime.manifest import RunResult, StepRun
from jobs.runtime.readers import date_window, partition_name, read_catalog, read_clean_events
from jobs.runtime.registry import ModelUri
from jobs.runtime.scoring import (
    AUTO_EXCLUDE,
    EXCLUDE_HELP,
    PRECISION_HELP,
    ExcludeRule,
    Precision,
)
from jobs.runtime.step import run_cli, staging_area
from jobs.runtime.storage import Storage, join
from pipelines import baselines as B
from pipelines import evaluation as E
from pipelines import recs as R
from pipelines import schemas as S
from pipelines import user_state as U
from pipelines.errors import InputError

log = logging.getLogger("cartwheel")
NO_CANDIDATES = "no_candidates_left"


@step_config
class ScoreConfig(DatedStepConfig):
    """Flags of ``cartwheel score``."""

    model_uri: ModelUri = opt(
        default="models:/cartwheel-two-tower@champion",
        help="models:/NAME@ALIAS or models:/NAME/VERSION",
    )
    k: AtLeast1 = opt(default=50, help="items per user and similar items per item")
    lookback_days: AtLeast1 = opt(
        default=30, help="users with an event in these days (up to --run-date) are scored"
    )
    ranker_uri: ModelUri | None = opt(
        default=None,
        help="a registered ranker (cartwheel rank) whose ordering of its generators' candidates "
        "becomes recs/user_topk; item_similar stays the two-tower's",
    )
    exclude: ExcludeRule = opt(default=AUTO_EXCLUDE, help=EXCLUDE_HELP)
    precision: Precision = opt(default="float32", help=PRECISION_HELP)
    min_vocab_coverage: Fraction = opt(
        default=0.2,
        help="fail if fewer of the window's item events than this fraction are in the model's vocabulary",
    )
    similar_items: bool = opt(
        default=True, help="also write recs/item_similar (--no-similar-items: skip)"
    )
    output_root: str | None = opt(
        default=None,
        help="folder that gets the recs/ tables (default: the data root); the nightly run scores "
        "into a pending folder and publishes only after evaluation passes",
    )

    @property
    def recs_root(self) -> str:
        return layout.recs_root(self.output_root or self.data_root)

    def validate(self) -> None:
        super().validate()


def vocabulary_coverage(events: DataFrame, item_index: DataFrame) -> dict[str, int]:
    """Item events in the window and how many of them the model's vocabulary knows."""
    row = (
        events.where(F.col("item_id").isNotNull())
        .join(F.broadcast(item_index.select("item_id", F.lit(1).alias("known"))), "item_id", "left")
        .agg(F.count(F.lit(1)).alias("item_events"), F.count("known").alias("known"))
        .first()
    )
    assert row is not None
    return {"item_events": int(row["item_events"]), "item_events_in_vocabulary": int(row["known"])}


def check_coverage(
    model: registry.ResolvedModel, coverage: dict[str, int], minimum: float
) -> float:
    share = coverage["item_events_in_vocabulary"] / max(1, coverage["item_events"])
    if coverage["item_events"] and share < minimum:
        raise InputError(
            f"model {model.uri} (version {model.version}) does not match the data: only {share:.1%} of "
            f"{coverage['item_events']:,} item events are in its vocabulary (need {minimum:.0%}); "
            "train a model on this data or lower --min-vocab-coverage"
        )
    return share


def with_model_columns(
    frame: DataFrame,
    model: registry.ResolvedModel | registry.ResolvedRanker,
    run_date: dt.date,
    contract: S.Contract,
) -> DataFrame:
    """Scored rows + the model (or ranker) name, version and run date, in ``contract``'s columns."""
    return contract.select(
        frame.select(
            "*",
            F.lit(model.name).alias("model_name"),
            F.lit(model.version).alias("model_version"),
            F.lit(run_date).cast("date").alias("run_date"),
        )
    )


def ranked_user_topk(
    spark: SparkSession,
    config: ScoreConfig,
    events: DataFrame,
    active: DataFrame,
    catalog: DataFrame,
    model: registry.ResolvedModel,
    candidates: Any,
    held: Held,
) -> tuple[DataFrame, dict[str, Any]]:
    """``USER_TOPK`` rows of the ranker's lists for every user of ``active`` (the user history
    state's: anyone with an event in the window), from the window's ``events`` up to the run
    date, and what the manifest says of them: the ranker and each generator's candidates."""
    ranker = registry.resolve_ranker(config.ranker_uri or "")
    users = held.keep(active.select("user_id"))
    f = E.EvalFrames(
        events, users, held.keep(scoring.candidate_items(spark, model, candidates)),
        held.keep(E.exclusions_of(events, users, config.exclude)), config.k,
        config.run_date + dt.timedelta(days=1), B.BaselineSettings(),
    )  # fmt: skip
    top, proposed = ranked_top(ranker.model, f, catalog, held)
    per_generator = proposed.groupBy("method").count().collect()  # one row per generator
    log.info("[score] ranker %s v%s orders the candidates of %s", ranker.name, ranker.version,
             ", ".join(ranker.model.info["generators"]))  # fmt: skip
    return with_model_columns(top, ranker, config.run_date, S.USER_TOPK), {
        "name": ranker.name, "version": ranker.version, "uri": ranker.uri,
        "generators": list(ranker.model.info["generators"]),
        "candidates_per_generator": {r["method"]: int(r["count"]) for r in per_generator},
    }  # fmt: skip


def main(spark: SparkSession, config: ScoreConfig) -> RunResult:
    """Score every active user and every item with the model; publish the date's partitions."""
    storage = Storage(spark)
    run = StepRun(spark, "score", config)
    root, day = config.data_root, config.run_date
    with run:
        config = run.config = scoring.with_resolved_exclude(storage, config)
        days = date_window(day, config.lookback_days)
        events = read_clean_events(spark, storage, root, days)
        catalog = read_catalog(spark, storage, root)
        registry.configure_tracking(root)
        model = registry.resolve(config.model_uri)
        item_index = model.item_index(spark).persist()
        coverage = vocabulary_coverage(events, item_index)
        share = check_coverage(model, coverage, config.min_vocab_coverage)
        candidates, catalog_counts = scoring.sellable_candidates(spark, model, catalog)
        cutoff = day + dt.timedelta(days=1)  # histories include the whole run date
        popularity = scoring.popularity_order(
            R.item_popularity(events, item_index, cutoff), candidates, config.k + 10_000
        )
        data = scoring.payload(model, candidates, popularity, config.precision)
        part = partition_name(day)
        length = model.history_length
        state_plan = user_state.plan(storage, root, day, config.lookback_days, length)
        broadcasts: list[Any] = []
        held = Held("score")
        inputs: DataFrame | None = None
        try:
            with staging_area(storage, root, "score") as staging:
                # Tonight's user history state first (yesterday's advanced by the new day, or
                # rebuilt from the window); the histories of the scoring inputs come from it.
                state_folder = join(staging, "user_history", part)
                window = read_clean_events(
                    spark, storage, root, U.rebuild_partitions(day, config.lookback_days)
                )
                if state_plan.previous is not None:
                    tonight = U.advance(
                        user_state.read_state(spark, storage, state_plan.previous),
                        window.where(F.col("dt").isin(*U.advance_partitions(day))),
                        day, config.lookback_days, length,
                    )  # fmt: skip
                else:
                    log.info("[score] rebuilding the user history state: %s", state_plan.reason)
                    tonight = U.rebuild(window, day, config.lookback_days, length)
                active, cold = user_state.write_state(
                    storage, tonight, state_folder, root, day, config.lookback_days, length,
                    state_plan,
                )  # fmt: skip
                if active == 0:
                    raise InputError(f"no active users: no events in {days[0]} .. {days[-1]}")
                stored = spark.read.schema(S.USER_HISTORY.schema).parquet(state_folder)
                log.info(
                    "[score] %s active users (%s cold), %s candidate items, model %s v%s",
                    f"{active:,}", f"{cold:,}", f"{catalog_counts['candidate_items']:,}", model.name, model.version,
                )  # fmt: skip
                ranked: dict[str, Any] = {}
                if config.ranker_uri:
                    # The ranker's generators read the window themselves: of the two-tower's
                    # inputs only who is active is needed, and the state holds that.
                    topk, ranked = ranked_user_topk(
                        spark, config, events, stored, catalog, model, candidates, held
                    )
                else:
                    inputs = R.scoring_inputs_from_state(
                        stored, events, item_index, cutoff, length, config.exclude
                    ).persist(StorageLevel.MEMORY_AND_DISK)
                    scored, bc = scoring.score_users(spark, inputs, data, config.k)
                    broadcasts.append(bc)
                    topk = with_model_columns(scored, model, day, S.USER_TOPK)
                topk.write.parquet(join(staging, "user_topk", part))
                if config.similar_items:
                    similar, bc2 = scoring.similar_items(spark, data, config.k)
                    broadcasts.append(bc2)
                    with_model_columns(similar, model, day, S.ITEM_SIMILAR).write.parquet(
                        join(staging, "item_similar", part)
                    )
                written = spark.read.parquet(join(staging, "user_topk", part))
                stats = written.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"))
                summary = stats.agg(
                    F.count(F.lit(1)).alias("users"),
                    F.sum((F.col("n") < config.k).cast("int")).alias("short"),
                ).first()
                rows = written.count()
                if ranked:
                    ranked["published_per_source"] = {
                        r["source"]: int(r["count"])
                        for r in written.groupBy("source").count().collect()  # one per generator
                    }
                similar_rows = (
                    spark.read.parquet(join(staging, "item_similar", part)).count()
                    if config.similar_items
                    else 0
                )
                assert summary is not None
                scored_users = int(summary["users"])
                recs = config.recs_root
                outputs = [join(recs, "user_topk", part)]
                storage.publish_partitions(
                    join(staging, "user_topk"), join(recs, "user_topk"), [part]
                )
                if config.similar_items:
                    storage.publish_partitions(
                        join(staging, "item_similar"), join(recs, "item_similar"), [part]
                    )
                    outputs.append(join(recs, "item_similar", part))
                storage.publish_partitions(
                    join(staging, "user_history"), layout.user_history_root(root), [part]
                )
                outputs.append(layout.user_history(root, day))
        finally:
            held.release()
            if inputs is not None:
                inputs.unpersist()
            item_index.unpersist()
            for b in broadcasts:
                b.unpersist()
        run.inputs = [layout.clean_events(root), layout.raw_catalog(root), config.model_uri]
        if state_plan.previous is not None:
            run.inputs.append(state_plan.previous)
        if config.ranker_uri:
            run.inputs.append(config.ranker_uri)
        run.outputs = outputs
        run.record(
            rows_in=active,
            rows_out=scored_users,
            filtered={NO_CANDIDATES: active - scored_users},
        )
        run.extra = {
            "model_name": model.name,
            "model_version": model.version,
            "model_run_id": model.run_id,
            "k": config.k,
            "active_users": active,
            "cold_users_popularity_fallback": cold,
            "users_short_of_k": int(summary["short"] or 0),
            "user_topk_rows": rows,
            "item_similar_rows": similar_rows,
            "vocabulary_coverage": round(share, 6),
            **coverage,
            **catalog_counts,
            "ranker": ranked or None,
            "user_history": {**state_plan.to_dict(), "users": active},
        }
    return run.result()


def summarize(result: RunResult) -> str:
    m: dict[str, Any] = result.manifest
    ranker = m.get("ranker")
    ranked = (
        [
            f"user_topk: ranker {ranker['name']} v{ranker['version']} over "
            + ", ".join(
                f"{g} ({n:,} candidates)" for g, n in ranker["candidates_per_generator"].items()
            )
            + "; rows per source: "
            + ", ".join(f"{g} {n:,}" for g, n in sorted(ranker["published_per_source"].items()))
        ]
        if ranker
        else []
    )
    return "\n".join(
        [
            f"scored {m['active_users']:,} active users with {m['model_name']} v{m['model_version']}: "
            f"{m['user_topk_rows']:,} rows (top {m['k']}), {m['cold_users_popularity_fallback']:,} cold users "
            f"given popular items, {m['users_short_of_k']:,} with fewer than {m['k']} candidates left",
            f"candidates: {m['candidate_items']:,} of {m['vocabulary_items']:,} vocabulary items "
            f"({m['items_not_sellable']:,} not sellable, {m['items_missing_from_catalog']:,} not in the catalog); "
            f"{m['vocabulary_coverage']:.1%} of item events in the model's vocabulary",
            *ranked,
            f"item_similar: {m['item_similar_rows']:,} rows",
            f"user history state: {m['user_history']['users']:,} users, "
            f"{m['user_history']['built']} ({m['user_history']['reason']})",
            f"tables: {', '.join(m['outputs'])}",
            f"manifest: {result.manifest_path}",
        ]
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("score", ScoreConfig, main, summarize, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(cli())
