"""DIP-SURE: Deep Image Prior fitted by Stein's unbiased risk estimate (Jo, Chun, Choi,
"Rethinking Deep Image Prior for Denoising", ICCV 2021).

The net's input is the noisy observation itself and the loss is SURE, an unbiased estimate
of the mean squared error to the clean image under Gaussian noise of std sigma, so the fit
needs no ground truth and is meant to need no early stopping:

    z = y  (+ reg_noise_std n_j if asked; the paper's DIP-SURE adds none)
    L(theta) = ||y - f(y)||^2 / N - sigma^2 + 2 sigma^2 / N div_y f(y),     N = C H W
    div_y f(y) ~ b^T (f(y + eps b) - f(y)) / eps                (Monte Carlo, Ramani et al. 2008)

with one probe b per iteration and member, drawn from the member's own generator: Gaussian
N(0, I) (the paper's) or Rademacher (+-1) (`sure_probe`), and eps = `sure_eps` x sigma (the
official code's perturbation, `--epsilon 0.5` times sigma). The gradient flows through both
forwards. sigma (in [0, 1] units) is the problem's (its sigma / 255 for a Gaussian
observation), or, where the problem gives none (a forward-noised observation) and
`estimate_sigma` is true, `skimage.restoration.estimate_sigma` of y (the wavelet MAD
estimate); with neither, the fit is refused before it starts. Which one is recorded: the
result's `extra.sigma_source` (problem | estimate) and the summary's `sigma_used` (0-255 units,
as BM3D's) and `sigma_estimated` (1.0 or 0.0).

The paper's defaults (the official code, gistvision/DIP-denosing, dip_type dip_sure): input y,
3000 iterations, RAdam lr 0.1 halved at 2000 and 3000 iterations, Gaussian probes, eps 0.5
sigma, backtracking when psnr_noisy falls 5 dB, a running average of the outputs with ratio
0.99 (our smoothing), its own S2S net. Here: 3000 iterations, Gaussian probes, eps 0.5 sigma,
smoothing 0.99 and backtracking as DIP's; our one optimizer (Adam) at DIP's lr 0.01 (the
paper's 0.1 relies on RAdam's warm-up), our nets. The input has the image's channels
(input_depth, input_noise, input_scale do not apply).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from dipddpm.config import check
from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Method, Report, Result, no_report
from dipddpm.methods.dip import PRESETS as DIP_PRESETS
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.input_rules import ObservationInput
from dipddpm.methods.keys import FIT_METRICS, FIT_SUMMARY
from dipddpm.methods.loss_terms import LOSSES, LossInputs, LossTerm, mean_per_member
from dipddpm.methods.problems import IMAGE_32, check_image_spec, check_net_size, image_problem


def _gaussian(shape, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, device=g.device)


def _rademacher(shape, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=g, device=g.device).mul_(2).sub_(1).float()


PROBES: dict[str, Callable[..., torch.Tensor]] = {"gaussian": _gaussian,
                                                  "rademacher": _rademacher}


def divergence(net: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
               out: torch.Tensor, b: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The Monte Carlo divergence of each member, (K,): b^T (f(z + eps b) - f(z)) / eps,
    eps (K,) per member."""
    e = eps.view(-1, *([1] * (z.dim() - 1)))
    return (b * (net(z + e * b) - out)).flatten(1).sum(1) / eps


@dataclass(frozen=True)
class Sure(LossTerm):
    """SURE per member (see the module docstring); replaces the MSE."""

    eps_scale: float = 0.5  # eps = eps_scale x sigma
    probe: Literal["gaussian", "rademacher"] = "gaussian"

    def __call__(self, x: LossInputs) -> torch.Tensor:
        sigma = x.sigma.to(x.out.dtype)
        eps = self.eps_scale * sigma
        b = x.per_member(lambda g: PROBES[self.probe](x.z.shape[1:], g)).to(x.z.dtype)
        div = divergence(x.net, x.z, x.out, b, eps)
        N = x.out[0].numel()
        fit = mean_per_member((x.target - x.out).square())
        return fit - sigma.square() + 2 * sigma.square() / N * div


