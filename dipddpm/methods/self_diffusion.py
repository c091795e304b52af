"""Self-diffusion (Luo et al., NeurIPS 2025; reference repository ggluo/Self-Diffusion, whose
code is not published): DIP whose *input* is noised along a DDPM schedule, stage by stage -
guided DIP's mirror image (guided_dip.py noises the target; here the target is always y).

The state is an estimate x_hat of the image, initially N(0, I). For stage s = 1..S:

    x_s = x_hat + sigma_s eps                 (fresh eps from the member's generator)
    n_s Adam iterations of DIP on L(theta) = mean((f(x_s) - y)^2)
    x_hat <- f(x_s)                           (the stage's last output)

sigma_s decreases along the beta schedule: stage s has the timestep t_s of the shared stage
vocabulary (staged.py: t_max down to t_min over `stages`, the scheduler splitting `iters`),
and

    sigma_s = sqrt(1 - abar_{t_s})            (`input_noise_scale: ddpm`, the default)
    sigma_s = sqrt((1 - abar_{t_s}) / abar_{t_s})   (`input_noise_scale: ve`)

The default is the std of the DDPM forward noise at t_s: it lies in (0, 1), starts at about 1
(the std of the first x_hat, N(0, I)) and ends near sqrt(beta_{t_min}) (0.01 at t_min 0 on the
linear schedule), so the input moves from noise to a lightly perturbed estimate while x_hat
itself stays on the images' [0, 1] scale. `ve` is the same noise-to-signal ratio without
DDPM's signal scaling (x_t / sqrt(abar_t) = x_0 + sigma_t eps); at t near T it is ~150 on the
linear schedule, drowning x_hat entirely in the first stages.

The reference defaults for denoising (the issue that asked for this method, from the paper):
40 steps x 100 iterations, Adam lr 1e-3, linear betas 1e-4 ... 0.02 (T = 1000). Here: 40
stages of 100 iterations (scheduler uniform_equal), t from 999 down to 0 spaced linearly, the
linear schedule, lr 1e-3; no reg-noise (the stage noise is the input's perturbation), no
backtracking (a new input at each stage moves psnr_noisy by design). Every stage fits y, so
the GT-free rule watches the whole fit and the whole fit is the final stage for rung rules.
The input has the image's channels (input_depth, input_noise, input_scale do not apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from dipddpm.methods.base import Method, Report, Result, no_report
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.input_rules import INPUTS, InputRule
from dipddpm.methods.keys import FIT_METRICS, FIT_SUMMARY
from dipddpm.methods.problems import IMAGE_32, check_image_spec, check_net_size, image_problem
from dipddpm.methods.staged import StagedConfig


@dataclass(frozen=True)
class NoisedEstimate(InputRule):
    """x_hat_0 ~ N(0, I); at stage k's start z = x_hat + sigmas[k] eps, x_hat the last
    output (the first stage: x_hat_0)."""

    sigmas: tuple[float, ...] = (1.0, 0.5, 0.1)

    def initial(self, cfg, y, gens):
        return torch.cat([torch.randn((1, *y.shape[1:]), generator=g, device=y.device)
                          for g in gens])

    def stage_start(self, loop, st, k: int) -> None:
        x_hat = st.z if st.j == 0 else st.shown
        eps = torch.cat([torch.randn((1, *x_hat.shape[1:]), generator=g, device=x_hat.device)
                         for g in st.gens])
        st.z = x_hat + self.sigmas[k] * eps


INPUTS.register("noised_estimate")(NoisedEstimate)


def _ddpm(abar: float) -> float:
    return math.sqrt(1.0 - abar)


def _ve(abar: float) -> float:
    return math.sqrt((1.0 - abar) / abar)


NOISE_SCALES = {"ddpm": _ddpm, "ve": _ve}


@dataclass(frozen=True)
class SelfDiffusionConfig(StagedConfig):
    iters: int = 4000  # 40 stages x 100 iterations (the reference's)
    stages: int = 40  # S
    t_max: int = 999  # the first stage's timestep (sigma ~ 1)
    t_min: int = 0  # the last stage's timestep (sigma = sqrt(beta_0) = 0.01, linear)
    t_drop_first: bool = False  # t = linspace(t_max, t_min, S)
    beta_schedule: str = "linear"  # betas 1e-4 ... 0.02 at T = 1000 (the reference's)
    scheduler: str = "uniform_equal"  # equal iterations per stage
    lr: float = 1e-3  # the reference's
    reg_noise_std: float = 0.0  # the stage noise perturbs the input
    backtracking: bool = False  # a new input at each stage moves psnr_noisy by design
    input_noise_scale: Literal["ddpm", "ve"] = "ddpm"  # sigma_s from abar_{t_s} (docstring)
    reset_optimizer_each_stage: bool = False  # new Adam at every stage


PRESETS = {
    "self_diffusion": {},  # the reference's denoising defaults (see the docstring)
    "tiny": {"iters": 200, "width": 16, "depth": 3, "stages": 4, "report_every": 10},
}


def stage_sigmas(cfg: SelfDiffusionConfig) -> list[float]:
    """sigma_s of every stage, from abar at its timestep."""
    abar = cfg.process().alphas_cumprod
    return [NOISE_SCALES[cfg.input_noise_scale](float(abar[t])) for t in cfg.timesteps_list()]


def make_plan(cfg: SelfDiffusionConfig, problem) -> StagePlan:
    """S stages fitting y, each from a newly noised estimate."""
    ts, counts, sigmas = cfg.timesteps_list(), cfg.counts(), stage_sigmas(cfg)
    stages = [Stage(t=0, iters=n, target=lambda g: problem.observed) for n in counts]
    return StagePlan(stages, reset_optimizer_each_stage=cfg.reset_optimizer_each_stage,
                     info={"stage_timesteps": ts, "stage_counts": counts,
                           "stage_sigmas": [round(s, 6) for s in sigmas]},
                     input_rule=NoisedEstimate(tuple(sigmas)), final_stages=len(stages))


def run_self_diffusion(cfg: SelfDiffusionConfig, problem, report: Report = no_report,
                       seed: int = 0, resume: dict | None = None, device=None) -> Result:
    return fit(cfg, problem, make_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)


# the method's registry entry (registered in methods/__init__.py)
METHOD = Method(
    name="self_diffusion", config_cls=SelfDiffusionConfig, run=run_self_diffusion,
    make_problem=image_problem,
    metrics=FIT_METRICS, presets=PRESETS, check_trial=check_net_size, plan=make_plan,
    example_config={**PRESETS["tiny"], "iters": 12, "report_every": 4, "stages": 3},
    example_problem=IMAGE_32, check_problem_spec=check_image_spec,
    final_stage_iters=lambda cfg: cfg.iters,  # every stage fits y
    summary=FIT_SUMMARY, reproduce="dipddpm fit self-diffusion",
    help="Self-diffusion (Luo et al., NeurIPS 2025): DIP with a noised-estimate input",
    image_form=("Fit self-diffusion (Luo et al., NeurIPS 2025): DIP whose input is noised along a"
                " DDPM schedule, stage by stage. Presets: {presets:self_diffusion}."))
