"""Method 2, DDPM (Ho et al., NeurIPS 2020): train a time-conditioned U-Net to reverse the
noise process.

Per step: a batch x0 of training images in [-1, 1], t ~ U{0..T-1} and eps ~ N(0, I) per
example, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; the net predicts the objective's target
(eps, x0 or v = sqrt(abar) eps - sqrt(1 - abar) x0) and the loss is the per-example MSE times
the lucidrains weight (eps: 1, x0: SNR, v: SNR / (SNR + 1); with min_snr_gamma, SNR is clipped
at gamma in the numerator), so the three objectives weight timesteps alike. Adam, optional
gradient clipping and EMA; bf16 autocast on CUDA (on CPU too with `amp_cpu`, which runs the
same AMP code without a GPU: `autocast_on`).

Determinism and resume: the batch order of epoch e is a permutation seeded by (seed, e), and t
and eps come from one generator whose state is checkpointed, so a run resumed from `state()`
takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dipddpm.checkpoint import load_model, load_weights, save_checkpoint
from dipddpm.config import build, check, check_name, to_dict
from dipddpm.data.datasets import ImageDataset
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.sampling import SamplerConfig, sample
from dipddpm.diffusion.schedules import SCHEDULES
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.device import pick_device
from dipddpm.nn import n_params
from dipddpm.nn.time_unet import UNET_PRESETS, TimeUNet, UNetSpec, unet_spec


@dataclass(frozen=True)
class DdpmConfig:
    iters: int = 2000  # optimizer steps (ignored when epochs is set)
    epochs: int | None = None  # passes over the train split; sets iters (MNIST source: 20)
    batch_size: int = 128  # images per step (capped at the train split's size)
    lr: float = 1e-3  # Adam learning rate (MNIST source 1e-3; lucidrains 1e-4)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam (beta1, beta2); lucidrains (0.9, 0.99)
    grad_clip: float | None = None  # clip the gradient norm at this value; null = off
    ema_decay: float | None = None  # EMA of the weights, e.g. 0.995; null = no EMA
    ema_every: int = 10  # update the EMA every this many steps (lucidrains: 10)
    sample_with_ema: bool = True  # sample (and compute val_loss) with the EMA weights if any
    objective: Literal["eps", "x0", "v"] = "eps"  # what the net predicts (v: Salimans & Ho 2022)
    min_snr_gamma: float | None = None  # clip SNR at gamma in the loss weight; null = plain
    timesteps: int = 1000  # T of the noise process
    beta_schedule: str = "linear"  # linear, cosine, sigmoid (docs/methods.md)
    net: str = "tiny"  # time U-Net preset: tiny, small, mnist, cifar
    net_widths: tuple[int, ...] | None = None  # channels per level; null = the preset's
    net_blocks: int | None = None  # conv blocks per level; null = the preset's
    net_attention: tuple[int, ...] | None = None  # levels with self-attention; null = preset's
    net_time_dim: int | None = None  # sinusoidal embedding size; null = the preset's
    net_norm: Literal["layer", "group"] | None = None  # block norm; null = the preset's
    net_groups: int | None = None  # GroupNorm groups; null = the preset's
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU unless amp_cpu)
    amp_cpu: bool = False  # with amp, bf16 autocast on CPU too (slow on most CPUs; runs the
    # AMP path without a GPU, as the GPU suite's dry run does)
    report_every: int = 50  # report every this many steps (and at the last)
    val_max: int = 512  # val images for val_loss (fixed t and noise); 0 = no val_loss
    sample_count: int = 16  # samples drawn at the end (Result.images["samples"]); 0 = none
    sample_sampler: Literal["ddpm", "ddim"] = "ddim"  # sampler of those samples
    sample_steps: int | None = 50  # DDIM steps of those samples; null = all T
    fid_samples: int = 0  # > 0: FID/KID of this many samples vs the test split (needs local
    #                       Inception weights; otherwise the result says FID was skipped)

    def __post_init__(self) -> None:
        check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        check(self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.grad_clip is None or self.grad_clip > 0,
              f"grad_clip must be > 0 or null, got {self.grad_clip}")
        check(self.ema_decay is None or 0 < self.ema_decay < 1,
              f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        check(self.ema_every >= 1, f"ema_every must be >= 1, got {self.ema_every}")
        check(self.min_snr_gamma is None or self.min_snr_gamma > 0,
              f"min_snr_gamma must be > 0 or null, got {self.min_snr_gamma}")
        check(self.timesteps >= 2, f"timesteps must be >= 2, got {self.timesteps}")
        check_name("beta_schedule", self.beta_schedule, SCHEDULES)
        check(self.net in UNET_PRESETS, f"net must be one of {', '.join(UNET_PRESETS.names())}"
              f", got {self.net!r}")
        check(self.report_every >= 1, f"report_every must be >= 1, got {self.report_every}")
        check(self.val_max >= 0, f"val_max must be >= 0, got {self.val_max}")
        check(self.sample_count >= 0, f"sample_count must be >= 0, got {self.sample_count}")
        check(self.sample_steps is None or self.sample_steps >= 1,
              f"sample_steps must be >= 1 or null, got {self.sample_steps}")
        check(self.fid_samples == 0 or self.fid_samples >= 2,
              f"fid_samples must be 0 (off) or >= 2 (FID/KID need two), got {self.fid_samples}")

    def process(self) -> DiffusionProcess:
        return DiffusionProcess.from_schedule(self.beta_schedule, self.timesteps)

    def net_spec(self, channels: int, image_size: int) -> UNetSpec:
        return unet_spec(self.net, widths=self.net_widths, blocks=self.net_blocks,
                         attention=self.net_attention, time_dim=self.net_time_dim,
                         norm=self.net_norm, groups=self.net_groups, channels=channels,
                         image_size=image_size)


PRESETS = {
    # the MNIST source: ~0.6 M-parameter U-Net, Adam 1e-3, batch 128, 20 epochs, no EMA
    "mnist_source": {"net": "mnist", "lr": 1e-3, "batch_size": 128, "epochs": 20,
                     "ema_decay": None, "objective": "eps", "beta_schedule": "linear"},
    # lucidrains-like: Adam 1e-4 (0.9, 0.99), grad-clip 1, EMA 0.995 every 10 steps, EMA samples
    "lucidrains": {"lr": 1e-4, "adam_betas": (0.9, 0.99), "grad_clip": 1.0,
                   "ema_decay": 0.995, "ema_every": 10, "sample_with_ema": True},
    # CPU-sized, for tests and CI
    "tiny": {"net": "tiny", "iters": 40, "batch_size": 16, "report_every": 10, "val_max": 32,
             "sample_count": 4, "sample_steps": 5, "timesteps": 100},
}


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


def autocast_on(cfg, dev: torch.device) -> bool:
    """bf16 autocast for a DDPM of config `cfg` on `dev`: with amp, on CUDA, and on CPU only
    where amp_cpu asks for it too."""
    return bool(cfg.amp) and (dev.type == "cuda" or bool(cfg.amp_cpu))


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


@dataclass
class Trained:
    """A trained DDPM: the net (and EMA), the noise process and what built them."""

    net: nn.Module
    ema: AveragedModel | None
    process: DiffusionProcess
    cfg: DdpmConfig
    spec: UNetSpec
    data_spec: dict
    step: int
    result: Result | None = None

    @property
    def model(self) -> nn.Module:
        """The net used for sampling: the EMA's when there is one and sample_with_ema."""
        if self.ema is not None and self.cfg.sample_with_ema:
            return self.ema.module
        return self.net

    def checkpoint_config(self) -> dict:
        return {"ddpm": to_dict(self.cfg), "net": to_dict(self.spec), "dataset": self.data_spec,
                "step": self.step}

    def save(self, path: str | Path) -> Path:
        """The sampling checkpoint: net, EMA net (if any) and the resolved config."""
        tensors = {"net": self.net.state_dict()}
        if self.ema is not None:
            tensors["ema"] = self.ema.module.state_dict()
        return save_checkpoint(path, self.checkpoint_config(), tensors)


