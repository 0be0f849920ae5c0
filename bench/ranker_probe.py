"""Probe: would a learned ranker over several generators beat the best single generator?

This measures the second stage's headroom before it is built into the pipeline; it is not the
pipeline's path (the ranker here is fitted on the driver from ``toPandas``, which the pipeline
never does). On a data root that went through label, train and evaluate (``bench/quality.py``):

1. every generator (the registered two-tower, item-kNN, ALS, buy-again, co-occurrence,
   popularity, recent popularity; with the settings evaluate tuned on val, recorded in the
   root's ``reports/dt=D/metrics.json``, else their defaults) lists its top ``--depth`` items
   for the val users from the events before the val start, and for the test users from the
   events before the test start, with the same candidates and exclusion rule as evaluate;
2. ``pipelines.candidates`` merges the lists and computes each pair's features from the events
   before the cutoff; val targets label the val pairs;
3. each ranker variant (``--variants``, ``pipelines.ranker``: a small MLP, and a DCN-v2
   network whose cross layers multiply features explicitly beside a deep MLP) is fitted with a
   listwise loss (softmax over each user's candidates) on 80 % of the val users, its epoch
   count chosen on the other 20 % (recall@20); the variant with the best selection recall is
   the ranker: val only, test is scored once, for that variant;
4. on test, the ranker's top 20 and every generator's own top 20 are scored per test user
   (recall@20, ndcg@10; a user's targets no list reached count as misses), with 95 % paired
   bootstrap intervals (1,000 resamples of the test users) of ranker - generator.

Writes ``bench/results/ranker-probe-<name>.json``.

``--extra-days N`` adds training lists (never selection ones) at the N cutoffs before the val
start, labelled by the train targets of each day, every generator refitted on the events before
it; the two-tower is then left out of the candidates, since it was trained on those days.

``--cache DIR`` keeps the built val and test frames (step 1-2, most of the time) as Parquet and
reuses them when the root, run date, depth and feature names match.

usage: python bench/ranker_probe.py --root DATA_ROOT --run-date YYYY-MM-DD --name NAME
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyspark.sql import functions as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result
from jobs import evaluate as EV
from jobs.runtime import layout, registry, scoring
from jobs.runtime import lists as LI
from jobs.runtime.readers import date_window, read_catalog, read_clean_events
from jobs.runtime.session import get_spark
from jobs.runtime.storage import Storage
from pipelines import baselines as B
from pipelines import candidates as C
from pipelines import evaluation as E
from pipelines import label as L
from pipelines import ranker as R

GENERATORS = [E.MODEL, B.ITEM_KNN, B.ALS_METHOD, B.BUY_AGAIN, B.COOCCURRENCE, B.POPULARITY,
              B.RECENT_POPULARITY]  # fmt: skip
K_RECALL, K_NDCG, REPLICATES = 20, 10, 1000


def generators(args: argparse.Namespace) -> list[str]:
    """The generators whose lists are candidates: all but the two-tower with ``--extra-days``
    (it was trained on the days before the val start, so at those cutoffs its lists would be
    in-sample and the ranker would learn to trust it more than it deserves at test)."""
    return GENERATORS[1:] if args.extra_days else GENERATORS


def build(args: argparse.Namespace) -> dict[str, Any]:
    """(val frame, test frame, relevant counts, settings used) from the data root."""
    spark = get_spark("cartwheel-ranker-probe")
    storage, root, day = Storage(spark), args.root, args.run_date
    b = EV.read_boundaries(storage, root, day)
    events = read_clean_events(
        spark, storage, root, date_window(day, (day - b["window_start"]).days + 1)
    )
    catalog = read_catalog(spark, storage, root)
    registry.configure_tracking(root)
    model = registry.resolve(args.model_uri)
    mask, _ = scoring.sellable_candidates(spark, model, catalog)
    held = LI.Held("probe")
    items = held.keep(scoring.candidate_items(spark, model, mask))
    report = Path(layout.reports(root, day), "metrics.json")
    doc = json.loads(report.read_text()) if report.exists() else {}
    exclude = doc.get("exclude", "purchased")
    chosen = {m: t["chosen"] for m, t in doc.get("tuning", {}).get("methods", {}).items()}

    gens = generators(args)

    def at(cut: dt.date, split: str) -> tuple[pd.DataFrame, pd.Series]:
        targets = EV.read_examples(spark, storage, root, day, split).select(
            "user_id", F.col("target_item_id").alias("item_id"), "target_time"
        )
        if split == L.TRAIN:  # an earlier cutoff: the train targets of that one day
            targets = targets.where(F.to_date("target_time") == F.lit(cut))
        targets = targets.select("user_id", "item_id").distinct()
        users = targets.select("user_id").distinct()
        before = held.keep(events.where(F.col("event_time") < L.day_start(cut)))
        f = E.EvalFrames(
            before, users, items, held.keep(E.exclusions_of(before, users, exclude)),
            args.depth, cut, B.BaselineSettings(),
        )  # fmt: skip
        others = [g for g in gens if g != E.MODEL]
        settings = {g: E.tuned(f.settings, chosen.get(g, {})) for g in others}
        lists = LI.generator_lists(f, others, settings, held)
        if E.MODEL in gens:
            lists = EV.model_lists(spark, model, mask, f, exclude, E.MODEL, held).unionByName(lists)
        pairs = C.features(
            C.merge(lists, gens), before, catalog, cut, L.DEFAULT_LABEL_WEIGHTS, gens
        )
        frame = C.labeled(pairs, targets).toPandas()  # the probe's shortcut, see the docstring
        frame["cutoff"] = cut.isoformat()
        relevant = targets.groupBy("user_id").count().toPandas().set_index("user_id")["count"]
        return frame, relevant

    val, val_rel = at(b["val_start"], L.VAL)
    # earlier cutoffs add training lists (never selection ones): each day before the val start
    # with the train targets of that day, every generator refitted on the events before it
    earlier = [
        at(b["val_start"] - dt.timedelta(days=n), L.TRAIN)[0] for n in range(1, args.extra_days + 1)
    ]
    val = pd.concat([val, *earlier], ignore_index=True)
    test, test_rel = at(b["test_start"], L.TEST)
    held.release()
    return {"val": val, "val_rel": val_rel, "test": test, "test_rel": test_rel,
            "exclude": exclude, "tuned": chosen, "boundaries": {k: str(v) for k, v in b.items()}}  # fmt: skip


def cached_build(args: argparse.Namespace) -> dict[str, Any]:
    """``build``, or the frames a previous run with the same inputs kept under ``--cache``."""
    key = {"root": str(args.root), "run_date": str(args.run_date), "depth": args.depth,
           "features": C.feature_names(generators(args)), "model_uri": args.model_uri,
           **({"extra_days": args.extra_days} if args.extra_days else {})}  # fmt: skip
    folder = args.cache
    kept = folder is not None and (folder / "key.json").exists()
    if kept and json.loads((folder / "key.json").read_text()) == key:
        meta = json.loads((folder / "meta.json").read_text())
        frames = {n: pd.read_parquet(folder / f"{n}.parquet") for n in ("val", "test")}
        rel = {n: pd.read_parquet(folder / f"{n}_rel.parquet")["count"] for n in ("val", "test")}
        for frame in frames.values():  # kept by a run before the cutoff column existed
            if "cutoff" not in frame:
                frame["cutoff"] = "latest"
        return {**meta, **frames, "val_rel": rel["val"], "test_rel": rel["test"]}
    data = build(args)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for n in ("val", "test"):
            data[n].to_parquet(folder / f"{n}.parquet")
            data[f"{n}_rel"].to_frame("count").to_parquet(folder / f"{n}_rel.parquet")
        meta = {k: data[k] for k in ("exclude", "tuned", "boundaries")}
        (folder / "meta.json").write_text(json.dumps(meta))
        (folder / "key.json").write_text(json.dumps(key))
    return data


def per_user(frame: pd.DataFrame, score: np.ndarray, relevant: pd.Series) -> pd.DataFrame:
    """recall@20 and ndcg@10 per user with targets, from a score per candidate row."""
    d = frame[["user_id", "item_id", "label"]].assign(s=score)
    d = d.sort_values(["user_id", "s", "item_id"], ascending=[True, False, True])
    d["r"] = d.groupby("user_id").cumcount() + 1
    hits = d[d.r <= K_RECALL].groupby("user_id")["label"].sum()
    top = d[(d.r <= K_NDCG) & (d.label > 0)]
    dcg = (1.0 / np.log2(top.r + 1.0)).groupby(top.user_id).sum()
    n = relevant.astype(float)
    idcg = n.clip(upper=K_NDCG).map(
        lambda m: sum(1.0 / np.log2(r + 1.0) for r in range(1, int(m) + 1))
    )
    return pd.DataFrame({
        "recall": hits.reindex(n.index).fillna(0.0) / n,
        "ndcg": dcg.reindex(n.index).fillna(0.0) / idcg,
    })  # fmt: skip


def matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.stack(frame["features"].to_numpy()).astype(np.float32)


def fit(
    val: pd.DataFrame, val_rel: pd.Series, epochs: int, seed: int, kind: str = "mlp"
) -> tuple[R.Ranker, dict[str, Any]]:
    """The ranker on 80 % of the val users (and their lists at earlier cutoffs), its epoch count
    chosen on the other 20 %'s val lists."""
    latest = val.cutoff == val.cutoff.max()
    users = np.sort(val[latest].user_id.unique())
    rng = np.random.default_rng(seed)
    held_out = set(rng.choice(users, size=max(1, len(users) // 5), replace=False))
    is_fit = ~val.user_id.isin(held_out).to_numpy()
    x = torch.tensor(matrix(val))
    xf, yf = x[is_fit], torch.tensor(val.label.to_numpy()[is_fit], dtype=torch.float32)
    codes = pd.factorize(val.cutoff[is_fit] + "|" + val.user_id[is_fit])[0]  # a list per cutoff
    group, n = torch.tensor(codes), int(codes.max()) + 1
    chosen = ~is_fit & latest.to_numpy()  # selection: the held-out users' val lists only
    xs, sel = x[chosen], val[chosen]
    sel_rel = val_rel[val_rel.index.isin(held_out)]
    torch.manual_seed(seed)
    net = R.Ranker(x.shape[1], R.RankerSettings(kind=kind))
    net.standardize_on(xf)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    best: tuple[float, int, dict[str, Any]] = (-1.0, 0, {})
    curve = []
    for epoch in range(1, epochs + 1):
        loss = R.listwise_loss(net(xf), yf, group, n)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 10 == 0:
            with torch.no_grad():
                r = per_user(sel, net(xs).numpy(), sel_rel)["recall"].mean()
            curve.append([epoch, round(float(loss.detach()), 5), round(float(r), 5)])
            if r > best[0]:
                best = (r, epoch, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    return net, {"variant": kind, "chosen_epoch": best[1], "selection_recall_at_20": best[0], "curve": curve,
                 "fit_lists": int(n), "selection_users": len(held_out)}  # fmt: skip


def interval(diff: np.ndarray, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(REPLICATES)]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--run-date", required=True, type=dt.date.fromisoformat)
    p.add_argument("--name", required=True)
    p.add_argument("--depth", type=int, default=50, help="items per generator and user")
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-uri", default="models:/cartwheel-two-tower@candidate")
    p.add_argument("--variants", default="mlp,dcn", help="ranker variants to select from on val")
    p.add_argument("--cache", type=Path, help="folder keeping the built frames between runs")
    p.add_argument(
        "--extra-days", type=int, default=0,
        help="also fit the ranker on lists at this many cutoffs before the val start (train "
        "targets of each day; the two-tower is then left out of the candidates)",
    )  # fmt: skip
    args = p.parse_args()
    started = time.monotonic()
    data = cached_build(args)
    built = time.monotonic() - started
    fitted = [
        fit(data["val"], data["val_rel"], args.epochs, args.seed, v)
        for v in args.variants.split(",")
    ]
    net, selection = max(fitted, key=lambda f: f[1]["selection_recall_at_20"])
    selection["variants"] = {f[1]["variant"]: f[1]["selection_recall_at_20"] for f in fitted}
    test, rel = data["test"], data["test_rel"]
    gens = generators(args)
    names, feats = C.feature_names(gens), matrix(test)
    with torch.no_grad():
        scores = {"ranker": net(torch.tensor(feats)).numpy()}
    for g in gens:
        rr = feats[:, names.index(f"{g}_rr")]
        scores[g] = np.where(rr > 0, rr, -1.0)  # 1/rank orders as the generator's own list
    users = {m: per_user(test, s, rel) for m, s in scores.items()}
    methods: dict[str, Any] = {}
    for m, u in users.items():
        row = {"recall_at_20": float(u.recall.mean()), "ndcg_at_10": float(u.ndcg.mean())}
        if m != "ranker":
            for key, col in (("recall_at_20", "recall"), ("ndcg_at_10", "ndcg")):
                row[f"ranker_minus_{key}_ci"] = interval(
                    (users["ranker"][col] - u[col]).to_numpy(), args.seed
                )
        methods[m] = row
    best = max(gens, key=lambda m: methods[m]["recall_at_20"])
    doc = {
        "probe": "ranker fitted on the driver from toPandas; measures headroom, not the pipeline",
        "root": args.root, "run_date": str(args.run_date), "boundaries": data["boundaries"],
        "depth": args.depth, "exclude": data["exclude"], "generators_tuned_on_val": data["tuned"],
        "val_pairs": len(data["val"]), "test_pairs": len(test), "test_users": len(rel),
        "test_users_with_a_reachable_target": int((test.groupby("user_id").label.max() > 0).sum()),
        "selection": selection, "methods": methods, "best_generator": best,
        "ranker_over_best": {
            k: methods["ranker"][k] / methods[best][k] for k in ("recall_at_20", "ndcg_at_10")
        },
        "features": names, "seconds": {"build": round(built, 1), "total": round(time.monotonic() - started, 1)},
    }  # fmt: skip
    print(
        json.dumps({k: doc[k] for k in ("methods", "best_generator", "ranker_over_best")}, indent=1)
    )
    print(write_result(f"ranker-probe-{args.name}", doc))


if __name__ == "__main__":
    main()
