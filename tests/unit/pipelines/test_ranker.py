"""The ranker network and its listwise loss on hand-made tensors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from pipelines import ranker as R
from pipelines.errors import ConfigError

pytestmark = pytest.mark.unit


def test_listwise_loss_is_the_mean_cross_entropy_of_each_groups_positives() -> None:
    scores = torch.tensor([2.0, 0.0, 1.0, 1.0, 1.0, 5.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    group = torch.tensor([0, 0, 0, 1, 1, 2])  # group 2 has no positive: left out
    loss = R.listwise_loss(scores, labels, group, 3)
    first = -(2.0 - math.log(math.exp(2) + math.exp(0) + math.exp(1)))
    second = -(2 * (1.0 - math.log(2 * math.e))) / 2
    assert float(loss) == pytest.approx((first + second) / 2, rel=1e-6)


def test_listwise_loss_is_stable_for_large_scores_and_zero_without_positives() -> None:
    scores = torch.tensor([1000.0, 999.0], requires_grad=True)
    loss = R.listwise_loss(scores, torch.tensor([0.0, 1.0]), torch.tensor([0, 0]), 1)
    assert float(loss.detach()) == pytest.approx(math.log(1 + math.e), rel=1e-6)
    loss.backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    none = R.listwise_loss(scores, torch.tensor([0.0, 0.0]), torch.tensor([0, 0]), 1)
    assert float(none.detach()) == 0.0


@pytest.mark.parametrize("kind", R.KINDS)
def test_a_fitted_ranker_puts_each_lists_positive_first(kind: str) -> None:
    """Lists of 5 candidates whose positive has the largest feature 0 (on a scale of hundreds,
    which the standardisation removes) and noise elsewhere."""
    gen = torch.Generator().manual_seed(0)
    lists, per = 64, 5
    x = torch.randn(lists * per, 4, generator=gen)
    x[:, 0] = x[:, 0] * 100 + 500
    group = torch.arange(lists).repeat_interleave(per)
    labels = torch.zeros(lists * per)
    best = x[:, 0].view(lists, per).argmax(dim=1) + torch.arange(lists) * per
    labels[best] = 1.0
    torch.manual_seed(0)
    model = R.Ranker(4, R.RankerSettings(kind=kind))
    model.standardize_on(x)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = float(R.listwise_loss(model(x), labels, group, lists).detach())
    for _ in range(150):
        opt.zero_grad()
        loss = R.listwise_loss(model(x), labels, group, lists)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 4
    top = model(x).detach().view(lists, per).argmax(dim=1) + torch.arange(lists) * per
    assert (top == best).float().mean() > 0.95


def test_a_saved_ranker_keeps_its_standardisation() -> None:
    x = torch.tensor([[1.0, 7.0], [3.0, 7.0]])  # the second feature is constant
    model = R.Ranker(2, R.RankerSettings(kind="dcn", hidden=8, cross_layers=1))
    model.standardize_on(x)
    assert model.mean.tolist() == [2.0, 7.0] and model.std.tolist() == [1.0, 1.0]
    again = R.Ranker(2, R.RankerSettings(kind="dcn", hidden=8, cross_layers=1))
    again.load_state_dict(model.state_dict())
    assert torch.equal(again(x), model(x)) and again(x).shape == (2,)


def test_bad_ranker_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="invalid ranker kind 'gbdt': one of mlp, dcn"):
        R.RankerSettings(kind="gbdt")
    with pytest.raises(ConfigError, match="hidden=0"):
        R.RankerSettings(hidden=0)


def reader_batches(groups: list[int], sizes: list[int], d: int = 3) -> list[dict[str, np.ndarray]]:
    """Rows of lists ``groups`` (one row per candidate, ordered by list) cut into reader batches
    of ``sizes`` rows; a row's feature 0 is its list id, feature 1 its row number."""
    group_id = np.array(groups, dtype=np.int64)
    n = len(group_id)
    features = np.zeros((n, d), dtype=np.float32)
    features[:, 0], features[:, 1] = group_id, np.arange(n)
    rows = {"group_id": group_id, "features": features, "label": np.zeros(n, np.float32),
            "relevant": np.ones(n, np.int32)}  # fmt: skip
    cuts = np.cumsum([0, *sizes])
    assert cuts[-1] == n
    return [{k: v[a:b] for k, v in rows.items()} for a, b in itertools.pairwise(cuts)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_group_batches_keep_every_list_whole_across_reader_batches(shuffle: bool) -> None:
    # list 7 spans the first two reader batches, list 9 the last three
    groups = [5, 5, 7, 7, 7, 8, 9, 9, 9, 9, 9]
    batches = list(
        R.group_batches(reader_batches(groups, [3, 3, 2, 3]), 2, 0, shuffle, buffer_lists=2)
    )
    rows = np.concatenate([b["features"][:, 1] for b in batches])
    assert sorted(rows.tolist()) == list(range(len(groups)))  # every row once
    seen = []
    for b in batches:
        ids = b["group_id"]
        assert int(b["groups"][0]) == len(np.unique(ids)) <= 2
        # ``group`` numbers the batch's lists 0..n-1 and follows group_id exactly
        assert sorted(set(zip(b["group"].tolist(), ids.tolist(), strict=True))) == sorted(
            set(enumerate(dict.fromkeys(ids.tolist())))
        )
        seen += list(dict.fromkeys(ids.tolist()))
    assert sorted(seen) == [5, 7, 8, 9]  # no list cut in two
    for g, size in ((5, 2), (7, 3), (8, 1), (9, 5)):
        assert sum(int((b["group_id"] == g).sum()) for b in batches) == size


def test_recall_sums_count_each_lists_hits_in_its_top_k_over_its_targets() -> None:
    t = {
        "y": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]),
        "relevant": torch.tensor([3.0, 3.0, 3.0, 1.0, 1.0]),  # list 0 had a target not proposed
        "group": torch.tensor([0, 0, 0, 1, 1]),
    }
    scores = torch.tensor([0.9, 0.8, 0.1, 0.7, 0.2])
    total, lists = R.recall_sums(scores, t, 2, k=2)
    # list 0: top 2 = rows 0 and 1, one hit of 3 targets; list 1: top 2 = both rows, one hit
    assert lists == 2 and total == pytest.approx(1 / 3 + 1.0)


