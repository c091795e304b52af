"""Image quality metrics (PSNR; SSIM: Wang et al., IEEE TIP 2004) and best-so-far tracking.

PSNR = 10 log10(1/MSE) over all C*H*W values, data_range 1, prediction clipped to [0, 1].
SSIM is a tensor re-implementation of `skimage.metrics.structural_similarity(gt, pred,
data_range=1.0, channel_axis=-1)` with its other arguments at their defaults (7x7 uniform window,
K1 = 0.01, K2 = 0.03, sample covariance); tests check it against scikit-image. It runs on the
tensors' device, so metrics every few iterations do not stall a GPU loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

METRIC_DEFINITIONS = {
    "psnr": "10*log10(1/MSE) over all C*H*W values, data_range=1, prediction clipped to [0,1]",
    "ssim": "skimage.metrics.structural_similarity(gt, pred, data_range=1.0, channel_axis=-1) "
            "defaults (win 7 uniform, K1=0.01, K2=0.03, sample covariance); torch "
            "re-implementation checked against scikit-image",
}


def psnr(pred: torch.Tensor, target: torch.Tensor, uint8: bool = False) -> float:
    """PSNR in dB of pred vs target, both (C,H,W) or (B,C,H,W) in [0,1]."""
    pred = pred.detach().clamp(0, 1)
    target = target.detach()
    if uint8:  # one source truncates to uint8 and uses data_range 255
        pred = (pred * 255).to(torch.uint8).double() / 255
        target = (target * 255).to(torch.uint8).double() / 255
    mse = F.mse_loss(pred.double(), target.double()).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _ssim_map(x: torch.Tensor, y: torch.Tensor, win: int) -> torch.Tensor:
    """SSIM at every valid window position of (N,1,H,W) float64 images."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    n = win * win
    cov_norm = n / (n - 1)

    def mean(v):  # the valid region equals scikit-image's cropped reflect-padded filter
        return F.avg_pool2d(v, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(pred: torch.Tensor, target: torch.Tensor, win: int = 7) -> float:
    """Mean SSIM of pred vs target, (C,H,W) in [0,1], as scikit-image computes it."""
    x = pred.detach().clamp(0, 1).double().reshape(-1, 1, *pred.shape[-2:])  # (C,1,H,W)
    y = target.detach().double().reshape(-1, 1, *target.shape[-2:])
    return _ssim_map(x, y, win).mean().item()


def ssim_each(pred: torch.Tensor, target: torch.Tensor, win: int = 7) -> torch.Tensor:
    """`ssim` of each image of a batch, (B,C,H,W) -> (B,) float64, left on the device."""
    B = pred.shape[0]
    x = pred.detach().clamp(0, 1).double().reshape(-1, 1, *pred.shape[-2:])  # (B*C,1,H,W)
    y = target.detach().double().reshape(-1, 1, *target.shape[-2:])
    return _ssim_map(x, y, win).reshape(B, -1).mean(1)


@dataclass
class BestTracker:
    """Best value so far, its iteration, and the first iteration reaching a threshold."""

    threshold: float | None = None
    best: float = -math.inf
    best_iter: int = 0
    first_reach_iter: int | None = None

    def update(self, it: int, value: float) -> None:
        if value > self.best:
            self.best, self.best_iter = value, it
        if (self.threshold is not None and self.first_reach_iter is None
                and value >= self.threshold):
            self.first_reach_iter = it

    def state_dict(self) -> dict:
        return dict(best=self.best, best_iter=self.best_iter,
                    first_reach_iter=self.first_reach_iter)

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_iter = d["best"], d["best_iter"]
        self.first_reach_iter = d["first_reach_iter"]
