"""Method 3, staged / guided DIP (docs/methods.md): DIP fitted to a sequence of DDPM-forward-noised
targets, most noisy first, on the fitting loop shared with DIP.

Stage k's target is drawn once when the stage starts:
    y_k = sqrt(abar_{t_k}) s + sqrt(1 - abar_{t_k}) (a eps + b),  s = y (or x, the oracle),
and t_k = 0 means the observation itself. A stage scheduler splits the N iterations.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

import torch  # noqa: E402,I001

from dipddpm.config import check
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.schedules import SCHEDULES
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.stages import STAGE_SCHEDULERS, stage_counts
from dipddpm.stages.schedulers import check_every_stage
from dipddpm.stages.timesteps import stage_target, stage_timesteps


@dataclass(frozen=True)
class GuidedDipConfig(DipConfig):
    iters: int = 2000  # total fitting iterations N over all stages
    stages: int = 9  # number of stages K
    t_max: int = 999  # timestep of the noisiest stage target (0-based, < timesteps)
    t_min: int = 0  # timestep of the last stage target; 0 = the observation itself
    t_spacing: Literal["linear", "log"] = "linear"  # spacing of t_1 > ... > t_K
    t_drop_first: bool = True  # linspace(t_max, t_min, K+1)[1:] (staged-DIP: 888, ..., 0)
    timesteps: int = 1000  # T of the beta schedule
    beta_schedule: str = "cosine"  # linear, cosine, sigmoid
    min_beta: float = 0.0  # cosine's lower clip of beta (guided-DIP preset: 1e-4)
    scheduler: str = "uniform"  # uniform, uniform_equal, sharp_linear, log10_linspace, ...
    sharp_linear_x: int = 10  # sharp_linear: iterations for every stage but the last
    exp_c: float | None = None  # exp_weighted: c; null = 250 (linear) or 400 (others)
    stage_source: Literal["y", "x"] = "y"  # noise the observation y, or the clean x (oracle)
    noise_affine: tuple[float, float] = (1.0, 0.0)  # (a, b): noise a*eps + b (source: .5, .5)
    stage_space: Literal["unit", "symmetric"] = "unit"  # noise in [0,1] or in [-1,1]
    reset_optimizer_each_stage: bool = False  # new Adam at every stage (guided-DIP code: true)
    resample_input_each_stage: bool = False  # new z at every stage (guided-DIP code: true)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.timesteps >= 2, f"timesteps must be >= 2, got {self.timesteps}")
        check(0 <= self.t_min <= self.t_max < self.timesteps,
              f"need 0 <= t_min <= t_max < timesteps, got t_min={self.t_min}, "
              f"t_max={self.t_max}, timesteps={self.timesteps}")
        check(self.stages >= 1, f"stages must be >= 1, got {self.stages}")
        # names the schedule and scheduler, the split must work and reach every stage
        check_every_stage(self.scheduler, self.counts())

    def process(self) -> DiffusionProcess:
        # the schedule's own parameters say whether it clips at a min_beta (cosine does)
        takes = inspect.signature(SCHEDULES.get(self.beta_schedule)).parameters
        params = {"min_beta": self.min_beta} if "min_beta" in takes else {}
        return DiffusionProcess.from_schedule(self.beta_schedule, self.timesteps, **params)

    def timesteps_list(self) -> list[int]:
        return stage_timesteps(self.stages, self.t_max, self.t_min, self.t_spacing,
                               self.t_drop_first)

    def counts(self, process: DiffusionProcess | None = None) -> list[int]:
        """Iterations per stage from the scheduler (docs/methods.md, Stage schedulers)."""
        ts = self.timesteps_list()
        params = STAGE_SCHEDULERS.get(self.scheduler).values(self)  # its declared parameters
        proc = process or self.process()
        betas = proc.betas[ts].tolist()
        return stage_counts(self.scheduler, self.iters, self.stages, stage_betas=betas, **params)


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