LOSSES.register("sure")(Sure)


@dataclass(frozen=True)
class DipSureConfig(DipConfig):
    iters: int = 3000  # the official code's default
    reg_noise_std: float = 0.0  # DIP-SURE feeds y itself (no input noise)
    sure_probe: Literal["gaussian", "rademacher"] = "gaussian"  # the divergence's probe b
    sure_eps: float = 0.5  # eps = sure_eps x sigma (the official code's --epsilon 0.5)
    # where the problem gives no sigma (a forward-noised observation): estimate it from y
    # (skimage.restoration.estimate_sigma); false refuses such a problem
    estimate_sigma: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sure_eps > 0, f"sure_eps must be > 0 (eps = sure_eps x sigma), got "
                                 f"{self.sure_eps}; the paper's is 0.5")


PRESETS = {
    "dip_sure": {},  # the paper's DIP-SURE (see the module docstring for what differs)
    "tiny": dict(DIP_PRESETS["tiny"]),
}


def noise_level(cfg: DipSureConfig, problem) -> tuple[float, bool]:
    """(sigma in [0, 1] units, whether it was estimated); refused in one line with neither."""
    if problem.noise_std is not None:
        return float(problem.noise_std), False
    if not cfg.estimate_sigma:
        raise DipddpmError(
            f"dip_sure needs the noise level sigma: the problem {problem.name or ''} gives "
            f"none (a forward-noised observation) and estimate_sigma is false; set "
            f"estimate_sigma=true (estimate it from the observation) or use a gaussian "
            f"observation with its sigma")
    from skimage.restoration import estimate_sigma

    y = problem.observed.detach().cpu().permute(1, 2, 0).double().numpy()
    return float(estimate_sigma(y, channel_axis=-1, average_sigmas=True)), True


def check_trial(cfg: DipSureConfig, problem) -> None:
    """The net fits the image, and sigma is known or may be estimated (before any fit)."""
    check_net_size(cfg, problem)
    if problem.noise_std is None and not cfg.estimate_sigma:
        noise_level(cfg, problem)


def make_plan(cfg: DipSureConfig, problem) -> StagePlan:
    """One stage: input y, loss SURE with this member's sigma."""
    sigma, estimated = noise_level(cfg, problem)
    return StagePlan([Stage(t=0, iters=cfg.iters, target=lambda g: problem.observed)],
                     info={"sigma_source": "estimate" if estimated else "problem"},
                     loss_terms=(Sure(cfg.sure_eps, cfg.sure_probe),),
                     input_rule=ObservationInput(), sigma=sigma,
                     metrics={"sigma_used": sigma * 255.0, "sigma_estimated": float(estimated)})


def run_dip_sure(cfg: DipSureConfig, problem, report: Report = no_report, seed: int = 0,
                 resume: dict | None = None, device=None) -> Result:
    return fit(cfg, problem, make_plan(cfg, problem), report=report, seed=seed, resume=resume,
               device=device)


# the method's registry entry (registered in methods/__init__.py)
METHOD = Method(
    name="dip_sure", config_cls=DipSureConfig, run=run_dip_sure, make_problem=image_problem,
    metrics=FIT_METRICS, presets=PRESETS, check_trial=check_trial, plan=make_plan,
    example_config={**PRESETS["tiny"], "iters": 12, "report_every": 4},
    example_problem=IMAGE_32, check_problem_spec=check_image_spec,
    summary=FIT_SUMMARY, reproduce="dipddpm fit dip-sure",
    help="DIP-SURE (Jo, Chun, Choi, ICCV 2021): SURE loss, no ground truth",
    image_form=("Fit DIP-SURE (Jo, Chun, Choi, ICCV 2021): the noisy image as input, SURE as the "
                "loss (no ground truth). Presets: {presets:dip_sure}."))
