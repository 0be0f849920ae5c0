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


def ranking_metrics(
    recs: DataFrame, relevant: DataFrame, ks: Sequence[int], num_candidates: int
) -> DataFrame:
    """recs (method, user_id, item_id, rank) + relevant (user_id, item_id) -> one row per
    (method, k): ``users``, ``recall``, ``ndcg``, ``map``, ``hit_rate``, ``coverage``."""
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
    quality = grid.groupBy("method", "k").agg(
        F.count(F.lit(1)).alias("users"),
        F.avg(F.col("hits") / n).alias("recall"),
        F.avg(F.col("dcg") / _idcg(n, k)).alias("ndcg"),
        F.avg(F.col("ap_sum") / F.least(n, k)).alias("map"),
        F.avg((F.col("hits") > 0).cast("double")).alias("hit_rate"),
    )
    coverage = by_k.groupBy("method", "k").agg(
        (F.countDistinct("item_id") / F.lit(float(num_candidates))).alias("coverage")
    )
    return (
        quality.join(coverage, on=["method", "k"], how="left")
        .na.fill(0.0, subset=["coverage"])
        .select(*[F.col(f.name).cast(f.dataType) for f in S.METRICS.schema.fields])
        .orderBy("method", "k")
    )
