"""DIP-TV: Deep Image Prior with a total variation penalty (Liu, Sun, Xu, Kamilov, "Image
restoration using total variation regularized deep image prior", ICASSP 2019).

The net, its input and the update are DIP's (dip.py): z_j = z + reg_noise_std n_j, one Adam
step per iteration on

    L(theta) = 1/N ( ||y - f(z_j)||^2 + lambda TV(f(z_j)) ),      N = C H W,

the paper's objective ||y - f||^2 + lambda TV(f) divided by N, so that its data term is DIP's
MSE and lambda (`tv_weight`) means the same at every image size. TV is the paper's isotropic
total variation, summed over channels, on forward differences (zero across the last row and
column):

    TV(x) = sum_c sum_p sqrt((D_h x)_p^2 + (D_v x)_p^2)       (`tv_kind: isotropic`, default)
    TV(x) = sum_c sum_p |(D_h x)_p| + |(D_v x)_p|             (`tv_kind: anisotropic`)

(at a pixel with no difference the isotropic term's gradient is taken as 0, its subgradient).

The paper's defaults: DIP's net, input and Adam (Ulyanov et al.), the TV term added to the
least-squares loss; lambda is chosen per experiment (the paper reports denoising and
deblurring gains from the TV term, not one lambda for all images). Here: DIP's defaults for
everything else and `tv_weight` 0.01 in the units above, a value to search around
(`tv_weight` >= 0; 0 is plain DIP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dipddpm.config import check
from dipddpm.methods.base import Method, Report, Result, no_report
from dipddpm.methods.dip import PRESETS as DIP_PRESETS
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.keys import FIT_METRICS, FIT_SUMMARY
from dipddpm.methods.loss_terms import LOSSES, MSE, LossInputs, LossTerm
from dipddpm.methods.problems import IMAGE_32, check_image_spec, check_net_size, image_problem


def differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences (D_h x, D_v x) of (..., H, W) images, 0 across the last column and
    row (the same shape as x)."""
    dh = torch.zeros_like(x)
    dv = torch.zeros_like(x)
    dh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    dv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return dh, dv


def _isotropic(dh: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([dh, dv]), dim=0)  # gradient 0 at 0


def _anisotropic(dh: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    return dh.abs() + dv.abs()


TV_KINDS = {"isotropic": _isotropic, "anisotropic": _anisotropic}


def total_variation(x: torch.Tensor, kind: str = "isotropic") -> torch.Tensor:
    """TV of each image of a batch (K, C, H, W) -> (K,), summed over channels and pixels."""
    return TV_KINDS[kind](*differences(x)).flatten(1).sum(1)


@dataclass(frozen=True)
class TotalVariation(LossTerm):
    """lambda TV(f(z_j)) / N per member."""

    weight: float = 0.01
    kind: Literal["isotropic", "anisotropic"] = "isotropic"

    def __call__(self, x: LossInputs) -> torch.Tensor:
        return self.weight * total_variation(x.out, self.kind) / x.out[0].numel()


LOSSES.register("tv")(TotalVariation)


@dataclass(frozen=True)
class DipTvConfig(DipConfig):
    tv_weight: float = 0.01  # lambda of lambda TV(f)/N added to DIP's MSE; 0 = plain DIP
    tv_kind: Literal["isotropic", "anisotropic"] = "isotropic"  # the paper's: isotropic

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.tv_weight >= 0, f"tv_weight must be >= 0 (the weight of the TV term; 0 is "
                                   f"plain DIP), got {self.tv_weight}")


PRESETS = {
    # DIP's defaults with the TV term (the original DIP notebook's net and 3000 iterations)
    "dip_tv": {},
    "tiny": dict(DIP_PRESETS["tiny"]),
}


def make_plan(cfg: DipTvConfig, problem) -> StagePlan:
    """One stage fitting y, loss MSE + lambda TV / N."""
    return StagePlan([Stage(t=0, iters=cfg.iters, target=lambda g: problem.observed)],
                     loss_terms=(*MSE, TotalVariation(cfg.tv_weight, cfg.tv_kind)))


def run_dip_tv(cfg: DipTvConfig, problem, report: Report = no_report, seed: int = 0,
               resume: dict | None = None, device=None) -> Result:
    return fit(cfg, problem, make_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)


# the method's registry entry (registered in methods/__init__.py)
METHOD = Method(
    name="dip_tv", config_cls=DipTvConfig, run=run_dip_tv, make_problem=image_problem,
    metrics=FIT_METRICS, presets=PRESETS, check_trial=check_net_size, plan=make_plan,
    example_config={**PRESETS["tiny"], "iters": 12, "report_every": 4},
    example_problem=IMAGE_32, check_problem_spec=check_image_spec,
    summary=FIT_SUMMARY, reproduce="dipddpm fit dip-tv",
    help="DIP-TV (Liu, Sun, Xu, Kamilov, ICASSP 2019): DIP plus total variation",
    image_form=("Fit DIP-TV (Liu, Sun, Xu, Kamilov, ICASSP 2019): DIP's loss plus total "
                "variation. Presets: {presets:dip_tv}."))
