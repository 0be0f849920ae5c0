"""The ranker network and its listwise loss on hand-made tensors."""

from __future__ import annotations

import math

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
