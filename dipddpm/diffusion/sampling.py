"""THE reverse-chain loop (ancestral DDPM: Ho et al. 2020, Alg. 2; DDIM: Song et al. 2021,
Eqs. 12 and 16), shared by DDPM sampling and DIP-prior DDPM.

Both samplers start from a given x_{t0} at any t0 < T on the original T-step table (a
truncated chain) and end at x_0; t0 = T-1 with x_{T-1} ~ N(0, I) is ordinary sampling.

- ancestral DDPM, one step per t = t0, ..., 0:
      x0_hat = model's x0 (clipped to [-1, 1] with clip_x0);  mean = posterior mean(x0_hat, x_t)
      x_{t-1} = mean + sigma_t z,  sigma_t^2 = beta_t (var_type beta) or the posterior variance
      (beta_tilde, log clamped at 1e-20); no noise at t = 0.
- DDIM with S steps and eta on the grid int(linspace(-1, t0, S+1)) (truncation toward zero, as
  the sources write it; t0 = T-1 gives int(linspace(-1, T-1, S+1))), pairs t -> s:
      sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s),   abar_{-1} = 1
      x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z
  With clip_x0, eps_hat is re-derived from the clipped x0_hat.

The model maps (x_t, t (B,)) to its objective's target: eps, x0 or v. Batched: every image of
the batch is at the same t.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from dipddpm.config import check, check_name
from dipddpm.diffusion.process import DiffusionProcess
from dipddpm.errors import DipddpmError
from dipddpm.registry import Registry

Objective = Literal["eps", "x0", "v"]


@dataclass(frozen=True)
class SamplerConfig:
    sampler: str = "ddpm"  # a reverse sampler (REVERSE_SAMPLERS): ddpm (every t) or ddim (S steps)
    steps: int | None = None  # DDIM steps S (<= t0 + 1); null = t0 + 1; ddpm: null or t0 + 1
    eta: float = 0.0  # DDIM noise scale: 0 = deterministic, 1 = DDPM-like posterior noise
    var_type: Literal["beta", "beta_tilde"] = "beta_tilde"  # ancestral sigma^2: beta_t / posterior
    clip_x0: bool = True  # clip the predicted x0 to [-1, 1] at every step

    def __post_init__(self) -> None:
        check_name("sampler", self.sampler, REVERSE_SAMPLERS)
        check(self.steps is None or self.steps >= 1,
              f"steps must be >= 1 (or null = every step), got {self.steps}")
        check(self.eta >= 0, f"eta must be >= 0, got {self.eta}")


def check_t0(t0: int, T: int) -> None:
    if not 0 <= t0 < T:
        raise DipddpmError(f"t0 must be in 0..{T - 1} (the model has T = {T} timesteps), got "
                           f"{t0}; use t0 = {T - 1} to sample from pure noise")


def _ancestral_pairs(t0: int, cfg: SamplerConfig) -> list[tuple[int, int]]:
    if cfg.steps is not None and cfg.steps != t0 + 1:
        raise DipddpmError(
            f"the ddpm sampler takes every step from t0 = {t0} to 0 ({t0 + 1} steps), got "
            f"steps={cfg.steps}; use sampler=ddim for fewer steps")
    return [(t, t - 1) for t in range(t0, -1, -1)]


def _ddim_pairs(t0: int, cfg: SamplerConfig) -> list[tuple[int, int]]:
    S = t0 + 1 if cfg.steps is None else cfg.steps
    if S > t0 + 1:
        raise DipddpmError(f"DDIM steps must be <= t0 + 1 = {t0 + 1}, got {S}")
    grid = [int(v) for v in np.linspace(-1, t0, S + 1)[::-1]]  # int(): truncation toward 0
    return [(t, s) for t, s in itertools.pairwise(grid) if t != s]


def time_pairs(t0: int, T: int, cfg: SamplerConfig) -> list[tuple[int, int]]:
    """The (t, s) steps of the chain from t0 down to -1 (s = -1: x_0, abar = 1)."""
    check_t0(t0, T)
    return REVERSE_SAMPLERS.get(cfg.sampler).pairs(t0, cfg)


def reverse_steps(t0: int, T: int, cfg: SamplerConfig) -> int:
    """Model evaluations of a chain started at t0."""
    return len(time_pairs(t0, T, cfg))


def model_predictions(model: Callable, process: DiffusionProcess, x_t: torch.Tensor, t: int,
                      objective: Objective, clip_x0: bool, amp: bool = False):
    """(x0_hat, eps_hat) from the model's output at timestep t (the same for the whole batch).
    amp: the model runs under bf16 autocast on x_t's device (the caller decides where:
    methods/ddpm_config.py `autocast_on`)."""
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    autocast = torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=amp)
    with autocast:
        out = model(x_t, tt)
    out = out.float()
    if objective == "eps":
        x0 = process.predict_x0(x_t, t, out)
        eps = out
    elif objective == "x0":
        x0 = out
        eps = None
    elif objective == "v":
        x0 = process.x0_from_v(x_t, t, out)
        eps = None
    else:
        raise DipddpmError(f"objective must be eps, x0 or v, got {objective!r}")
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = None
    if eps is None:
        eps = process.predict_eps(x_t, t, x0)
    return x0, eps


def ancestral_step(process: DiffusionProcess, x: torch.Tensor, x0: torch.Tensor, t: int,
                   var_type: str, noise: Callable[[], torch.Tensor]) -> torch.Tensor:
    """x_{t-1} = posterior mean(x0_hat, x_t) + sigma_t z; no noise at t = 0."""
    mean, _, log_var = process.q_posterior(x0, x, t)
    if t == 0:  # no noise at the last step
        return mean
    std = (math.sqrt(process.betas[t].item()) if var_type == "beta"
           else (0.5 * log_var).exp())
    return mean + std * noise()


def ddim_step(a_t: float, a_s: float, x0: torch.Tensor, eps: torch.Tensor, eta: float,
              noise: Callable[[], torch.Tensor]) -> torch.Tensor:
    """x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps_hat + sigma z (a = abar)."""
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    c = math.sqrt(max(1 - a_s - sigma ** 2, 0.0))
    x = math.sqrt(a_s) * x0 + c * eps
    if sigma > 0:
        x = x + sigma * noise()
    return x


@dataclass(frozen=True)
class ReverseSampler:
    """A reverse sampler: its (t, s) grid from t0 and its step x_t -> x_s."""

    pairs: Callable[[int, SamplerConfig], list[tuple[int, int]]]
    # (process, x_t, x0_hat, eps_hat, t, s, cfg, noise) -> x_s
    step: Callable[..., torch.Tensor]
    help: str
    strided: bool = False  # it takes S < t0 + 1 steps (SamplerConfig.steps); else every step


def _ancestral(process, x, x0, eps, t, s, cfg, noise):
    return ancestral_step(process, x, x0, t, cfg.var_type, noise)


def _ddim(process, x, x0, eps, t, s, cfg, noise):
    abar = process.alphas_cumprod
    return ddim_step(float(abar[t]), float(abar[s]) if s >= 0 else 1.0, x0, eps, cfg.eta, noise)


REVERSE_SAMPLERS: Registry[ReverseSampler] = Registry("reverse sampler")
REVERSE_SAMPLERS.register("ddpm")(ReverseSampler(
    _ancestral_pairs, _ancestral, "ancestral DDPM: every step from t0 to 0"))
REVERSE_SAMPLERS.register("ddim")(ReverseSampler(
    _ddim_pairs, _ddim, "DDIM: S steps (eta 0: deterministic)", strided=True))


@torch.no_grad()
def reverse_chain(model: Callable, process: DiffusionProcess, x_t0: torch.Tensor, t0: int,
                  cfg: SamplerConfig = SamplerConfig(), objective: Objective = "eps",
                  generator: torch.Generator | None = None, amp: bool = False,
                  callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Run the chain from x_{t0} (B,C,H,W) at timestep t0 down to x_0; returns x_0 in [-1,1]
    space (not clipped). `callback(i, n)` is called after each of the n steps."""
    pairs = time_pairs(t0, process.T, cfg)
    step = REVERSE_SAMPLERS.get(cfg.sampler).step
    x = x_t0.float()

    def noise() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    for i, (t, s) in enumerate(pairs):
        x0, eps = model_predictions(model, process, x, t, objective, cfg.clip_x0, amp)
        x = step(process, x, x0, eps, t, s, cfg, noise)
        if callback is not None:
            callback(i + 1, len(pairs))
    return x


def sample(model: Callable, process: DiffusionProcess, shape: tuple[int, ...],
           t0: int | None = None, cfg: SamplerConfig = SamplerConfig(),
           objective: Objective = "eps", generator: torch.Generator | None = None,
           device=None, amp: bool = False,
           callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Unconditional samples (B,C,H,W) in [0,1]: x_{t0} ~ N(0, I) (t0 = T-1 by default)."""
    t0 = process.T - 1 if t0 is None else t0
    x = torch.randn(shape, generator=generator, device=device)
    out = reverse_chain(model, process, x, t0, cfg, objective, generator, amp, callback)
    return ((out + 1) / 2).clamp(0, 1)
