"""A classical denoiser's run as a DIP fit reports it: one pass, one report, one summary.

BM3D and NL-means have no iterations: their only output is their "best", their "final" and
their GT-free pick at once, so they sit in the same sweep tables, studies and paired verdicts
as the DIP family, on the same observations. `one_pass` gives such a run its report keys
(FIT_METRICS) and summary (FIT_SUMMARY, methods/keys.py; and the GT-free picks psnr_es_sm and
psnr_output a DIP-family fit also reports) from its output image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dipddpm.data.images import ImageProblem, make_image_problem
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.keys import FIT_SUMMARY, summary
from dipddpm.methods.problems import check_image_spec
from dipddpm.metrics import psnr, ssim


def image_problem(spec: Mapping[str, Any], cfg) -> ImageProblem:
    """The image problem as DIP's, uncropped (a classical denoiser takes any size)."""
    return make_image_problem(**check_image_spec(spec))


def one_pass(out: torch.Tensor, problem: ImageProblem, sigma: float, wall_s: float,
             report: Report = no_report) -> Result:
    """The Result (and the single report, at iteration 1) of a one-pass denoiser whose
    output `out` (C,H,W in [0,1]) took `wall_s` seconds with noise level `sigma` (0-255)."""
    x, y = problem.clean, problem.observed
    p_gt, p_noisy, s_gt = psnr(out, x), psnr(out, y), ssim(out, x)
    report(1, {"iter": 1, "loss": float(torch.mean((out - y) ** 2)), "psnr_noisy": p_noisy,
               "psnr_gt": p_gt, "psnr_gt_sm": p_gt, "ssim_gt": s_gt, "psnr_best": p_gt,
               "psnr_best_iter": 1, "psnr_es": p_gt, "iter_es": 1, "stage": 1, "stage_t": 0,
               "iter_final": 1, "psnr_es_sm": p_gt, "iter_es_sm": 1, "psnr_output": p_gt},
           lambda: {})
    metrics = summary(FIT_SUMMARY, iters=1, wall_s=wall_s, psnr_noisy_input=psnr(y, x),
                      psnr_gt_final=p_gt, psnr_gt_best=p_gt, psnr_best_iter=1,
                      psnr_gt_sm_final=p_gt, psnr_gt_sm_best=p_gt, psnr_gt_sm_best_iter=1,
                      psnr_noisy_final=p_noisy, ssim_gt_final=s_gt, ssim_gt_sm_final=s_gt,
                      first_reach_iter=None, n_backtracks=0, sigma_used=sigma, iter_es=1,
                      psnr_es=p_gt, es_gap_db=0.0, iter_es_sm=1, psnr_es_sm=p_gt,
                      psnr_output=p_gt)
    return Result(metrics=metrics, images={"output": out, "output_sm": out})
