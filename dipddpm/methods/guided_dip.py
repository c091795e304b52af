"""Method 3, staged / guided DIP (docs/methods.md): DIP fitted to a sequence of DDPM-forward-noised
targets, most noisy first, on the fitting loop shared with DIP.

Stage k's target is drawn once when the stage starts:
    y_k = sqrt(abar_{t_k}) s + sqrt(1 - abar_{t_k}) (a eps + b),  s = y (or x, the oracle),
and t_k = 0 means the observation itself. A stage scheduler splits the N iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch  # noqa: E402,I001

from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.staged import StagedConfig
from dipddpm.stages.timesteps import stage_target


@dataclass(frozen=True)
class GuidedDipConfig(StagedConfig):
    """The stage vocabulary (staged.py: stages, t_max, t_min, beta_schedule, scheduler, ...)
    and how a stage's target is drawn."""

    stage_source: Literal["y", "x"] = "y"  # noise the observation y, or the clean x (oracle)
    noise_affine: tuple[float, float] = (1.0, 0.0)  # (a, b): noise a*eps + b (source: .5, .5)
    stage_space: Literal["unit", "symmetric"] = "unit"  # noise in [0,1] or in [-1,1]
    reset_optimizer_each_stage: bool = False  # new Adam at every stage (guided-DIP code: true)
    resample_input_each_stage: bool = False  # new z at every stage (guided-DIP code: true)


PRESETS = {
    # staged-DIP source (reconstructed from its plots): K = 9, t = 888, 777, ..., 111, 0,
    # cosine, targets from y, 2000 iterations, original DIP otherwise
    "staged_dip": {"iters": 2000, "stages": 9, "t_max": 999, "t_min": 0, "t_drop_first": True,
                   "beta_schedule": "cosine", "scheduler": "uniform", "stage_source": "y"},
    # guided-DIP source: t = int(linspace(500, 40, 20)), exp-weighted stages, targets from the
    # clean image (oracle, labelled), shifted noise, new Adam and z per stage, UNet backbone,
    # N(0,1) 3-channel input, no reg-noise / smoothing / backtracking, Adam 1e-3, eval-mode PSNR.
    # Its problem: 128x128, observation = the clean image forward-noised to t = 40.
    "guided_dip": {"iters": 2000, "stages": 20, "t_max": 500, "t_min": 40,
                   "t_drop_first": False, "beta_schedule": "linear", "min_beta": 1e-4,
                   "scheduler": "exp_weighted", "stage_source": "x",
                   "noise_affine": (0.5, 0.5), "reset_optimizer_each_stage": True,
                   "resample_input_each_stage": True, "net": "unet", "input_depth": 3,
                   "input_noise": "normal", "input_scale": 1.0, "reg_noise_std": 0.0,
                   "smoothing": 0.0, "backtracking": False, "lr": 1e-3,
                   "eval_metrics": True},
    # plain DIP defaults through the guided loop with a single t = 0 stage
    "dip_original": {"iters": 3000, "stages": 1, "t_max": 0, "t_min": 0,
                     "t_drop_first": False},
    "tiny": {"iters": 200, "width": 16, "depth": 3, "input_depth": 8, "stages": 4,
             "report_every": 10},
}
PROBLEM_PRESETS = {
    # the cosine table at t = 40 gives the source's ~25.6 dB observation (linear: ~20.3 dB)
    "guided_dip": {"size": 128, "observation": "forward", "observation_t": 40,
                   "observation_schedule": "cosine"},
}


def make_plan(cfg: GuidedDipConfig, problem) -> StagePlan:
    proc = cfg.process()
    ts = cfg.timesteps_list()
    counts = cfg.counts(proc)
    source = problem.observed if cfg.stage_source == "y" else problem.clean

    def target_for(t: int):
        abar = float(proc.alphas_cumprod[t])

        def draw(g: torch.Generator) -> torch.Tensor:
            dev = g.device
            eps = torch.randn(source.shape, generator=g, device=dev)
            return stage_target(source.to(dev), abar, eps, cfg.noise_affine, cfg.stage_space)

        return draw

    stages = [Stage(t=t, iters=n, target=target_for(t)) for t, n in zip(ts, counts, strict=True)]
    info = {"stage_timesteps": ts, "stage_counts": counts}
    return StagePlan(stages, cfg.reset_optimizer_each_stage, cfg.resample_input_each_stage, info)


def run_guided_dip(cfg: GuidedDipConfig, problem, report: Report = no_report, seed: int = 0,
                   resume: dict | None = None, device=None) -> Result:
    return fit(cfg, problem, make_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)
