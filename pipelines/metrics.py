"""Ranking metrics at K, computed in Spark over per-user lists (no per-user list reaches the
driver; only one row per method and K does).

Definitions, for a user with relevant set R (|R| >= 1) and a ranked list (rank 1 first):

  Recall@K   = |hits in the top K| / |R|
  NDCG@K     = DCG@K / IDCG@K, DCG@K = sum over hits at rank r <= K of 1 / log2(r + 1),
               IDCG@K the DCG of min(|R|, K) hits at ranks 1..min(|R|, K)
  MAP@K      = (1 / min(|R|, K)) * sum over hits at rank r <= K of precision@r
  HitRate@K  = 1 if any hit in the top K, else 0
  Coverage@K = distinct items in any evaluated user's top K / candidate items

Averages are over the users with at least one relevant item; a user the method gave no list
(or a short one) counts with zeros for what is missing. Users without relevant items are not
evaluated. Lists from scores are ranked by score descending, ties by item id ascending.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines import schemas as S


def rank_by_score(scored: DataFrame, k: int) -> DataFrame:
    """(method, user_id, item_id, score) -> (method, user_id, item_id, rank): each user's top k
    by score descending, ties broken by item_id ascending."""
    order = Window.partitionBy("method", "user_id").orderBy(
        F.col("score").desc(), F.col("item_id").asc()
    )
    return S.RANKED_LISTS.select(
        scored.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
    )


def _idcg(n_relevant: Column, k: Column) -> Column:
    """DCG of min(|R|, K) hits at ranks 1..min(|R|, K)."""
    return F.aggregate(
        F.sequence(F.lit(1), F.least(n_relevant, k)),
        F.lit(0.0),
        lambda acc, r: acc + F.lit(1.0) / F.log2(r.cast("double") + 1.0),
    )


def per_user_metrics(recs: DataFrame, relevant: DataFrame, ks: Sequence[int]) -> DataFrame:
    """recs (method, user_id, item_id, rank) + relevant (user_id, item_id) -> one row per
    (method, evaluated user, k): ``recall``, ``ndcg``, ``map``, ``hit_rate`` of that user's list
    (zeros for a user the method gave no list)."""
    k_values = F.array(*[F.lit(int(k)) for k in sorted(set(ks))])
    rel = relevant.select("user_id", "item_id").distinct()
    n_rel = rel.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_relevant"))
    lists = (
        recs.where(F.col("rank") <= max(ks))
        .join(n_rel.select("user_id"), on="user_id", how="inner")
        .join(rel.withColumn("hit", F.lit(1)), on=["user_id", "item_id"], how="left")
        .select("method", "user_id", "item_id", "rank", F.coalesce("hit", F.lit(0)).alias("hit"))
    )
    so_far = (
        Window.partitionBy("method", "user_id")
        .orderBy("rank")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    by_k = (
        lists.withColumn("hits_so_far", F.sum("hit").over(so_far))
        .withColumn("k", F.explode(k_values))
        .where(F.col("rank") <= F.col("k"))
    )
    is_hit = F.col("hit") == 1
    rank = F.col("rank").cast("double")
    per_user = by_k.groupBy("method", "user_id", "k").agg(
        F.sum("hit").alias("hits"),
        F.sum(F.when(is_hit, 1.0 / F.log2(rank + 1.0)).otherwise(0.0)).alias("dcg"),
        F.sum(F.when(is_hit, F.col("hits_so_far") / rank).otherwise(0.0)).alias("ap_sum"),
    )
    grid = (
        recs.select("method")
        .distinct()
        .crossJoin(n_rel)  # methods x evaluated users: a user without a list scores zero
        .withColumn("k", F.explode(k_values))
        .join(per_user, on=["method", "user_id", "k"], how="left")
        .na.fill(0, subset=["hits", "dcg", "ap_sum"])
    )
    n, k = F.col("n_relevant"), F.col("k")
    return grid.select(
        "method",
        "user_id",
        "k",
        (F.col("hits") / n).alias("recall"),
        (F.col("dcg") / _idcg(n, k)).alias("ndcg"),
        (F.col("ap_sum") / F.least(n, k)).alias("map"),
        (F.col("hits") > 0).cast("double").alias("hit_rate"),
    )


def ranking_metrics(
    recs: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int],
    num_candidates: int,
    per_user: DataFrame | None = None,
) -> DataFrame:
    """recs (method, user_id, item_id, rank) + relevant (user_id, item_id) -> one row per
    (method, k) in the ``METRICS`` contract: ``users``, ``recall``, ``ndcg``, ``map``,
    ``hit_rate`` (means over ``per_user_metrics``, computed here unless the caller passes them,
    for the same ``ks``) and ``coverage``."""
    if per_user is None:
        per_user = per_user_metrics(recs, relevant, ks)
    quality = per_user.groupBy("method", "k").agg(
        F.count(F.lit(1)).alias("users"),
        *[F.avg(m).alias(m) for m in ("recall", "ndcg", "map", "hit_rate")],
    )
    listed = recs.where(F.col("rank") <= max(ks)).join(
        relevant.select("user_id").distinct(), "user_id", "left_semi"
    )
    coverage = (
        listed.withColumn("k", F.explode(F.array(*[F.lit(int(k)) for k in sorted(set(ks))])))
        .where(F.col("rank") <= F.col("k"))
        .groupBy("method", "k")
        .agg((F.countDistinct("item_id") / F.lit(float(num_candidates))).alias("coverage"))
    )
    return (
        quality.join(coverage, on=["method", "k"], how="left")
        .na.fill(0.0, subset=["coverage"])
        .select(*[F.col(f.name).cast(f.dataType) for f in S.METRICS.schema.fields])
        .orderBy("method", "k")
    )


# P(X <= x) for X ~ Poisson(1), x = 0..6: a user's weight in one bootstrap replicate.
_POISSON_CDF = (0.36788, 0.73576, 0.91970, 0.98101, 0.99634, 0.99941, 0.99992)


def poisson_weight(user: Column, replicate: Column, seed: int) -> Column:
    """A deterministic Poisson(1) draw per (user, replicate): the Poisson bootstrap, which
    resamples users without collecting them (each user appears ``weight`` times)."""
    u = (F.pmod(F.xxhash64(F.lit(seed), user, replicate), F.lit(1 << 30))).cast("double") / float(
        1 << 30
    )
    draw = F.lit(len(_POISSON_CDF))
    for x, p in reversed(list(enumerate(_POISSON_CDF))):
        draw = F.when(u < p, F.lit(x)).otherwise(draw)
    return draw.cast("double")


def bootstrap(
    per_user: DataFrame,
    wanted: Sequence[tuple[str, int]],
    reference: str,
    replicates: int = 200,
    seed: int = 0,
    level: float = 0.95,
    unit: Column | None = None,
) -> DataFrame:
    """``per_user_metrics`` rows -> per (method, metric, k) in ``wanted``: the mean, its
    ``level`` percentile interval over ``replicates`` Poisson-bootstrap resamples of the users
    (``lo``, ``hi``), and the interval of the paired difference method - ``reference`` on the
    same resamples (``diff_lo``, ``diff_hi``; zero for the reference itself). ``unit``: what is
    resampled, an expression over ``user_id`` (default the user itself; rows with the same unit
    get the same weight)."""
    long = per_user.select(
        "method",
        "user_id",
        F.explode(
            F.array(
                *[
                    F.when(
                        F.col("k") == k,
                        F.struct(
                            F.lit(m).alias("metric"), F.lit(k).alias("k"), F.col(m).alias("v")
                        ),
                    )
                    for m, k in wanted
                ]
            )
        ).alias("x"),
    ).where(F.col("x").isNotNull())
    values = long.select("method", "user_id", "x.metric", "x.k", "x.v")
    b = F.col("b")
    resampled = (
        values.withColumn("b", F.explode(F.sequence(F.lit(0), F.lit(replicates - 1))))
        .withColumn("w", poisson_weight(F.col("user_id") if unit is None else unit, b, seed))
        .groupBy("method", "metric", "k", "b")
        .agg((F.sum(F.col("w") * F.col("v")) / F.sum("w")).alias("m"))
    )
    ref = resampled.where(F.col("method") == reference).select(
        "metric", "k", "b", F.col("m").alias("ref")
    )
    tail = (1.0 - level) / 2.0
    quantiles = F.array(F.lit(tail), F.lit(1.0 - tail))
    intervals = (
        resampled.join(ref, ["metric", "k", "b"], "left")
        .groupBy("method", "metric", "k")
        .agg(
            F.percentile_approx("m", quantiles, 100_000).alias("ci"),
            F.percentile_approx(F.col("m") - F.col("ref"), quantiles, 100_000).alias("diff"),
        )
    )
    means = values.groupBy("method", "metric", "k").agg(F.avg("v").alias("mean"))
    return means.join(intervals, ["method", "metric", "k"]).select(
        "method", "metric", "k", "mean",
        F.col("ci")[0].alias("lo"), F.col("ci")[1].alias("hi"),
        F.col("diff")[0].alias("diff_lo"), F.col("diff")[1].alias("diff_hi"),
    )  # fmt: skip
