"""The evaluation's logic, without I/O: which methods there are and how each builds its lists,
the metrics table, the quality gate and the promotion rule.

Every method ranks K items per user from events before the test start (``EvalFrames``), with
the same candidates and the same exclusions. ``BASELINES`` maps a baseline's name to the
function that builds its lists; the model's and champion's lists come from scoring (in
``jobs``, since they need the registered model).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines import baselines as B
from pipelines import label as L
from pipelines import recs as R
from pipelines import schemas as S

MODEL, CHAMPION, RANKED = "model", "champion", "ranked"
CHAMPION_RANKED = "champion_ranked"  # the lists of the ranker that holds the champion alias
OURS = (MODEL, CHAMPION, RANKED, CHAMPION_RANKED)  # the methods that are not baselines
HANDLING = {
    MODEL: "cold users (no item event before the test start) get the popularity list",
    CHAMPION: "as model",
    RANKED: "the ranker orders its generators' candidates; every generator falls back to the "
    "popularity list, so cold users get it too",
    CHAMPION_RANKED: "as ranked, with the champion ranker's own generators and settings",
    B.POPULARITY: "the same list for every user (cold users included)",
    B.RECENT_POPULARITY: "the same list for every user (cold users included), filled from the "
    "all-time popularity list when the recent days hold fewer than K items",
    B.COOCCURRENCE: "users without recent items, and short lists, are filled from the popularity list",
    B.ALS_METHOD: "users ALS never saw, and short lists, are filled from the popularity list",
    B.ITEM_KNN: "users without item events, and short lists, are filled from the popularity list",
    B.BUY_AGAIN: "the user's own items first, then filled from the popularity list",
}
PROMOTION_METRICS = ("recall", "ndcg", "map", "hit_rate")
Table = dict[str, dict[str, dict[str, float]]]  # method -> str(K) -> metric -> value


@dataclass(frozen=True)
class EvalFrames:
    """What every method's lists are built from: events before the test start, the evaluated
    users, the candidate items, the (user, item) pairs the exclusion rule hides, and K."""

    before: DataFrame
    users: DataFrame
    candidates: DataFrame
    exclusions: DataFrame
    k: int
    test_start: dt.date
    settings: B.BaselineSettings


def popularity_lists(f: EvalFrames) -> DataFrame:
    return B.global_list(
        B.item_counts(f.before), f.users, f.candidates, f.exclusions, f.k, B.POPULARITY
    )


def recent_popularity_lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
    since = f.test_start - dt.timedelta(days=f.settings.recent_days)
    counts = B.item_counts(f.before, since)
    recent = B.global_list(counts, f.users, f.candidates, f.exclusions, f.k, B.RECENT_POPULARITY)
    # sparse logs (ratings) can have no event in the last days: no user is left without a list
    return B.fill_up(recent, popular, f.k, B.RECENT_POPULARITY)


def cooccurrence_lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
    co = B.cooccurrence_lists(f.before, f.users, f.candidates, f.exclusions, f.k, f.settings)
    return B.fill_up(co, popular, f.k, B.COOCCURRENCE)


def als_lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
    als = B.als_lists(
        f.before, f.users, f.candidates, f.exclusions, L.DEFAULT_LABEL_WEIGHTS, f.k, f.settings
    )
    return B.fill_up(als, popular, f.k, B.ALS_METHOD)


def decayed(
    fit: Callable[..., DataFrame], method: str
) -> Callable[[EvalFrames, DataFrame], DataFrame]:
    """A baseline built from recency-decayed strengths as of the test start (item-kNN,
    buy-again), its lists filled up from popularity."""

    def lists(f: EvalFrames, popular: DataFrame) -> DataFrame:
        own = fit(
            B.Decayed(
                f.before, f.users, f.candidates, f.exclusions, L.DEFAULT_LABEL_WEIGHTS,
                f.test_start, f.k, f.settings,
            )
        )  # fmt: skip
        return B.fill_up(own, popular, f.k, method)

    return lists


# name -> (frames, the popularity lists every fallback uses) -> that baseline's lists
BASELINES: dict[str, Callable[[EvalFrames, DataFrame], DataFrame]] = {
    B.POPULARITY: lambda f, popular: popular,
    B.RECENT_POPULARITY: recent_popularity_lists,
    B.COOCCURRENCE: cooccurrence_lists,
    B.ITEM_KNN: decayed(B.item_knn_lists, B.ITEM_KNN),
    B.BUY_AGAIN: decayed(B.buy_again_lists, B.BUY_AGAIN),
    B.ALS_METHOD: als_lists,
}

# The settings each baseline is tuned over on the val split (one list built per point, the
# same budget for every method: at most four points). Popularity has nothing to tune.
GRIDS: dict[str, list[dict[str, Any]]] = {
    B.RECENT_POPULARITY: [{"recent_days": d} for d in (1, 3, 7, 14)],
    B.COOCCURRENCE: [
        {"cooccurrence_items": n, "cooccurrence_neighbours": m} for n in (10, 50) for m in (50, 200)
    ],
    B.ITEM_KNN: [
        {"knn_neighbours": m, "knn_half_life_days": h} for m in (50, 300) for h in (3.0, 60.0)
    ],
    B.BUY_AGAIN: [{"buy_again_half_life_days": h} for h in (1.0, 7.0, 30.0, 365.0)],
    B.ALS_METHOD: [
        {"als_rank": 64, "als_reg": 0.01, "als_alpha": 1.0},
        {"als_rank": 64, "als_reg": 0.1, "als_alpha": 10.0},
        {"als_rank": 128, "als_reg": 0.1, "als_alpha": 40.0},
        {"als_rank": 32, "als_reg": 1.0, "als_alpha": 40.0},
    ],
}


def tuned(settings: B.BaselineSettings, point: dict[str, Any]) -> B.BaselineSettings:
    """``settings`` with one grid point's values."""
    return dataclasses.replace(settings, **point)


