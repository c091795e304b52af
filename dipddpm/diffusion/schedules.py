"""Beta schedules (docs/methods.md): pure functions `(T, **params) -> float64 tensor (T,)`.

A committed name never changes meaning: add a new name instead of editing one.
Timesteps are 0-based: betas[t] for t in 0..T-1, alphas_cumprod[t] = prod_{s<=t} (1 - betas[s]).
"""

from __future__ import annotations

import math

import torch

from dipddpm.errors import ConfigError
from dipddpm.registry import Registry

SCHEDULES: Registry = Registry("beta schedule")


def _betas_from_alphas_cumprod(abar: torch.Tensor, min_beta: float, max_beta: float):
    """abar holds T+1 values at tau = k/T; beta_k = 1 - abar_{k+1}/abar_k, clipped."""
    if not 0 <= min_beta < max_beta < 1:
        raise ConfigError(f"need 0 <= min_beta < max_beta < 1 (the clip of beta_t), got "
                          f"min_beta={min_beta}, max_beta={max_beta}; e.g. min_beta=1e-4")
    abar = abar / abar[0]
    betas = 1.0 - abar[1:] / abar[:-1]
    return betas.clamp(min_beta, max_beta)


def linear(T: int, beta_start: float = 1e-4, beta_end: float = 0.02, scale_with_T: bool = True):
    """Ho et al.: linspace(1e-4, 0.02, T), scaled by 1000/T so any T matches T = 1000's SNR."""
    scale = 1000.0 / T if scale_with_T else 1.0
    return torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64)


def cosine(T: int, s: float = 0.008, min_beta: float = 0.0, max_beta: float = 0.999):
    """Nichol & Dhariwal: abar(tau) = f(tau)/f(0), f(tau) = cos^2(((tau + s)/(1 + s)) * pi/2)."""
    tau = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
    return _betas_from_alphas_cumprod(f, min_beta, max_beta)


def sigmoid(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
            max_beta: float = 0.999):
    """Sigmoid abar(t) (the lucidrains variant, not diffusers' 'sigmoid' betas)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    abar = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return _betas_from_alphas_cumprod(abar, 0.0, max_beta)


# registered after definition (not as decorators), so mutation testing reaches them
SCHEDULES.register("linear")(linear)
SCHEDULES.register("cosine")(cosine)
SCHEDULES.register("sigmoid")(sigmoid)


def make_betas(name: str, T: int, **params) -> torch.Tensor:
    """Look up `name` and build its (T,) float64 betas; bad params give a ConfigError."""
    if not isinstance(T, int) or T < 1:
        raise ConfigError(f"timesteps must be a positive integer, got {T!r}; e.g. 1000")
    from dipddpm.config import checked

    fn = SCHEDULES.get(name)
    try:
        betas = fn(T, **checked(fn, params, skip=1))  # types: scale_with_T=maybe, min_beta=abc
    except ConfigError as e:
        raise ConfigError(f"beta schedule {name!r}: {e}") from None
    if not ((betas > 0).all() and (betas < 1).all()):
        raise ConfigError(
            f"beta schedule {name!r} at T={T} gives betas outside (0, 1) (max "
            f"{betas.max().item():.4g}); the linear schedule scales by 1000/T, so use "
            f"T >= 21 or scale_with_T=false")
    return betas
