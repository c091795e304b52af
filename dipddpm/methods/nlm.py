"""The second classical baseline: non-local means (Buades, Coll, Morel, CVPR 2005) through
scikit-image's `skimage.restoration.denoise_nl_means`.

A pixel becomes the weighted mean of the pixels within `patch_distance` whose surrounding
`patch_size` x `patch_size` patches look like its own, a weight decaying with the patch
distance on the scale h; with sigma given, the expected noise variance is subtracted from the
patch distances first (Buades, Coll, Morel, "Non-Local Means Denoising", IPOL 2011). Colour
images are denoised jointly (patch distances over the three channels: `channel_axis`).

Parameters for the problem's sigma, from scikit-image's documentation: its gallery example
"Non-local means denoising for preserving textures"
(https://scikit-image.org/docs/stable/auto_examples/filters/plot_nonlocal_means.html)
denoises a colour photo at sigma 0.08 (about 20/255, near our 25) with patch_size 5 (5x5
patches), patch_distance 6 (a 13x13 search window) and, with sigma passed, h = 0.6 * sigma in
fast mode and h = 0.8 * sigma in the original (slow) mode, "hand-tuned to give the
approximate best-case performance of each variant". Those are the defaults here:
h = h_factor * sigma, h_factor null meaning that rule. The Notes of `denoise_nl_means`
(scikit-image 0.26) give the pair the other way round as "a reasonable starting point"
(0.8 fast, 0.6 slow); on our 96x96 study photos at sigma 25 the fast mode's 0.8 scored 0.4 to
0.9 dB below 0.6, so the example's hand-tuned set is kept whole (h_factor=0.8 sets the Notes'
value). The function's own defaults (patch 7, distance 11, h 0.1) are tied to no noise level.
sigma is the problem's (0-255 units, as the observation was made) unless the config names
another. Like BM3D a run is one deterministic pass on CPU, reported once (methods/classical.py).
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

# h / sigma by fast_mode, sigma given: scikit-image's NL-means example (the module docstring)
H_PER_SIGMA = {True: 0.6, False: 0.8}
COLOUR_AXES = (-1, 2)  # the channel axis of the H x W x C array handed to scikit-image


@dataclass(frozen=True)
class NlmConfig:
    h_factor: float | None = None  # h = h_factor * sigma; null = scikit-image's (0.6 fast, 0.8)
    patch_size: int = 5  # patch side in pixels (scikit-image's NL-means example)
    patch_distance: int = 6  # search radius in pixels: a 13x13 window (same example)
    fast_mode: bool = True  # scikit-image's fast variant (uniform patch weights, Darbon 2008)
    sigma: float | None = None  # noise std (0-255) given to NLM; null = the problem's sigma
    # where the colour channels are: auto = from the image (3 channels: colour, 1: grey);
    # -1 (or 2) = colour, channels last; null = greyscale. Must agree with the image.
    channel_axis: Literal["auto"] | int | None = "auto"
    iters: int = 1  # one pass (the iteration axis of sweeps: a baseline reports once)

    def __post_init__(self) -> None:
        check(self.iters == 1, f"iters must be 1 (NL-means is one pass), got {self.iters}")
        check(self.h_factor is None or self.h_factor > 0,
              f"h_factor must be > 0 (h = h_factor * sigma) or null, got {self.h_factor}")
        check(self.patch_size >= 1, f"patch_size must be >= 1 pixel, got {self.patch_size}")
        check(self.patch_distance >= 1,
              f"patch_distance must be >= 1 pixel, got {self.patch_distance}")
        check(self.sigma is None or self.sigma > 0,
              f"sigma must be > 0 (0-255 units) or null (the problem's), got {self.sigma}")
        check(self.channel_axis in ("auto", None, *COLOUR_AXES),
              f"channel_axis must be auto, -1 (colour, channels last) or null (grey), got "
              f"{self.channel_axis!r}")


PRESETS: dict[str, dict[str, Any]] = {"default": {}, "tiny": {}}


def channel_axis(cfg: NlmConfig, problem: ImageProblem) -> int | None:
    """The channel axis for this image: the config's, checked against the image's channels
    (a greyscale image given a colour axis, or a colour one called grey, is refused)."""
    channels = int(problem.observed.shape[0])
    if channels not in (1, 3):
        raise DipddpmError(f"nlm takes grey or RGB images, got {channels} channels")
    if cfg.channel_axis == "auto":
        return -1 if channels == 3 else None
    if cfg.channel_axis is not None and channels == 1:
        raise DipddpmError(f"nlm: channel_axis={cfg.channel_axis} treats the image as colour, "
                           f"but {problem.name} is greyscale (1 channel); drop channel_axis "
                           f"(auto) or set channel_axis=null")
    if cfg.channel_axis is None and channels == 3:
        raise DipddpmError(f"nlm: channel_axis=null treats the image as greyscale, but "
                           f"{problem.name} has 3 colour channels; drop channel_axis (auto) "
                           f"or set channel_axis=-1")
    return cfg.channel_axis


def check_trial(cfg: NlmConfig, problem: ImageProblem) -> None:
    """Before any run (every corner of a sweep, every image of a study): the channel axis
    agrees with the image."""
    channel_axis(cfg, problem)


def nlm_params(sigma255: float, cfg: NlmConfig) -> dict[str, Any]:
    """The keyword arguments of `denoise_nl_means` for noise std `sigma255` (0-255 units) on
    an image in [0, 1]: h follows sigma (module docstring), sigma itself is passed."""
    sigma = sigma255 / 255.0
    factor = cfg.h_factor if cfg.h_factor is not None else H_PER_SIGMA[cfg.fast_mode]
    return {"h": factor * sigma, "sigma": sigma, "patch_size": cfg.patch_size,
            "patch_distance": cfg.patch_distance, "fast_mode": cfg.fast_mode}


def denoise(y: torch.Tensor, sigma255: float, cfg: NlmConfig, axis: int | None) -> torch.Tensor:
    """NL-means of y (C,H,W) in [0,1] -> (C,H,W) float32 in [0,1]."""
    from skimage.restoration import denoise_nl_means

    arr = y.detach().cpu().double().permute(1, 2, 0).numpy()  # H,W,C
    image = arr if axis is not None else arr[..., 0]
    out = denoise_nl_means(image, channel_axis=axis, **nlm_params(sigma255, cfg))
    out = out if axis is not None else out[..., None]
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float().clamp(0, 1)


def run_nlm(cfg: NlmConfig, problem: ImageProblem, report: Report = no_report, seed: int = 0,
            resume: dict | None = None, device=None) -> Result:
    """One NL-means pass (seed, resume and device do not apply: it is deterministic, on CPU)."""
    axis = channel_axis(cfg, problem)
    sigma = cfg.sigma if cfg.sigma is not None else problem.sigma
    if sigma <= 0:
        raise DipddpmError("nlm needs the noise level: the problem has sigma 0; set "
                           "--set sigma=S (0-255 units)")
    t0 = time.perf_counter()
    out = denoise(problem.observed, sigma, cfg, axis)
    return one_pass(out, problem, sigma, time.perf_counter() - t0, report)
