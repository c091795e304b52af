"""Method 2, DDPM (Ho et al., NeurIPS 2020): train a time-conditioned U-Net to reverse the
noise process.

Per step: a batch x0 of training images in [-1, 1], t ~ U{0..T-1} and eps ~ N(0, I) per
example, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; the net predicts the objective's target
(eps, x0 or v = sqrt(abar) eps - sqrt(1 - abar) x0) and the loss is the per-example MSE times
the lucidrains weight (eps: 1, x0: SNR, v: SNR / (SNR + 1); with min_snr_gamma, SNR is clipped
at gamma in the numerator), so the three objectives weight timesteps alike. Adam, optional
gradient clipping and EMA; bf16 autocast on CUDA (on CPU too with `amp_cpu`, which runs the
same AMP code without a GPU: `autocast_on`). The loss is diffusion/loss.py; the config
ddpm_config.py; checkpoints ddpm_checkpoint.py.

Determinism and resume: the batch order of epoch e is a permutation seeded by (seed, e), and t
and eps come from one generator whose state is checkpointed, so a run resumed from `state()`
takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dipddpm._compat import moved_names
from dipddpm.config import to_dict
from dipddpm.data.datasets import ImageDataset
from dipddpm.data.grid import make_grid
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.loss import diffusion_loss
from dipddpm.diffusion.sampling import REVERSE_SAMPLERS, SamplerConfig, sample
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.ddpm_checkpoint import Trained
from dipddpm.methods.ddpm_config import DdpmConfig, autocast_on
from dipddpm.methods.device import pick_device
from dipddpm.nn import n_params
from dipddpm.nn.time_unet import TimeUNet

__getattr__ = moved_names(__name__)  # names that moved out: _compat.MOVED_NAMES


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
    strided = REVERSE_SAMPLERS.get(cfg.sample_sampler).strided  # takes fewer steps
    scfg = SamplerConfig(sampler=cfg.sample_sampler,
                         steps=cfg.sample_steps if strided else None)
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
