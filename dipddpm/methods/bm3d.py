"""The classical baseline: BM3D (Dabov et al. 2007) through the `bm3d` package.

Grey images use `bm3d.bm3d`; colour images CBM3D (`bm3d.bm3d_rgb`: the opponent colour
transform, grouping on luminance). The noise level is the problem's sigma (0-255 units, as the
observation was made) unless the config names another. BM3D has no iterations: a run is one
pass, reported once, with the same report keys and summary metrics as a DIP fit
(methods/keys.py; its "best" is its only output), so it sits in the same sweep tables and
studies on the same observations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from dipddpm.config import check
from dipddpm.data.images import ImageProblem
from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.classical import one_pass


@dataclass(frozen=True)
class Bm3dConfig:
    profile: Literal["np", "vn", "high", "deb"] = "np"  # the package's profiles (its
    # "refilter" fails in bm3d 4.0.3: its residual padding does not broadcast)
    colorspace: Literal["opp", "YCbCr"] = "opp"  # CBM3D's colour transform (RGB images)
    sigma: float | None = None  # noise std (0-255) given to BM3D; null = the problem's sigma
    iters: int = 1  # one pass (the iteration axis of sweeps: a baseline reports once)

    def __post_init__(self) -> None:
        check(self.iters == 1, f"iters must be 1 (BM3D is one pass), got {self.iters}")
        check(self.sigma is None or self.sigma > 0,
              f"sigma must be > 0 (0-255 units) or null (the problem's), got {self.sigma}")


PRESETS: dict[str, dict[str, Any]] = {"default": {}, "tiny": {}}


def denoise(y: torch.Tensor, sigma255: float, cfg: Bm3dConfig) -> torch.Tensor:
    """BM3D / CBM3D of y (C,H,W) in [0,1] -> (C,H,W) float32 in [0,1]."""
    import bm3d

    arr = y.detach().cpu().double().permute(1, 2, 0).numpy()  # H,W,C
    if arr.shape[2] == 3:
        out = bm3d.bm3d_rgb(arr, sigma255 / 255.0, profile=cfg.profile,
                            colorspace=cfg.colorspace)
    elif arr.shape[2] == 1:
        out = bm3d.bm3d(arr[..., 0], sigma255 / 255.0, profile=cfg.profile)[..., None]
    else:
        raise DipddpmError(f"bm3d takes grey or RGB images, got {arr.shape[2]} channels")
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float().clamp(0, 1)


def run_bm3d(cfg: Bm3dConfig, problem: ImageProblem, report: Report = no_report,
             seed: int = 0, resume: dict | None = None, device=None) -> Result:
    """One BM3D pass (seed, resume and device do not apply: it is deterministic, on CPU)."""
    sigma = cfg.sigma if cfg.sigma is not None else problem.sigma
    if sigma <= 0:
        raise DipddpmError("bm3d needs the noise level: the problem has sigma 0; set "
                           "--set sigma=S (0-255 units)")
    t0 = time.perf_counter()
    out = denoise(problem.observed, sigma, cfg)
    return one_pass(out, problem, sigma, time.perf_counter() - t0, report)
