"""The DDPM training loss (Ho et al., NeurIPS 2020): the net's prediction at
x_t = q_sample(x0, t, eps) against the objective's target (eps, x0 or v), a per-example MSE
times a weight that makes the three objectives weight timesteps alike (eps: 1, x0: SNR,
v: SNR / (SNR + 1); with min_snr_gamma, SNR is clipped at gamma in the numerator)."""

from __future__ import annotations

import torch
from torch import nn

from dipddpm.diffusion import DiffusionProcess


def loss_weight(process: DiffusionProcess, t: torch.Tensor, objective: str,
                min_snr_gamma: float | None) -> torch.Tensor:
    """Per-example weight (B,) making eps, x0 and v losses weight timesteps alike."""
    snr = process.snr.to(t.device)[t]
    clipped = snr.clamp(max=min_snr_gamma) if min_snr_gamma is not None else snr
    if objective == "eps":
        return clipped / snr
    if objective == "x0":
        return clipped
    return clipped / (snr + 1)


def diffusion_loss(net: nn.Module, process: DiffusionProcess, x0: torch.Tensor,
                   t: torch.Tensor, noise: torch.Tensor, objective: str,
                   min_snr_gamma: float | None = None, amp: bool = False) -> torch.Tensor:
    """Weighted MSE of the net's prediction at x_t = q_sample(x0, t, noise); x0 in [-1, 1].
    amp: bf16 autocast on x0's device (the caller decides: `autocast_on`)."""
    x_t = process.q_sample(x0, t, noise)
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(x_t, t)
    if objective == "eps":
        target = noise
    elif objective == "x0":
        target = x0
    else:
        target = process.velocity(x0, t, noise)
    mse = (out.float() - target).square().flatten(1).mean(1)  # (B,)
    return (mse * loss_weight(process, t, objective, min_snr_gamma).to(mse.dtype)).mean()
