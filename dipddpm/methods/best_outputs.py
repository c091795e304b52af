"""Each member's output at its best psnr_gt so far, raw and smoothed, kept on the device.

An output rule that reports an ensemble at the oracle best (output_rules.py) needs every
replicate's best output. The loop's MSEs against the clean image are already on the device
(the (K, 3) row it reads back at reports), so the best is kept by a masked copy per iteration:
no host sync, whatever the report period. A lower MSE is a higher PSNR, so the kept outputs are
those of `psnr_gt_best` and `psnr_gt_sm_best` (the first of equal values).
"""

from __future__ import annotations

import torch


class OracleOutputs:
    """images[0]: each member's raw output at its lowest MSE; images[1]: the smoothed."""

    def __init__(self, like: torch.Tensor) -> None:
        K = like.shape[0]
        self.best = torch.full((K, 2), float("inf"), dtype=torch.float64, device=like.device)
        self.images = torch.zeros((2, *like.shape), dtype=like.dtype, device=like.device)

    @torch.no_grad()
    def update(self, mse: torch.Tensor, raw: torch.Tensor, smoothed: torch.Tensor) -> None:
        """mse: (K, 2) of the raw and smoothed outputs against the clean image."""
        better = mse.double() < self.best
        self.best = torch.where(better, mse.double(), self.best)
        for c, out in enumerate((raw, smoothed)):
            mask = better[:, c].view(-1, *([1] * (out.dim() - 1)))
            self.images[c].copy_(torch.where(mask, out, self.images[c]))

    def state_dict(self) -> dict:
        return {"best": self.best.detach().cpu().clone(),
                "images": self.images.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.best.copy_(state["best"])
        self.images.copy_(state["images"])
