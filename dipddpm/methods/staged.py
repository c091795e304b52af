"""The stage vocabulary staged methods share: guided DIP (noise on the target, guided_dip.py)
and self-diffusion (noise on the input, self_diffusion.py).

N iterations split over K stages by a stage scheduler (stages/schedulers.py); stage k has a
diffusion timestep t_k, spaced from t_max down to t_min (stages/timesteps.py), on the beta
schedule of `timesteps` steps (diffusion/schedules.py). What a stage's timestep does is the
method's: guided DIP noises its target to t_k, self-diffusion its input.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

from dipddpm.config import check
from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.schedules import SCHEDULES
from dipddpm.methods.dip import DipConfig
from dipddpm.stages import STAGE_SCHEDULERS, stage_counts
from dipddpm.stages.schedulers import check_every_stage
from dipddpm.stages.timesteps import stage_timesteps


@dataclass(frozen=True)
class StagedConfig(DipConfig):
    iters: int = 2000  # total fitting iterations N over all stages
    stages: int = 9  # number of stages K
    t_max: int = 999  # timestep of the noisiest stage (0-based, < timesteps)
    t_min: int = 0  # timestep of the last stage
    t_spacing: Literal["linear", "log"] = "linear"  # spacing of t_1 > ... > t_K
    t_drop_first: bool = True  # linspace(t_max, t_min, K+1)[1:] (staged-DIP: 888, ..., 0)
    timesteps: int = 1000  # T of the beta schedule
    beta_schedule: str = "cosine"  # linear, cosine, sigmoid
    min_beta: float = 0.0  # cosine's lower clip of beta (guided-DIP preset: 1e-4)
    scheduler: str = "uniform"  # uniform, uniform_equal, sharp_linear, log10_linspace, ...
    sharp_linear_x: int = 10  # sharp_linear: iterations for every stage but the last
    exp_c: float | None = None  # exp_weighted: c; null = 250 (linear) or 400 (others)

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
