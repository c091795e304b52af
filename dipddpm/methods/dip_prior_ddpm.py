"""Method 4, DIP-prior DDPM (docs/methods.md): a DIP estimate, noised to t0, finished by a
trained DDPM.

Stage A, the DIP estimate x_dip in [0,1] (`dip_prior_mode`):
  fit_observation (DEFAULT)  DIP fitted to the noisy y for dip_iters iterations (run_dip, §2)
  noise_passes (MNIST source)  the DIP net (fitted to y for dip_iters iterations, or untrained
                               when dip_iters = 0) applied dip_passes times to fresh N(0, I)
                               noise, x <- f(x), BatchNorm in train mode
Hand-off: x_start = 2 x_dip - 1 (rescale_prior) and x_{t0} = sqrt(abar_t0) x_start +
sqrt(1 - abar_t0) eps (init_mode q_sample), x_{t0} = x_start (direct) or x_{t0} =
sqrt(abar_t0) x_start with no fresh noise (scaled: the DMID hand-off, the estimate's own
residual noise standing in for the forward noise).
t0 auto: the estimate's remaining noise sigma_hat (skimage.restoration.estimate_sigma, in [0,1]
units) picks the t whose forward noise per unit signal matches it in the DDPM's [-1,1] space:
t0 = argmin_t | sqrt((1 - abar_t) / abar_t) - 2 sigma_hat |.
Stage B: the shared reverse chain (diffusion/sampling.py) from t0 to 0. t0 = 0 is the identity
(t = 0 is the input itself): the DIP estimate is returned unchanged and no reverse step runs.

Same-budget baselines, with the same sampler and number of reverse steps: the DDPM started from
the observation y (SDEdit: the same hand-off with y in place of x_dip) and from pure noise (DDIM
from T-1 with that many steps: an unconditional sample, the no-information floor).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from dipddpm.checkpoint import read_checkpoint
from dipddpm.config import check, check_name
from dipddpm.data.images import ImageProblem, load_image, make_image_problem
from dipddpm.diffusion.sampling import (
    REVERSE_SAMPLERS,
    SamplerConfig,
    check_t0,
    reverse_chain,
    reverse_steps,
    time_pairs,
)
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.ddpm_checkpoint import Trained, load_ddpm
from dipddpm.methods.ddpm_config import autocast_on
from dipddpm.methods.device import pick_device
from dipddpm.methods.dip import DipConfig, run_dip
from dipddpm.methods.problems import check_image_spec
from dipddpm.metrics import psnr, ssim
from dipddpm.nn import NETS, build_net, min_size, size_multiple
from dipddpm.nn.sizes import build_for_problem

# dip_output -> the image of the DIP result that is the estimate
DIP_IMAGES = {"final": "output", "smoothed": "output_sm"}

@dataclass(frozen=True)
class DipPriorDdpmConfig:
    checkpoint: str = ""  # the trained DDPM (`dipddpm fit ddpm` writes OUT/ddpm.pt); required
    use_ema: bool = True  # sample with the checkpoint's EMA weights when it has them
    dip_prior_mode: Literal["fit_observation", "noise_passes"] = "fit_observation"  # stage A
    dip_iters: int = 1800  # DIP iterations on y (paper 1800); noise_passes: 0 = untrained net
    dip_lr: float = 0.01  # DIP Adam learning rate
    dip_net: str = "skip"  # DIP net: skip, skip_snail, skip_small, unet, segnet
    dip_width: int | None = None  # DIP channels per scale; null = the net's own
    dip_depth: int | None = None  # DIP scales; null = the net's own, fewer if the image is
    # too small for it (a 5-scale skip net cannot take 32x32); H, W % 2^depth == 0
    dip_input_depth: int = 32  # channels of DIP's input z (noise_passes: = image channels)
    dip_reg_noise_std: float = 1.0 / 30  # DIP input perturbation std per iteration
    dip_smoothing: float = 0.99  # DIP output smoothing (for dip_output = smoothed)
    dip_backtracking: bool = True  # DIP backtracking on psnr_noisy drops
    dip_output: Literal["final", "smoothed"] = "final"  # which DIP output is the estimate
    dip_passes: int = 2  # noise_passes: times the net is applied (source: k = 2; 1-3 best)
    dip_report_every: int = 50  # report DIP progress every this many iterations
    rescale_prior: bool = True  # x_start = 2 x_dip - 1 (DDPM space); false: x_start = x_dip
    # noise x_start to t0, use it as is, or scale it by sqrt(abar_t0) without fresh noise
    init_mode: Literal["q_sample", "direct", "scaled"] = "q_sample"
    # start step of the reverse chain (0-based, < T); 0 = return x_dip unchanged; auto = the
    # step whose noise matches the DIP estimate's remaining noise (see the module docstring)
    t0: int | Literal["auto"] = 20
    sampler: str = "ddpm"  # the reverse chain's sampler (REVERSE_SAMPLERS): ddpm or ddim
    steps: int | None = None  # DDIM steps (<= t0 + 1); null = t0 + 1
    eta: float = 0.0  # DDIM eta
    var_type: Literal["beta", "beta_tilde"] = "beta_tilde"  # ancestral variance
    clip_x0: bool = True  # clip the predicted x0 to [-1, 1] at every step
    baselines: bool = True  # also run the same-budget DDPM from y and from pure noise

    def __post_init__(self) -> None:
        check(self.dip_iters >= 0, f"dip_iters must be >= 0, got {self.dip_iters}")
        check(self.dip_iters >= 1 or self.dip_prior_mode == "noise_passes",
              "dip_iters must be >= 1 with dip_prior_mode=fit_observation (0 = an untrained "
              "net is only meaningful with noise_passes)")
        check(self.dip_passes >= 1, f"dip_passes must be >= 1, got {self.dip_passes}")
        check_name("dip_net", self.dip_net, NETS)
        check_name("sampler", self.sampler, REVERSE_SAMPLERS)
        check(self.dip_report_every >= 1,
              f"dip_report_every must be >= 1, got {self.dip_report_every}")
        if self.t0 == "auto":
            check(self.steps is None, f"t0 auto is picked at run time, so steps must be null "
                  f"(one reverse step per t, or DDIM's t0 + 1), got steps={self.steps}")
            return
        check(self.t0 >= 0, f"t0 must be >= 0, got {self.t0}")
        if self.t0 > 0:  # steps against t0 (t0 < T is checked against the checkpoint)
            time_pairs(self.t0, self.t0 + 1, self.sampler_config())

    def sampler_config(self) -> SamplerConfig:
        return SamplerConfig(sampler=self.sampler, steps=self.steps, eta=self.eta,
                             var_type=self.var_type, clip_x0=self.clip_x0)

    def fitted_depth(self, channels: int, size: int) -> int | None:
        """dip_depth for images of size x size: the configured one, or (null) the net's own,
        cut down until the image fits the net (divisible, coarsest scale at least 2x2)."""
        if self.dip_depth is not None:
            return self.dip_depth
        own = self.dip_net_shape(channels)
        depth = round(math.log2(size_multiple(own)))
        for d in range(depth, 0, -1):
            net = own if d == depth else self.dip_net_shape(channels, d)
            if size % size_multiple(net) == 0 and size >= min_size(net):
                return None if d == depth else d
        return None  # nothing fits: the size check names the rule

    def dip_net_shape(self, channels: int, depth: int | None = None) -> torch.nn.Module:
        """The DIP net built on the meta device (no weights made): for its size rules only."""
        with torch.device("meta"):
            return build_net(self.dip_net, self.dip_input_depth, channels, self.dip_width, depth)

    def dip_config(self, channels: int | None = None, size: int | None = None) -> DipConfig:
        """Stage A's DIP config; with the image's channels and size, dip_depth null is fitted
        to it (`fitted_depth`)."""
        depth = self.dip_depth if size is None else self.fitted_depth(channels, size)
        return DipConfig(iters=max(self.dip_iters, 1), lr=self.dip_lr, net=self.dip_net,
                         width=self.dip_width, depth=depth,
                         input_depth=self.dip_input_depth, reg_noise_std=self.dip_reg_noise_std,
                         smoothing=self.dip_smoothing, backtracking=self.dip_backtracking,
                         report_every=self.dip_report_every)


PRESETS = {
    # the defaults (docs/methods.md): DIP (original) fitted to y, q_sample hand-off at t0 = 20,
    # ancestral DDPM
    "dip_prior_default": {},
    # the MNIST source's pipeline: a small DIP (200 iterations on y; 2 scales so 28 x 28 fits),
    # applied twice to fresh noise, handed to the DDPM as x_{t0} directly, full chain
    "mnist_noise_passes": {"dip_prior_mode": "noise_passes", "dip_iters": 200,
                           "dip_net": "skip_small", "dip_depth": 2, "dip_input_depth": 1,
                           "dip_passes": 2, "rescale_prior": False, "init_mode": "direct",
                           "t0": 999},
    # CPU-sized for tests
    "tiny": {"dip_iters": 30, "dip_net": "skip", "dip_width": 8, "dip_depth": 3,
             "dip_input_depth": 4, "dip_report_every": 10, "t0": 5},
}
METRICS = ("iter", "psnr_gt", "psnr_dip")


@dataclass(frozen=True)
class DipPriorProblemSpec:
    """The problem keys of dip_prior_ddpm: one image at the DDPM's size and channels."""

    image: str  # a PNG/JPEG path or skimage:NAME
    size: int | None = None  # must be the DDPM's size when given (or use resize)
    sigma: float = 25.0  # Gaussian noise std in 0-255 units
    seed: int = 0  # the noise seed
    grey: bool | None = None  # must match the DDPM's channels when given
    resize: bool = False  # centre-crop and resize the image to the DDPM's size

    def __post_init__(self) -> None:
        check(self.sigma >= 0, f"sigma must be >= 0 (0-255 units), got {self.sigma}")
        check(self.size is None or self.size >= 1, f"size must be >= 1 (or null), got "
              f"{self.size}")


