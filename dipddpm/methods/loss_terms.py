"""The fitting loop's loss seam: a plan's loss is a sum of terms, each per member.

Per iteration the loop hands every term the same `LossInputs` (K members at once) and
backpropagates the sum over members of the sum of the terms: member i's loss depends only on
member i's output, input, noise level and generator, so each member gets exactly its own
gradient, and a fused fit equals K separate ones. A term returns (K,) values, on the device,
without reading anything back to the host.

Terms are registered by name in `LOSSES`, each entry the only place that knows its term:

    mse           mean((f(z_j) - y_k)^2)                      every DIP fit's (the default)
    tv            lambda mean_pixels |grad f(z_j)|            DIP-TV (methods/dip_tv.py)
    autoencoding  lambda mean((f(z_j) - z_j)^2)               aSeqDIP (methods/aseq_dip.py)
    sure          ||y - f||^2/N - s^2 + 2 s^2/N div           DIP-SURE (methods/dip_sure.py)

Every registered term has defaults for all of its parameters, so `LOSSES.get(name)()` is a
working example (the seam tests run every entry that way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dipddpm.registry import Registry

LOSSES: Registry = Registry("loss term")


@dataclass(frozen=True)
class LossInputs:
    """What a loss term may read at one iteration, all K members at once."""

    out: torch.Tensor  # (K, C, H, W) the members' outputs f(z_j), with their graph
    target: torch.Tensor  # (K, C, H, W) the current stage's targets (the observation y)
    z: torch.Tensor  # (K, D, H, W) the input actually fed, z_j
    net: Callable[[torch.Tensor], torch.Tensor]  # the fused net on (K, D, H, W) inputs
    sigma: torch.Tensor  # (K,) each member's noise std in [0, 1] units (nan: not known)
    gens: list[torch.Generator]  # each member's own generator (probes are drawn from it)

    @property
    def K(self) -> int:
        return self.out.shape[0]

    def per_member(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        """One draw per member from its own generator, stacked: (K, ...)."""
        return torch.stack([draw(g) for g in self.gens])


class LossTerm:
    """A term of the loss: `terms(x)` is (K,), member i's value from member i's inputs."""

    def __call__(self, x: LossInputs) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Mse(LossTerm):
    """mean((f(z_j) - y_k)^2) per member: the DIP loss (computed member by member exactly as
    the loop always has, so plain DIP's numbers do not move)."""

    def __call__(self, x: LossInputs) -> torch.Tensor:
        return torch.stack([F.mse_loss(x.out[i:i + 1], x.target[i:i + 1])
                            for i in range(x.K)])


LOSSES.register("mse")(Mse)
MSE = (Mse(),)  # the default loss of a plan: MSE alone


def total(terms: tuple[LossTerm, ...], x: LossInputs) -> torch.Tensor:
    """The members' losses (K,): the sum of the terms (one term: that term itself)."""
    out = terms[0](x)
    for term in terms[1:]:
        out = out + term(x)
    return out


def mean_per_member(v: torch.Tensor) -> torch.Tensor:
    """(K, ...) -> (K,): the mean over everything but the member dimension."""
    return v.flatten(1).mean(1)