def _spec_from(config: dict) -> UNetSpec:
    net = {k: tuple(v) if isinstance(v, list) else v for k, v in config["net"].items()}
    return UNetSpec(**net)


def load_ddpm(path: str | Path, device=None, use_ema: bool | None = None) -> Trained:
    """A DDPM checkpoint, ready to sample (eval mode, on `device`). use_ema None: the
    checkpoint's own sample_with_ema; the EMA weights are used only when the file has them."""
    net, config, tensors = load_model(path, lambda c: TimeUNet(_spec_from(c)))
    cfg = build(DdpmConfig, config["ddpm"])
    spec = _spec_from(config)
    ema = None
    if "ema" in tensors and (use_ema if use_ema is not None else cfg.sample_with_ema):
        ema_net = TimeUNet(spec)
        load_weights(path, ema_net, tensors["ema"], "ema")
        ema = AveragedModel(ema_net)  # a holder: .module is (a copy of) the EMA net
    cfg = dataclasses.replace(cfg, sample_with_ema=ema is not None)
    dev = pick_device(device)
    if ema is not None:
        ema.to(dev).eval()
    return Trained(net=net.to(dev).eval(), ema=ema, process=cfg.process(), cfg=cfg, spec=spec,
                   data_spec=config.get("dataset", {}), step=config.get("step", 0))


