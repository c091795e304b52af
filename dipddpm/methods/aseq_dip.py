"""aSeqDIP: autoencoding sequential Deep Image Prior (Alkhouri, Liang, Bell, Qu, Wang,
Ravishankar, "Image Reconstruction Via Autoencoding Sequential Deep Image Prior", NeurIPS 2024).

The input starts as the observation and is replaced by the net's last output every m
iterations; the loss adds an autoencoding term that pulls the output towards the input:

    z_0 = y
    for outer step k = 0, 1, ...:   m Adam iterations on
        L(theta) = mean((f(z_k) - y)^2) + lambda mean((f(z_k) - z_k)^2)
    then z_{k+1} = f(z_k) of the last of those iterations (detached: z carries no gradient)

The paper's defaults for denoising (the official code, Aseq_DIP_denoising.py): m = 2
iterations per outer step, lambda = 1, 2000 outer steps (4000 iterations), Adam lr 1e-4, a
U-Net of its own, sigma 15/255 in that script, no input noise. Here m = `aseq_every`,
lambda = `autoencoding_weight`, those defaults, and our nets (the skip net by default; `net:
unet` is our U-Net); reg_noise_std 0 (a positive one perturbs the fed z each iteration).
The input has the image's channels (input_depth, input_noise, input_scale do not apply).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dipddpm.config import check
from dipddpm.methods.base import Method, Report, Result, no_report
from dipddpm.methods.dip import PRESETS as DIP_PRESETS
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.input_rules import INPUTS, InputRule
from dipddpm.methods.keys import FIT_METRICS, FIT_SUMMARY
from dipddpm.methods.loss_terms import LOSSES, MSE, LossInputs, LossTerm, mean_per_member
from dipddpm.methods.problems import IMAGE_32, check_image_spec, check_net_size, image_problem


@dataclass(frozen=True)
class OutputFeedback(InputRule):
    """z_0 = y; after every `every` iterations z <- that iteration's output (detached)."""

    every: int = 2

    def initial(self, cfg, y, gens):
        return y.clone()

    def after(self, loop, st, out: torch.Tensor) -> None:
        if st.j % self.every == 0:
            st.z = out.clone()


@dataclass(frozen=True)
class Autoencoding(LossTerm):
    """lambda mean((f(z_j) - z_j)^2) per member (z_j carries no gradient)."""

    weight: float = 1.0

    def __call__(self, x: LossInputs) -> torch.Tensor:
        return self.weight * mean_per_member((x.out - x.z.detach()).square())


INPUTS.register("feedback")(OutputFeedback)
LOSSES.register("autoencoding")(Autoencoding)


@dataclass(frozen=True)
class AseqDipConfig(DipConfig):
    iters: int = 4000  # Adam iterations in all: 2000 outer steps of m = 2 (the paper's)
    lr: float = 1e-4  # the official denoising script's
    reg_noise_std: float = 0.0  # the official script feeds z itself
    aseq_every: int = 2  # m: iterations per outer step (z <- the last output after each)
    autoencoding_weight: float = 1.0  # lambda of the autoencoding term

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.aseq_every >= 1, f"aseq_every (m, iterations between input updates) must be "
                                    f">= 1, got {self.aseq_every}; the paper's is 2")
        check(self.autoencoding_weight >= 0, f"autoencoding_weight must be >= 0, got "
                                             f"{self.autoencoding_weight}; the paper's is 1")


PRESETS = {
    # the official denoising script's loop: 4000 iterations, lr 1e-4, m 2, lambda 1, no
    # backtracking (its net is its own U-Net; ours is the skip net unless net: is set)
    "aseq_paper": {"backtracking": False},
    "tiny": {**DIP_PRESETS["tiny"], "lr": 0.01},
}


def make_plan(cfg: AseqDipConfig, problem) -> StagePlan:
    """One stage fitting y from the fed-back input, loss MSE + lambda autoencoding."""
    return StagePlan([Stage(t=0, iters=cfg.iters, target=lambda g: problem.observed)],
                     loss_terms=(*MSE, Autoencoding(cfg.autoencoding_weight)),
                     input_rule=OutputFeedback(cfg.aseq_every))


def run_aseq_dip(cfg: AseqDipConfig, problem, report: Report = no_report, seed: int = 0,
                 resume: dict | None = None, device=None) -> Result:
    return fit(cfg, problem, make_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)


# the method's registry entry (registered in methods/__init__.py)
METHOD = Method(
    name="aseq_dip", config_cls=AseqDipConfig, run=run_aseq_dip, make_problem=image_problem,
    metrics=FIT_METRICS, presets=PRESETS, check_trial=check_net_size, plan=make_plan,
    example_config={**PRESETS["tiny"], "iters": 12, "report_every": 4},
    example_problem=IMAGE_32, check_problem_spec=check_image_spec,
    summary=FIT_SUMMARY, reproduce="dipddpm fit aseq-dip",
    help="aSeqDIP (Alkhouri et al., NeurIPS 2024): the output fed back as input",
    image_form=("Fit aSeqDIP (Alkhouri et al., NeurIPS 2024): the last output fed back as the "
                "input, with an autoencoding term. Presets: {presets:aseq_dip}."))
