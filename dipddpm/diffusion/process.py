"""The DDPM forward (noising) process and its posterior; owns no network.

Holds every buffer derived from the betas in float64 and casts on use. Timesteps are 0-based
(docs/methods.md, Conventions). Samplers take (model, process, ...) and run the reverse loop
elsewhere.
"""

from __future__ import annotations

import torch

from dipddpm.diffusion.schedules import make_betas
from dipddpm.errors import ConfigError


def _gather(buf: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """buf[t] shaped (B,1,1,...) to broadcast against `like`, in like's dtype and device."""
    if not torch.is_tensor(t):
        t = torch.full((like.shape[0],), int(t), dtype=torch.long)
    out = buf.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


class DiffusionProcess:
    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas).to(torch.float64)
        if not (betas.dim() == 1 and betas.numel() > 0 and (betas > 0).all()
                and (betas <= 1).all()):
            span = (f", range [{betas.min().item():.4g}, {betas.max().item():.4g}]"
                    if betas.numel() else "")
            raise ConfigError(f"betas must be one value per timestep (at least one), each in "
                              f"(0, 1]; got shape {tuple(betas.shape)}{span}; build them with "
                              f"make_betas(name, T)")
        self.betas = betas  # (T,)
        self.T = betas.shape[0]
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64),
                                              self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()
        # q(x_{t-1} | x_t, x_0) = N(coef1 * x_0 + coef2 * x_t, posterior_variance)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (
            1.0 - self.alphas_cumprod)
        # log clamped at 1e-20: the posterior variance is 0 at t = 0
        self.posterior_log_variance_clipped = self.posterior_variance.clamp(min=1e-20).log()
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (
            1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (
            1.0 - self.alphas_cumprod)
        self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    @classmethod
    def from_schedule(cls, name: str, T: int, **params) -> DiffusionProcess:
        return cls(make_betas(name, T, **params))

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
        if noise is None:
            noise = torch.randn_like(x0)
        return (_gather(self.sqrt_alphas_cumprod, t, x0) * x0
                + _gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def predict_x0(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        return (_gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
                - _gather(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)

    def predict_eps(self, x_t: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        return ((_gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0)
                / _gather(self.sqrt_recipm1_alphas_cumprod, t, x_t))

    def velocity(self, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho)."""
        return (_gather(self.sqrt_alphas_cumprod, t, x0) * eps
                - _gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0)

    def x0_from_v(self, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
        return (_gather(self.sqrt_alphas_cumprod, t, x_t) * x_t
                - _gather(self.sqrt_one_minus_alphas_cumprod, t, x_t) * v)

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0)."""
        mean = (_gather(self.posterior_mean_coef1, t, x_t) * x0
                + _gather(self.posterior_mean_coef2, t, x_t) * x_t)
        return (mean, _gather(self.posterior_variance, t, x_t),
                _gather(self.posterior_log_variance_clipped, t, x_t))