def _steps(cfg: DdpmConfig, n_train: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps)."""
    B = min(cfg.batch_size, n_train)
    spe = n_train // B  # the last partial batch of an epoch is dropped
    total = cfg.epochs * spe if cfg.epochs is not None else cfg.iters
    return B, spe, total


def total_steps(cfg: DdpmConfig, n_train: int) -> int:
    """The optimizer steps a run on `n_train` training images takes (epochs or iters)."""
    return _steps(cfg, n_train)[2]


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's shuffle, a function of (seed, epoch) only (so a resumed run repeats it);
    made once per epoch, not per step."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))


def _batch_indices(step: int, n: int, B: int, spe: int, seed: int) -> torch.Tensor:
    epoch, b = divmod(step, spe)
    return _epoch_order(n, seed, epoch)[b * B:(b + 1) * B].clone()  # not a view of the cache


class ValSet:
    """val_loss's fixed images, t and noise (drawn once from seed + 1), so values are
    comparable across reports."""

    def __init__(self, val: torch.Tensor, T: int, seed: int, dev: torch.device) -> None:
        self.n = len(val)
        if self.n:
            vg = torch.Generator().manual_seed(seed + 1)
            self.t = torch.randint(T, (self.n,), generator=vg).to(dev)
            self.noise = torch.randn(val.shape, generator=vg).to(dev)
            self.x0 = (2 * ImageDataset.as_float(val) - 1).to(dev)

    @torch.no_grad()
    def loss(self, model: nn.Module, process: DiffusionProcess, cfg: DdpmConfig,
             amp: bool) -> float:
        """The mean loss of `model` (put in eval mode) over the set; NaN when it is empty."""
        if not self.n:
            return math.nan
        model.eval()
        total = 0.0
        for i in range(0, self.n, 256):
            sl = slice(i, i + 256)
            loss = diffusion_loss(model, process, self.x0[sl], self.t[sl], self.noise[sl],
                                  cfg.objective, cfg.min_snr_gamma, amp)
            total += loss.item() * self.x0[sl].shape[0]
        return total / self.n


# the loop variables a training state holds besides the weights, optimizer and generator
LOOP_KEYS = ("step", "wall_s", "best_val", "best_val_iter", "last_val", "last_train",
             "loss_sum", "loss_n")


class _Training:
    """One training run: the net (in `trained`), Adam, the EMA, the t/eps generator and the
    loop variables that `state()` saves and `load()` restores."""

    def __init__(self, cfg: DdpmConfig, data: ImageDataset, seed: int, dev: torch.device):
        self.cfg, self.seed, self.dev = cfg, seed, dev
        self.amp = autocast_on(cfg, dev)
        self.n_train = data.train.shape[0]
        self.B, self.spe, self.total = _steps(cfg, self.n_train)
        spec = cfg.net_spec(data.channels, data.image_size)
        torch.manual_seed(seed)
        net = TimeUNet(spec).to(dev)
        self.opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
        ema = None if cfg.ema_decay is None else AveragedModel(
            net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.trained = Trained(net=net, ema=ema, process=cfg.process(), cfg=cfg, spec=spec,
                               data_spec=dict(data.spec), step=0)
        self.g = torch.Generator(device=dev).manual_seed(seed)
        self.train = data.train.to(dev)
        self.val = ValSet(data.val[:cfg.val_max], self.trained.process.T, seed, dev)
        self.loop = {"step": 0, "wall_s": 0.0, "best_val": math.inf, "best_val_iter": 0,
                     "last_val": math.nan, "last_train": math.nan, "loss_n": 0}
        self.loss_sum = torch.zeros((), device=dev)
        self.t_start = time.perf_counter()

    def load(self, resume: dict) -> None:
        t = self.trained
        t.net.load_state_dict(resume["net"])
        self.opt.load_state_dict(resume["opt"])
        if t.ema is not None:
            t.ema.load_state_dict(resume["ema"])
        self.g.set_state(resume["gen"].to(self.g.get_state().device))
        self.loop.update({k: resume[k] for k in LOOP_KEYS if k != "loss_sum"})
        self.loss_sum += resume["loss_sum"]

    def wall(self) -> float:
        return self.loop["wall_s"] + time.perf_counter() - self.t_start

    def state(self) -> dict:
        t = self.trained
        return {"net": copy.deepcopy(t.net.state_dict()),
                "opt": copy.deepcopy(self.opt.state_dict()),
                "ema": copy.deepcopy(t.ema.state_dict()) if t.ema is not None else None,
                "gen": self.g.get_state(), **self.loop, "wall_s": self.wall(),
                "loss_sum": self.loss_sum.detach().cpu().clone()}

    def step(self) -> None:
        """One optimizer step on the next batch (and the EMA every ema_every steps)."""
        cfg, net, process, dev = self.cfg, self.trained.net, self.trained.process, self.dev
        idx = _batch_indices(self.loop["step"], self.n_train, self.B, self.spe,
                             self.seed).to(dev)
        x0 = 2 * ImageDataset.as_float(self.train[idx]) - 1  # (B,C,H,W) in [-1, 1]
        t = torch.randint(process.T, (x0.shape[0],), generator=self.g, device=dev)
        noise = torch.randn(x0.shape, generator=self.g, device=dev)
        loss = diffusion_loss(net, process, x0, t, noise, cfg.objective, cfg.min_snr_gamma,
                              self.amp)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        self.opt.step()
        self.loop["step"] += 1
        if self.trained.ema is not None and self.loop["step"] % cfg.ema_every == 0:
            self.trained.ema.update_parameters(net)
        self.loss_sum += loss.detach()
        self.loop["loss_n"] += 1

    def report_due(self) -> bool:
        step = self.loop["step"]
        return step % self.cfg.report_every == 0 or step == self.total

    def metrics(self) -> dict[str, float]:
        """The report's metrics: the mean train loss since the last report, the val loss."""
        lp, step = self.loop, self.loop["step"]
        lp["last_train"] = (self.loss_sum / lp["loss_n"]).item()
        if not math.isfinite(lp["last_train"]):
            raise FloatingPointError(f"train loss is {lp['last_train']} at step {step}")
        self.loss_sum.zero_()
        lp["loss_n"] = 0
        lp["last_val"] = self.val.loss(self.trained.model, self.trained.process, self.cfg,
                                       self.amp)
        self.trained.net.train()
        if lp["last_val"] < lp["best_val"]:
            lp["best_val"], lp["best_val_iter"] = lp["last_val"], step
        return {"iter": step, "epoch": step / self.spe, "step": step,
                "train_loss": lp["last_train"], "val_loss": lp["last_val"]}

    def summary(self) -> dict[str, float]:
        lp = self.loop
        return {"steps": lp["step"], "epochs": lp["step"] / self.spe,
                "train_loss_final": lp["last_train"], "val_loss_final": lp["last_val"],
                "val_loss_best": lp["best_val"], "val_loss_best_iter": lp["best_val_iter"],
                "wall_s": self.wall(), "n_params": n_params(self.trained.net)}


