"""A batch of images tiled into one image (the DDPM's sample sheets)."""

from __future__ import annotations

import math

import torch


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """(B,C,H,W) in [0,1] -> one (C, rows*(H+pad)+pad, cols*(W+pad)+pad) image, white gaps."""
    B, C, H, W = images.shape
    cols = nrow or math.ceil(math.sqrt(B))
    rows = math.ceil(B / cols)
    grid = torch.ones(C, rows * (H + pad) + pad, cols * (W + pad) + pad)
    for i in range(B):
        r, c = divmod(i, cols)
        top, left = pad + r * (H + pad), pad + c * (W + pad)
        grid[:, top:top + H, left:left + W] = images[i].detach().cpu()
    return grid
