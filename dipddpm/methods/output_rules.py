"""The fitting loop's output seam: which output a fit reports (`output:` in a DIP-family config).

Every fit keeps its last output, its smoothed output (o_sm <- s o_sm + (1 - s) o_j), the
GT-free early-stopping rule's pick of the raw outputs (`psnr_es`, `iter_es`) and of the
smoothed ones (`psnr_es_sm`, `iter_es_sm`). The output rule names the one the fit *reports*:
its PSNR is `psnr_output` in every report and in the summary (a sweep may optimise it), and its
image is in the result under the rule's name.

    last      the last output                                        psnr_gt / psnr_gt_final
    smoothed  the smoothed output at the end                         psnr_gt_sm / ..._sm_final
    es        the GT-free pick of the raw outputs                    psnr_es
    es_sm     the GT-free pick of the smoothed outputs               psnr_es_sm
    ensemble  each replicate reports its es_sm pick, and the trial also reports the mean of
              its replicates' outputs (an ensemble, the DIP paper's "averaged independent
              runs"): at each replicate's GT-free pick (psnr_output, psnr_es, psnr_es_sm),
              at each replicate's oracle best (psnr_gt_best, psnr_gt_sm_best: the outputs
              of best psnr_gt, uses the ground truth) and at the end (psnr_gt_final,
              psnr_gt_sm_final). The replicates must see one observation (a study's
              `problem.shared_noise: true`; `fit --replicates K` fits one observation).

An ensemble row of a study's `pairs/` table has `ensemble` true and `replicate` -1; every
replicate keeps its own row (`ensemble` false). Fused replicates cost one net; the mean is
taken once the fits end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from dipddpm.metrics import psnr, ssim
from dipddpm.registry import Registry

OUTPUTS: Registry = Registry("output rule")

# ensemble metric -> the image of each replicate it averages
ENSEMBLE_IMAGES = {"psnr_gt_final": "output", "psnr_gt_sm_final": "output_sm",
                   "psnr_es": "output_es", "psnr_es_sm": "output_es_sm",
                   "psnr_gt_best": "output_oracle", "psnr_gt_sm_best": "output_oracle_sm"}
ENSEMBLE_REPLICATE = -1  # the `replicate` of an ensemble row in a study's pairs table


@dataclass(frozen=True)
class OutputRule:
    help: str
    report_key: str  # the report metric that is the reported output's PSNR
    summary_key: str  # the summary metric likewise
    image: str  # the result image that is the reported output
    ensemble: bool = False  # the trial also reports the mean over its replicates

    @property
    def images(self) -> tuple[str, ...]:
        """The images each member's result must hold for this rule."""
        if self.ensemble:
            return tuple(dict.fromkeys((self.image, *ENSEMBLE_IMAGES.values())))
        return (self.image,)

    @property
    def keeps_oracle(self) -> bool:
        """The loop keeps each member's oracle-best outputs (for the ensemble at the best)."""
        return "output_oracle" in self.images


OUTPUTS.register("last")(OutputRule("the last output", "psnr_gt", "psnr_gt_final", "output"))
OUTPUTS.register("smoothed")(OutputRule(
    "the smoothed output at the end", "psnr_gt_sm", "psnr_gt_sm_final", "output_sm"))
OUTPUTS.register("es")(OutputRule(
    "the GT-free pick of the raw outputs", "psnr_es", "psnr_es", "output_es"))
OUTPUTS.register("es_sm")(OutputRule(
    "the GT-free pick of the smoothed outputs", "psnr_es_sm", "psnr_es_sm", "output_es_sm"))
OUTPUTS.register("ensemble")(OutputRule(
    "the mean of the replicates' outputs (each replicate: its es_sm pick)", "psnr_es_sm",
    "psnr_es_sm", "output_es_sm", ensemble=True))


def ensemble_metrics(images: list[Mapping[str, torch.Tensor]], clean: torch.Tensor,
                     observed: torch.Tensor, rule: OutputRule, uint8: bool = False) -> dict:
    """The metrics of the mean over replicates of each kind of output (ENSEMBLE_IMAGES),
    against the clean image; `psnr_output` is the rule's. `images`: each replicate's result
    images, (C,H,W) in [0, 1]."""
    means = {name: torch.stack([im[name] for im in images]).mean(0)
             for name in dict.fromkeys(ENSEMBLE_IMAGES.values())}
    out = {key: psnr(means[name], clean, uint8) for key, name in ENSEMBLE_IMAGES.items()}
    out.update(psnr_output=out[rule.summary_key], psnr_noisy_input=psnr(observed, clean),
               psnr_noisy_final=psnr(means["output"], observed, uint8),
               ssim_gt_final=ssim(means["output"], clean),
               ssim_gt_sm_final=ssim(means["output_sm"], clean), n_members=len(images))
    return out


def mean_image(images: list[Mapping[str, torch.Tensor]], rule: OutputRule) -> torch.Tensor:
    """The ensemble's reported image: the mean of the replicates' reported outputs."""
    return torch.stack([im[rule.image] for im in images]).mean(0)
