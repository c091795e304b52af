"""The DDPM method's config, its presets, and when it trains and samples under bf16
autocast (`autocast_on`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dipddpm.config import check, check_name
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.sampling import REVERSE_SAMPLERS
from dipddpm.diffusion.schedules import SCHEDULES
from dipddpm.nn.time_unet import UNET_PRESETS, UNetSpec, unet_spec


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
    sample_sampler: str = "ddim"  # reverse sampler of those samples (REVERSE_SAMPLERS)
    sample_steps: int | None = 50  # DDIM steps of those samples; null = all T
    fid_samples: int = 0  # > 0: FID/KID of this many samples vs the test split (needs local
    #                       Inception weights; otherwise the result says FID was skipped)

    def __post_init__(self) -> None:
        check_name("sample_sampler", self.sample_sampler, REVERSE_SAMPLERS)
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


def autocast_on(cfg, dev: torch.device) -> bool:
    """bf16 autocast for a DDPM of config `cfg` on `dev`: with amp, on CUDA, and on CPU only
    where amp_cpu asks for it too."""
    return bool(cfg.amp) and (dev.type == "cuda" or bool(cfg.amp_cpu))
