"""The fitting loop's input seam: what a plan feeds its net, per member.

An input rule sets the net's input z (K, D, H, W) at the start, may change it when a stage
starts or after an iteration, and says how many channels the net takes. Every change it makes
is to `FitState.z` (the loop's checkpointed state), so a resumed fit equals an uninterrupted
one. At every iteration the loop feeds z_j = z + reg_noise_std * n_j (n_j drawn from each
member's generator; reg_noise_std 0 feeds z itself). A rule draws only from each member's own
generator, so a fused fit equals K separate fits.

Rules by name in `INPUTS` (each entry the only place that knows its rule):

    fixed          z drawn once (U(0, scale) or N(0, scale^2), input_depth channels): DIP's;
                   a new z at every stage when the plan asks for it (guided-DIP code)
    observation    z = the observation y itself (DIP-SURE, methods/dip_sure.py)
    feedback       z_0 = y, then z <- the last output every m iterations (aSeqDIP,
                   methods/aseq_dip.py)
    noised_estimate  x_s = x_hat + sigma_s eps at every stage, x_hat <- the stage's last
                   output (self-diffusion, methods/self_diffusion.py)

Every registered rule has defaults for all of its parameters (`INPUTS.get(name)()` works).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dipddpm.registry import Registry

INPUTS: Registry = Registry("input rule")


def draw_input(cfg, shape, g: torch.Generator, device) -> torch.Tensor:
    """DIP's z: U(0, 1) x input_scale or N(0, 1) x input_scale, from generator g."""
    if cfg.input_noise == "uniform":
        return torch.rand(shape, generator=g, device=device) * cfg.input_scale
    return torch.randn(shape, generator=g, device=device) * cfg.input_scale


class InputRule:
    """The default behaviour of every hook (none changes anything); see the module doc."""

    def in_channels(self, cfg, channels: int) -> int:
        """The net's input channels for images of `channels` channels."""
        return channels

    def initial(self, cfg, y: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """z before the first iteration, (K, D, H, W)."""
        raise NotImplementedError

    def stage_start(self, loop: Any, st: Any, k: int) -> None:
        """Stage k's first iteration is about to run (st.j iterations done)."""

    def after(self, loop: Any, st: Any, out: torch.Tensor) -> None:
        """Iteration st.j (1-based, done) gave outputs `out` (K, C, H, W), detached."""


@dataclass(frozen=True)
class FixedInput(InputRule):
    """DIP's fixed z (redrawn at each stage when the plan resamples its input)."""

    def in_channels(self, cfg, channels: int) -> int:
        return cfg.input_depth

    def initial(self, cfg, y, gens):
        H, W = y.shape[-2:]
        return torch.cat([draw_input(cfg, (1, cfg.input_depth, H, W), g, y.device)
                          for g in gens])

    def stage_start(self, loop, st, k: int) -> None:
        if st.j > 0 and loop.plan().resample_input_each_stage:
            st.z = torch.cat([draw_input(loop.cfg, (1, *st.z.shape[1:]), g, loop.dev)
                              for g in st.gens])


@dataclass(frozen=True)
class ObservationInput(InputRule):
    """z = y: the net maps the noisy observation to its estimate (C input channels)."""

    def initial(self, cfg, y, gens):
        return y.clone()


INPUTS.register("fixed")(FixedInput)
INPUTS.register("observation")(ObservationInput)
FIXED = FixedInput()  # the default input of a plan