def _finish(tr: _Training, data: ImageDataset) -> Trained:
    """The summary, and the samples (and FID) drawn with the sampling net."""
    cfg, trained, dev = tr.cfg, tr.trained, tr.dev
    trained.step = tr.loop["step"]
    metrics = tr.summary()
    images, extra = {}, {"net_spec": to_dict(trained.spec), "steps_per_epoch": tr.spe}
    model = trained.model.eval()
    gen = torch.Generator(device=dev).manual_seed(tr.seed + 2)
    scfg = SamplerConfig(sampler=cfg.sample_sampler, steps=cfg.sample_steps
                         if cfg.sample_sampler == "ddim" else None)
    spec = trained.spec

    def draw(n: int) -> torch.Tensor:
        return sample(model, trained.process, (n, spec.channels, spec.image_size,
                                               spec.image_size), cfg=scfg,
                      objective=cfg.objective, generator=gen, device=dev, amp=tr.amp)

    if cfg.sample_count:
        images["samples"] = make_grid(draw(cfg.sample_count))
    if cfg.fid_samples:
        from dipddpm.fid import fid_kid

        fid = fid_kid(draw, ImageDataset.as_float(data.test), cfg.fid_samples, dev)
        metrics.update(fid.metrics)
        extra["fid"] = fid.note
    trained.net.train()
    trained.result = Result(metrics=metrics, images=images, extra=extra)
    return trained


