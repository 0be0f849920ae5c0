"""The second stage's model, without I/O: a network that scores each (user, item) candidate from
its ``pipelines.candidates`` feature vector, and the listwise loss it is fitted with.

A ranker is fitted on lists: every candidate row belongs to one group (a user at one cutoff),
and the loss is the softmax cross-entropy of the group's positives against all its candidates.
The network standardises its input with the mean and spread of the rows it was fitted on; both
are buffers of the module, so a saved ranker scores raw feature vectors as it was trained to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipelines.errors import ConfigError

KINDS = ("mlp", "dcn")


@dataclass(frozen=True, kw_only=True)
class RankerSettings:
    kind: str = "mlp"  # mlp: one hidden layer; dcn: cross layers beside a deep MLP (DCN-v2)
    hidden: int = 32
    cross_layers: int = 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"invalid ranker kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.hidden < 1 or self.cross_layers < 1:
            raise ConfigError(
                f"invalid ranker size hidden={self.hidden}, cross_layers={self.cross_layers}: "
                "each must be at least 1"
            )


class CrossNetwork(nn.Module):
    """DCN-v2: cross layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, which multiply features
    explicitly, beside a deep MLP; one linear output over both."""

    def __init__(self, d: int, layers: int, hidden: int) -> None:
        super().__init__()
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.deep = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(d + hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x
        for layer in self.cross:
            c = x * layer(c) + c
        return self.out(torch.cat([c, self.deep(x)], dim=1))


class Ranker(nn.Module):
    """(rows, d) raw feature vectors -> (rows,) scores; higher ranks first."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, d: int, settings: RankerSettings | None = None) -> None:
        super().__init__()
        s = settings or RankerSettings()
        self.settings = s
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        if s.kind == "mlp":
            self.net: nn.Module = nn.Sequential(
                nn.Linear(d, s.hidden), nn.ReLU(), nn.Linear(s.hidden, 1)
            )
        else:
            self.net = CrossNetwork(d, s.cross_layers, s.hidden)

    def standardize_on(self, x: torch.Tensor) -> None:
        """Take the mean and spread of ``x`` (the fitting rows) as the input's standardisation;
        a constant feature keeps spread 1 instead of dividing by zero."""
        std = x.std(dim=0, unbiased=False)
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(1)


def listwise_loss(
    scores: torch.Tensor, labels: torch.Tensor, group: torch.Tensor, groups: int
) -> torch.Tensor:
    """Scores, 0/1 labels and group ids (0 .. groups-1) of candidate rows -> the mean over the
    groups with a positive of -(sum of the positives' log softmax within the group) / positives.
    A group without a positive teaches nothing and is left out; none at all gives 0."""
    top = torch.full((groups,), float("-inf"), dtype=scores.dtype).scatter_reduce(
        0, group, scores.detach(), "amax", include_self=True
    )
    shifted = scores - top[group]  # the group's max subtracted: exp cannot overflow
    z = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, torch.exp(shifted))
    logp = shifted - torch.log(z[group])
    positives = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, labels)
    gain = torch.zeros(groups, dtype=scores.dtype).index_add_(0, group, logp * labels)
    has = positives > 0
    if not bool(has.any()):
        return scores.sum() * 0.0
    return -(gain[has] / positives[has]).mean()