def toy_lists(lists: int, per: int, seed: int) -> dict[str, np.ndarray]:
    """Lists whose positive is the candidate with the largest feature 0 (scale 100)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(lists * per, 4)).astype(np.float32)
    x[:, 0] = x[:, 0] * 100 + 500
    label = np.zeros(lists * per, np.float32)
    label[x[:, 0].reshape(lists, per).argmax(axis=1) + np.arange(lists) * per] = 1.0
    return {"group_id": np.repeat(np.arange(lists, dtype=np.int64) + seed * 10_000, per),
            "features": x, "label": label, "relevant": np.ones(lists * per, np.int32)}  # fmt: skip


@pytest.mark.parametrize("average", [0.0, 0.9])
def test_fit_ranker_learns_the_lists_and_picks_its_best_epoch_on_selection(average: float) -> None:
    """With ``average``, the epochs are judged and the ranker kept with the averaged weights."""
    from pipelines.train import SingleProcess

    data = {"fit": toy_lists(96, 5, 1), "select": toy_lists(32, 5, 2)}
    seen: list[dict] = []

    def open_split(split: str, epoch: int) -> list[dict[str, np.ndarray]]:
        rows = data[split]
        return [
            {k: v[a : a + 100] for k, v in rows.items()} for a in range(0, len(rows["label"]), 100)
        ]

    model, outcome = R.fit_ranker(
        comm=SingleProcess(), dim=4, settings=R.RankerSettings(),
        fit=R.FitSettings(epochs=12, patience=12, lists_per_batch=16, learning_rate=0.02,
                          selection_k=1, average=average),
        open_split=open_split, device=torch.device("cpu"), on_epoch=seen.append,
    )  # fmt: skip
    assert outcome.fit == {"rows": 480, "positives": 96, "lists": 96}
    assert (
        outcome.epochs_run == list(range(1, 13))
        and [r["epoch"] for r in seen] == outcome.epochs_run
    )
    recalls = [r["selection_recall_at_1"] for r in outcome.history]
    assert outcome.best_selection_recall == max(recalls) > 0.9
    assert outcome.best_epoch == recalls.index(max(recalls)) + 1
    # the returned ranker is the best epoch's, and it scores raw (unstandardised) vectors
    sel = data["select"]
    with torch.no_grad():
        scores = model(torch.as_tensor(sel["features"])).numpy().reshape(32, 5)
    top1 = sel["label"].reshape(32, 5)[np.arange(32), scores.argmax(axis=1)].mean()
    assert top1 == pytest.approx(outcome.best_selection_recall)


def test_fit_settings_name_a_bad_value() -> None:
    with pytest.raises(ConfigError, match="lists_per_batch=0"):
        R.FitSettings(lists_per_batch=0)
    with pytest.raises(ConfigError, match="learning_rate=0"):
        R.FitSettings(learning_rate=0)
    with pytest.raises(ConfigError, match=r"average=1.0: must be in \[0, 1\)"):
        R.FitSettings(average=1.0)