def best_point(scores: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """The grid point with the highest val score (the first of equals: grids list the cheaper
    or more conventional setting first)."""
    best, best_score = scores[0]
    for point, score in scores[1:]:
        if score > best_score:
            best, best_score = point, score
    return best


def interval_targets(rules: Rules, ks: tuple[int, ...]) -> list[tuple[str, int]]:
    """(metric, K) pairs that get bootstrap intervals: the promotion metric, and recall@20 and
    ndcg@10 where those K are computed (the figures the quality comparisons quote)."""
    wanted = [(rules.promotion_metric, rules.promotion_k)]
    wanted += [(m, k) for m, k in (("recall", 20), ("ndcg", 10)) if k in ks]
    return list(dict.fromkeys(wanted))


def verdict(diff_lo: float | None, diff_hi: float | None) -> str:
    """How a method compares with the model from the interval of (method - model): ``better``
    or ``worse`` when the interval excludes zero, else ``tie``."""
    if diff_lo is None or diff_hi is None:
        return "n/a"
    if diff_lo > 0:
        return "better"
    if diff_hi < 0:
        return "worse"
    return "tie"


def intervals_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``Mx.bootstrap`` rows -> method -> "metric@k" -> mean, lo, hi, diff_lo, diff_hi and the
    ``verdict`` against the model."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        values = {key: r[key] for key in ("mean", "lo", "hi", "diff_lo", "diff_hi")}
        values["vs_model"] = verdict(r["diff_lo"], r["diff_hi"]) if r["method"] != MODEL else "-"
        table.setdefault(r["method"], {})[f"{r['metric']}@{r['k']}"] = values
    return table


def paired_table(
    rows: list[dict[str, Any]], reference: str
) -> dict[str, dict[str, dict[str, Any]]]:
    """``Mx.bootstrap`` rows paired with ``reference`` -> method -> "metric@k" -> diff_lo,
    diff_hi (method - reference) and the ``verdict`` of the method against it."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["method"] != reference:
            table.setdefault(r["method"], {})[f"{r['metric']}@{r['k']}"] = {
                "diff_lo": r["diff_lo"], "diff_hi": r["diff_hi"],
                "verdict": verdict(r["diff_lo"], r["diff_hi"]),
            }  # fmt: skip
    return table


def exclusions_of(events: DataFrame, users: DataFrame, rule: str) -> DataFrame:
    """(user_id, item_id) pairs the rule hides, from events before the test start."""
    hidden = R.EXCLUDE_RULES[rule]
    return (
        events.where(F.col("event_type").isin(*hidden) & F.col("item_id").isNotNull())
        .join(users, on="user_id", how="left_semi")
        .select("user_id", "item_id")
        .distinct()
    )


def metrics_table(rows: list[dict[str, Any]]) -> Table:
    """``Mx.ranking_metrics`` rows -> method -> str(k) -> metric -> value (and ``users``)."""
    table: Table = {}
    for r in rows:
        table.setdefault(r["method"], {})[str(r["k"])] = {m: float(r[m]) for m in S.METRIC_NAMES}
        table[r["method"]][str(r["k"])]["users"] = int(r["users"])
    return table


def method_order(table: dict[str, Any]) -> list[str]:
    """Ours (the model, the champion, the ranked lists, the champion ranker's), then the
    baselines by name."""
    first = [m for m in OURS if m in table]
    return first + sorted(m for m in table if m not in first)


BEST_BASELINE = "best"


@dataclass(frozen=True)
class Rules:
    """How a metrics table is judged: the promotion metric at K, the champion's alias and
    tolerance, and the quality gate (the model must reach ``gate_min_ratio`` x a baseline, or
    x the strongest one with ``gate_baseline="best"``, on at least ``gate_min_warm_users``
    test users who had item events before the test start). The gate judges ``published``: the
    method whose lists a night publishes (the two-tower's, or the ranker's)."""

    promotion_metric: str = "recall"
    promotion_k: int = 20
    champion_alias: str = "champion"
    champion_tolerance: float = 0.0
    gate_baseline: str = B.POPULARITY
    gate_min_ratio: float = 1.0
    gate_min_warm_users: int = 200
    published: str = MODEL
    # how reasons name the promotion metric when the lists are judged in other terms (HR for
    # recall on next clicks); None: by its key
    metric_name: str | None = None

    @property
    def key(self) -> str:
        return f"{self.promotion_metric}@{self.promotion_k}"

    @property
    def shown(self) -> str:
        """The promotion metric at K as reasons name it."""
        return f"{self.metric_name}@{self.promotion_k}" if self.metric_name else self.key

    def value(self, table: Table, method: str) -> float:
        return table[method][str(self.promotion_k)][self.promotion_metric]


def gate_baseline(rules: Rules, table: Table) -> str:
    """The baseline the gate compares with: the configured one, or with ``best`` the baseline
    with the highest promotion metric (the first by name among equals)."""
    if rules.gate_baseline != BEST_BASELINE:
        return rules.gate_baseline
    baselines = sorted(m for m in table if m not in OURS)
    return max(baselines, key=lambda m: rules.value(table, m))


def quality_gate(
    rules: Rules, table: Table, users: int, cold_users: int, unit: str = "test users"
) -> dict[str, Any]:
    """Whether the published method reached ``gate_min_ratio`` x the gate baseline on the promotion metric,
    measured on enough warm test users (``users - cold_users``) for the comparison to mean
    something: on too few, or on a test set of cold users only, where every method falls back
    to popularity, the gate fails and says so."""
    if rules.gate_min_ratio == 0:
        return {"passed": True, "reason": "no quality gate (gate_min_ratio 0)", "metric": rules.key}
    warm = users - cold_users
    if warm < rules.gate_min_warm_users:
        return {
            "passed": False,
            "reason": f"too few warm {unit} to judge the model: {warm:,} of {users:,} had "
            f"item events before the test start ({cold_users:,} cold), fewer than "
            f"gate_min_warm_users {rules.gate_min_warm_users:,}; widen the test window "
            "(--test-days) or lower the minimum",
            "metric": rules.key,
            "warm_users": warm,
            "min_warm_users": rules.gate_min_warm_users,
        }
    baseline = gate_baseline(rules, table)
    ours, theirs = rules.value(table, rules.published), rules.value(table, baseline)
    passed = ours >= rules.gate_min_ratio * theirs and ours > 0
    chosen = " (the best baseline)" if rules.gate_baseline == BEST_BASELINE else ""
    judged = "" if rules.published == MODEL else f"{rules.published} "
    return {
        "passed": passed,
        "reason": f"{judged}{rules.shown} {ours:.4f} {'>=' if passed else '<'} "
        f"{rules.gate_min_ratio:g} x {baseline}{chosen} {theirs:.4f} on {warm:,} warm {unit}",
        "metric": rules.key,
        "method": rules.published,
        "model": ours,
        "baseline": baseline,
        "baseline_value": theirs,
        "min_ratio": rules.gate_min_ratio,
        "warm_users": warm,
        "min_warm_users": rules.gate_min_warm_users,
    }


def promotion(rules: Rules, table: Table, version: str, champion: str | None) -> dict[str, Any]:
    """Whether model ``version`` should take the champion alias from version ``champion``, and why.

    When the night publishes the ranked lists (``published`` is ``ranked``), those lists are
    what the gate judges, and the two-tower only supplies their candidate items and
    ``item_similar``: the one trained on fresher data takes over, whatever its own lists score
    beside the champion's (both are reported). Otherwise the two-tower's own lists are what is
    published, and it must beat the champion (or come within ``champion_tolerance``)."""
    key, ours = rules.shown, rules.value(table, MODEL)
    decision: dict[str, Any] = {"metric": rules.key, "model": ours}
    if champion is None:
        return {
            **decision,
            "promote": True,
            "reason": f"no model had the alias '{rules.champion_alias}' yet",
        }
    if champion == version:
        return {
            **decision,
            "promote": False,
            "reason": f"version {version} already is the champion",
        }
    theirs = rules.value(table, CHAMPION)
    decision["champion"] = theirs
    if rules.published == RANKED:
        reason = (
            "the ranked lists are what is published and the gate judges them; the model "
            f"trained on fresher data supplies their candidates (its own lists: {key} "
            f"{ours:.4f}, the champion v{champion}'s {theirs:.4f})"
        )
        return {**decision, "promote": True, "reason": reason}
    tolerance = rules.champion_tolerance
    if ours > theirs:
        reason = f"{key} {ours:.4f} beats the champion (v{champion}) at {theirs:.4f}"
        return {**decision, "promote": True, "reason": reason}
    if tolerance > 0 and ours >= (1 - tolerance) * theirs:
        reason = (
            f"{key} {ours:.4f} is within {tolerance:.0%} of the champion (v{champion}) "
            f"at {theirs:.4f}; the model trained on fresher data takes over"
        )
        return {**decision, "promote": True, "reason": reason}
    within = f" or come within {tolerance:.0%} of" if tolerance > 0 else ""
    reason = (
        f"{key} {ours:.4f} does not beat{within} the champion (v{champion}) at {theirs:.4f}; "
        f"v{champion} keeps serving"
    )
    return {**decision, "promote": False, "reason": reason}


def against_champion_ranker(
    rules: Rules, table: Table, paired: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Whether tonight's ranked lists hold their own against the lists of the ranker that serves
    now (``champion_ranked``, measured beside them on the same test users), or None when the
    ranked lists are not published or there is no other champion ranker. They lose when they are
    below (1 - ``champion_tolerance``) x the champion ranker's on the promotion metric and, where
    ``paired`` holds the bootstrap interval of (champion_ranked - ranked), that interval lies
    above zero: a loss the test users bear out, not the noise of one test day. Without
    intervals (``bootstrap_replicates`` 0) the values alone decide."""
    if rules.published != RANKED or CHAMPION_RANKED not in table:
        return None
    key, tolerance = rules.key, rules.champion_tolerance
    ours, theirs = rules.value(table, RANKED), rules.value(table, CHAMPION_RANKED)
    check: dict[str, Any] = {
        "metric": key, "ranked": ours, "champion_ranked": theirs, "tolerance": tolerance,
    }  # fmt: skip
    below = ours < (1 - tolerance) * theirs
    interval = (paired or {}).get(CHAMPION_RANKED, {}).get(key)
    if interval is not None:
        lo, hi = interval["diff_lo"], interval["diff_hi"]
        check.update(diff_lo=lo, diff_hi=hi)
        held = not (below and lo is not None and lo > 0)
        basis = f"champion - ranked [{lo:+.4f}, {hi:+.4f}]" if lo is not None else "no interval"
    else:
        held, basis = not below, "no bootstrap intervals"
    within = f" x (1 - {tolerance:g})" if tolerance else ""
    if held:
        reason = (
            f"ranked {key} {ours:.4f} holds against the champion ranker's lists at "
            f"{theirs:.4f}{within} ({basis})"
        )
    else:
        reason = (
            f"ranked {key} {ours:.4f} loses to the champion ranker's lists at {theirs:.4f}"
            f"{within} ({basis}): the tables the champion ranker published keep serving"
        )
    return {**check, "held": held, "reason": reason}


def decide(
    rules: Rules,
    table: Table,
    version: str,
    champion: str | None,
    users: int,
    cold_users: int,
    paired: dict[str, Any] | None = None,
    unit: str = "test users",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(quality gate, promotion decision): a failed gate promotes nothing. With the ranked lists
    published and a champion ranker's lists beside them, the gate also needs
    ``against_champion_ranker`` to hold (``paired``: the intervals against the ranked lists)."""
    gate = quality_gate(rules, table, users, cold_users, unit)
    check = against_champion_ranker(rules, table, paired) if rules.gate_min_ratio else None
    if check is not None:
        gate = {**gate, "champion_ranker": check}
        if gate["passed"] and not check["held"]:
            gate = {**gate, "passed": False, "reason": check["reason"]}
    decision = promotion(rules, table, version, champion)
    if not gate["passed"]:
        decision = {
            **decision,
            "promote": False,
            "reason": f"quality gate failed: {gate['reason']}",
        }
    return gate, decision