def train_ddpm(cfg: DdpmConfig, data: ImageDataset, report: Report = no_report, seed: int = 0,
               resume: dict | None = None, device=None) -> Trained:
    """Train on data.train; report iter, epoch, step, train_loss, val_loss."""
    tr = _Training(cfg, data, seed, pick_device(device))
    if resume is not None:
        tr.load(resume)
    tr.t_start = time.perf_counter()
    tr.trained.net.train()
    while tr.loop["step"] < tr.total:
        tr.step()
        if tr.report_due():
            report(tr.loop["step"], tr.metrics(), tr.state)
    return _finish(tr, data)


class StateSaver:
    """A report callback that passes each report on and writes the whole training state
    (`kind` ddpm-train) to `path` at the first report at least `every` steps after the last
    write, and at the last step: what `--resume` continues from."""

    def __init__(self, report: Report, path: Path, run_config: dict, every: int,
                 total: int) -> None:
        self.report, self.path, self.run_config = report, path, run_config
        self.every, self.total, self.saved_at = every, total, 0

    def __call__(self, it: int, metrics, state) -> None:
        self.report(it, metrics, state)
        if it - self.saved_at >= self.every or it == self.total:
            self.saved_at = it
            save_checkpoint(self.path, self.run_config, {"state": state()}, kind="ddpm-train")


def run_ddpm(cfg: DdpmConfig, problem: ImageDataset, report: Report = no_report, seed: int = 0,
             resume: dict | None = None, device=None) -> Result:
    """The method contract: train and return the summary (the net is in train_ddpm's result)."""
    if not isinstance(problem, ImageDataset):
        raise DipddpmError("ddpm's problem is a dataset (e.g. {dataset: skimage-patches, "
                           "size: 32}), not an image")
    return train_ddpm(cfg, problem, report, seed, resume, device).result


def check_dataset_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset problem spec: a registered dataset and its builder's options, each of its
    type (checked without loading anything). Returns the spec with values converted."""
    from dipddpm.config import checked
    from dipddpm.data.datasets import DATASETS

    if "dataset" not in spec:
        raise DipddpmError(f"a ddpm problem needs 'dataset': one of {DATASETS.help()} (e.g. "
                           f"{{dataset: skimage-patches, size: 32}})")
    name = str(spec["dataset"])
    try:
        builder = DATASETS.get(name)
    except ConfigError as e:
        raise ConfigError(f"problem.dataset: {e}") from None
    params = {k: v for k, v in spec.items() if k != "dataset"}
    return {"dataset": name, **checked(builder, params, prefix="problem.")}


def dataset_problem(spec, cfg: DdpmConfig | None = None) -> ImageDataset:
    """A training set from a spec such as {dataset: skimage-patches, size: 32, count: 4096}."""
    from dipddpm.data.datasets import load_dataset

    spec = check_dataset_spec(spec)
    return load_dataset(str(spec.pop("dataset")), **spec)