PROBLEM_KEYS = tuple(f.name for f in dataclasses.fields(DipPriorProblemSpec))


def model_shape(checkpoint: str) -> tuple[int, int, int]:
    """(channels, image size, T) of a DDPM checkpoint, from its config."""
    if not checkpoint:
        raise ConfigError("checkpoint is required: the trained DDPM, e.g. "
                          "--checkpoint runs/ddpm/ddpm.pt (from `dipddpm fit ddpm`)")
    try:
        st = os.stat(checkpoint)
    except OSError:
        st = None  # read_checkpoint names the problem
    return _model_shape(checkpoint, st and (st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _model_shape(checkpoint: str, version: tuple | None) -> tuple[int, int, int]:
    """One read per file version (a sweep's validation asks once per corner of its space)."""
    config, _ = read_checkpoint(checkpoint, mmap=True)  # the config only: no weights read
    try:
        return (int(config["net"]["channels"]), int(config["net"]["image_size"]),
                int(config["ddpm"]["timesteps"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DipddpmError(f"checkpoint {checkpoint} has an incomplete config ({e})") from None


def image_problem(spec: Mapping[str, Any], cfg: DipPriorDdpmConfig) -> ImageProblem:
    """The denoising problem at the DDPM's size and channels. The image is resized only when
    the spec says resize: true (or names the model's size); any other size is an error."""
    spec = check_image_spec(spec, DipPriorProblemSpec)
    C, S, T = model_shape(cfg.checkpoint)
    if cfg.t0 != "auto":
        check_t0(cfg.t0, T)
    grey = C == 1
    if "grey" in spec and bool(spec["grey"]) != grey:
        raise DipddpmError(f"the DDPM works on {C}-channel images but the problem says grey="
                           f"{spec['grey']}; drop grey (the image is converted to {C} channels)")
    size = spec.get("size")
    if size is not None and int(size) != S:
        raise DipddpmError(f"size {size} differs from the DDPM's {S}x{S}; the DDPM only works "
                           f"at its training size (use resize to get {S}x{S})")
    if spec.get("resize"):
        size = S
    if size is None:
        H, W = load_image(str(spec["image"]), grey=grey).shape[-2:]
        if (H, W) != (S, S):
            raise DipddpmError(f"image {spec['image']} is {H}x{W} but the DDPM was trained on "
                               f"{S}x{S}; pass --resize to center-crop and resize it to "
                               f"{S}x{S}, or give an image of that size")
    problem = make_image_problem(str(spec["image"]), size=size, sigma=spec.get("sigma", 25.0),
                                 seed=spec.get("seed", 0), grey=grey)
    check_trial(cfg, problem)
    return problem


def check_trial(cfg: DipPriorDdpmConfig, problem: ImageProblem) -> None:
    """The rules joining the config and the DDPM's images: t0 < T, the DIP net fits S x S, and
    noise_passes (which feeds the net's output back in) takes image-shaped input."""
    C, S, T = model_shape(cfg.checkpoint)
    if cfg.t0 != "auto":
        check_t0(cfg.t0, T)
    net = cfg.dip_net_shape(C, cfg.fitted_depth(C, S))
    m, low = size_multiple(net), min_size(net)
    if S % m or S < low:
        raise DipddpmError(f"DIP net {cfg.dip_net!r} needs H, W divisible by {m} and at least "
                           f"{low} but the DDPM's images are {S}x{S}; set dip_depth so that "
                           f"2^(dip_depth+1) <= {S} and 2^dip_depth divides {S}")
    if cfg.dip_prior_mode == "noise_passes" and cfg.dip_passes > 1 and cfg.dip_input_depth != C:
        raise DipddpmError(f"noise_passes with dip_passes={cfg.dip_passes} feeds the net's "
                           f"output back in, so dip_input_depth must equal the image channels "
                           f"({C}), got {cfg.dip_input_depth}; set dip_input_depth: {C}")


@dataclass
class DipEstimate:
    x_dip: torch.Tensor  # (C,H,W) in [0,1]
    metrics: dict[str, float]
    wall_s: float
    state: dict | None  # the DIP loop's final state (for resume), None if no DIP fit ran


def dip_estimate(cfg: DipPriorDdpmConfig, problem: ImageProblem, report: Report = no_report,
                 seed: int = 0, resume: dict | None = None, device=None) -> DipEstimate:
    """Stage A. DIP reports are forwarded as (it, {iter, psnr_gt, psnr_dip, loss}) except the
    last, which the caller makes with the final metrics."""
    dcfg = cfg.dip_config(*problem.observed.shape[:2])
    captured: dict = {}

    def forward(it: int, m: Mapping[str, float], state) -> None:
        captured["state"] = state
        if it < cfg.dip_iters:
            report(it, {"iter": it, "psnr_gt": m["psnr_gt"], "psnr_dip": m["psnr_gt"],
                        "loss": m["loss"]}, lambda: {"dip": state()})

    t_start = time.perf_counter()
    result, state = None, None
    if cfg.dip_iters > 0:
        result = run_dip(dcfg, problem, report=forward, seed=seed, resume=resume, device=device)
        state = captured["state"]()
    if cfg.dip_prior_mode == "fit_observation":
        x_dip = result.images[DIP_IMAGES[cfg.dip_output]]
    else:
        x_dip = _noise_passes(cfg, dcfg, problem, state, seed, device)
    wall = time.perf_counter() - t_start
    if resume is not None:
        wall += resume.get("wall_s", 0.0) if isinstance(resume, dict) else 0.0
    metrics = dict(result.metrics) if result is not None else {}
    return DipEstimate(x_dip=x_dip, metrics=metrics, wall_s=wall, state=state)


@torch.no_grad()
def _noise_passes(cfg: DipPriorDdpmConfig, dcfg: DipConfig, problem: ImageProblem,
                  state: dict | None, seed: int, device) -> torch.Tensor:
    C, H, W = problem.observed.shape
    if cfg.dip_passes > 1 and cfg.dip_input_depth != C:
        raise DipddpmError(f"noise_passes feeds the net's output back in, so dip_input_depth "
                           f"must equal the image channels ({C}), got {cfg.dip_input_depth}")
    dev = pick_device(device)
    torch.manual_seed(seed)
    net = build_for_problem(dcfg, C, problem).to(dev)
    if state is not None:
        net.load_state_dict(state["net"])
    net.train()  # BatchNorm in train mode, as the source
    g = torch.Generator(device=dev).manual_seed(seed + 3)
    x = torch.randn((1, cfg.dip_input_depth, H, W), generator=g, device=dev)
    for _ in range(cfg.dip_passes):
        x = net(x)
    return x[0].clamp(0, 1).cpu()


def refine(ddpm: Trained, x_prior: torch.Tensor, cfg: DipPriorDdpmConfig,
           generator: torch.Generator, rescale: bool | None = None) -> torch.Tensor:
    """Stage B on a batch of priors (B,C,H,W) in [0,1]: the hand-off at t0 and the reverse
    chain; returns (B,C,H,W) in [0,1]. rescale false hands the prior to the DDPM unscaled
    (x_start = x_prior, as the MNIST source does) instead of as 2 x_prior - 1."""
    rescale = cfg.rescale_prior if rescale is None else rescale
    if cfg.t0 == 0:  # t = 0 is the observation (here the prior) itself
        return x_prior.clamp(0, 1).cpu()
    dev = next(ddpm.model.parameters()).device
    x_start = (2 * x_prior - 1 if rescale else x_prior).to(dev)
    if cfg.init_mode == "q_sample":
        eps = torch.randn(x_start.shape, generator=generator, device=dev)
        x_t0 = ddpm.process.q_sample(x_start, cfg.t0, eps)
    elif cfg.init_mode == "scaled":
        x_t0 = float(ddpm.process.sqrt_alphas_cumprod[cfg.t0]) * x_start
    else:
        x_t0 = x_start
    out = reverse_chain(ddpm.model, ddpm.process, x_t0, cfg.t0, cfg.sampler_config(),
                        ddpm.cfg.objective, generator, amp=autocast_on(ddpm.cfg, dev))
    return ((out + 1) / 2).clamp(0, 1).cpu()


def from_noise(ddpm: Trained, shape: tuple[int, ...], steps: int, cfg: DipPriorDdpmConfig,
               generator: torch.Generator) -> torch.Tensor:
    """Same-budget floor: DDIM from pure noise at T-1 in `steps` steps, in [0,1]."""
    dev = next(ddpm.model.parameters()).device
    x = torch.randn(shape, generator=generator, device=dev)
    scfg = SamplerConfig(sampler="ddim", steps=steps, eta=cfg.eta, clip_x0=cfg.clip_x0)
    out = reverse_chain(ddpm.model, ddpm.process, x, ddpm.process.T - 1, scfg,
                        ddpm.cfg.objective, generator, amp=autocast_on(ddpm.cfg, dev))
    return ((out + 1) / 2).clamp(0, 1).cpu()


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def auto_t0(process, x_dip: torch.Tensor) -> tuple[int, float]:
    """(t0, sigma_hat): the step whose forward noise matches the estimate's remaining noise."""
    from skimage.restoration import estimate_sigma

    img = x_dip.detach().cpu().double().permute(1, 2, 0).numpy()
    sigma = float(estimate_sigma(img, channel_axis=-1, average_sigmas=True))
    abar = process.alphas_cumprod.double()
    ratio = ((1 - abar) / abar).sqrt()
    return int(torch.argmin((ratio - 2 * sigma).abs())), sigma


def run_dip_prior_ddpm(cfg: DipPriorDdpmConfig, problem: ImageProblem,
                       report: Report = no_report, seed: int = 0, resume: dict | None = None,
                       device=None) -> Result:
    dev = pick_device(device)
    if not cfg.checkpoint:
        model_shape(cfg.checkpoint)  # raises the 'checkpoint is required' error
    ddpm = load_ddpm(cfg.checkpoint, dev, use_ema=cfg.use_ema)
    if cfg.t0 != "auto":
        check_t0(cfg.t0, ddpm.process.T)
    C, S = ddpm.spec.channels, ddpm.spec.image_size
    if tuple(problem.observed.shape) != (C, S, S):
        raise DipddpmError(f"the image is {tuple(problem.observed.shape)} (C,H,W) but the DDPM "
                           f"works on {(C, S, S)}; resize or convert the image first")

    est = dip_estimate(cfg, problem, report, seed, (resume or {}).get("dip"), dev)
    sigma_hat = None
    if cfg.t0 == "auto":
        t0, sigma_hat = auto_t0(ddpm.process, est.x_dip)
        cfg = dataclasses.replace(cfg, t0=t0)
    n_steps = reverse_steps(cfg.t0, ddpm.process.T, cfg.sampler_config()) if cfg.t0 else 0
    x, y = problem.clean, problem.observed
    g = torch.Generator(device=dev).manual_seed(seed + 1)
    _sync(dev)
    t_start = time.perf_counter()
    out = refine(ddpm, est.x_dip[None], cfg, g)[0]
    _sync(dev)
    wall_ddpm = time.perf_counter() - t_start

    metrics = {"iter": max(cfg.dip_iters, 1), "psnr_gt": psnr(out, x), "ssim_gt": ssim(out, x),
               "psnr_vs_dip": psnr(out, est.x_dip), "psnr_dip": psnr(est.x_dip, x),
               "ssim_dip": ssim(est.x_dip, x), "psnr_noisy_input": psnr(y, x),
               "reverse_steps": n_steps, "t0": cfg.t0, "wall_s_dip": est.wall_s,
               "wall_s_ddpm": wall_ddpm, "wall_s": est.wall_s + wall_ddpm}
    if sigma_hat is not None:
        metrics["t0_sigma_hat"] = sigma_hat * 255  # the estimate's noise, 0-255 units
    images = {"output": out, "dip": est.x_dip, "observed": y}
    if cfg.baselines:
        baselines(ddpm, cfg, problem, n_steps, seed, metrics, images)
    final_state = est.state
    report(metrics["iter"], metrics, lambda: {"dip": final_state})
    extra = {"dip_metrics": est.metrics}
    return Result(metrics=metrics, images=images, extra=extra)


def baselines(ddpm: Trained, cfg: DipPriorDdpmConfig, problem: ImageProblem, n_steps: int,
              seed: int, metrics: dict, images: dict) -> None:
    """The same-budget DDPM from y (the same hand-off) and from pure noise, into the dicts."""
    dev = next(ddpm.model.parameters()).device
    x, y = problem.clean, problem.observed
    out_y = refine(ddpm, y[None], cfg, torch.Generator(device=dev).manual_seed(seed + 1))[0]
    metrics.update(psnr_ddpm_y=psnr(out_y, x), ssim_ddpm_y=ssim(out_y, x))
    images["ddpm_y"] = out_y
    if n_steps:
        C, H, W = y.shape
        out_n = from_noise(ddpm, (1, C, H, W), n_steps, cfg,
                           torch.Generator(device=dev).manual_seed(seed + 2))[0]
        metrics.update(psnr_ddpm_noise=psnr(out_n, x), ssim_ddpm_noise=ssim(out_n, x))
        images["ddpm_noise"] = out_n
    else:
        metrics.update(psnr_ddpm_noise=float("nan"), ssim_ddpm_noise=float("nan"))
