"""A study trial's ensembles: under an ensemble output rule (`output: ensemble`,
output_rules.py), the mean of each image's replicates' outputs, as rows of their own.

Every replicate keeps its row (`ensemble` false); each image gets one more row, `ensemble` true
and `replicate` -1 (ENSEMBLE_REPLICATE), with the metrics of the mean images
(`output_rules.ensemble_metrics`) and the replicates' shared observation (its noise seed). The
trial's summary gets their mean over the images as `ens_<metric>`. The replicates must share
their observation (`problem.shared_noise: true`): averaging fits of different noise draws
would use more than one observation.
"""

from __future__ import annotations

import math
from typing import Any

from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods.base import Result
from dipddpm.methods.output_rules import (
    ENSEMBLE_REPLICATE,
    OUTPUTS,
    OutputRule,
    ensemble_metrics,
    mean_image,
)

# the ensemble metrics the trial's summary carries, as ens_<metric>
SUMMARY_KEYS = ("psnr_output", "psnr_es", "psnr_es_sm", "psnr_gt_best", "psnr_gt_sm_best",
                "psnr_gt_final", "psnr_gt_sm_final", "ssim_gt_final")


def output_rule(cfg: Any) -> OutputRule:
    return OUTPUTS.get(getattr(cfg, "output", "last"))


def check_replicates(cfg: Any, replicates: int, shared: bool = True,
                     where: str = "problem.replicates") -> None:
    """An ensemble output rule needs >= 2 replicates of one observation (one line, before
    any fit)."""
    if not output_rule(cfg).ensemble:
        return
    if replicates < 2:
        raise ConfigError(f"output: ensemble is the mean over a trial's replicates, but "
                          f"{where} is {replicates}; give {where} >= 2 (e.g. 2), or report "
                          f"one fit's output (output: es_sm)")
    if not shared:
        raise ConfigError("output: ensemble averages replicates of one observation, but the "
                          "study's replicates each draw their own noise; set "
                          "problem.shared_noise: true (replicates then differ in their fit "
                          "seed only)")


def _groups(pairs: list) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        out.setdefault(p.spec.image, []).append(i)
    return out


def ensemble_rows(cfg: Any, pairs: list, results: list[Result]) -> list[tuple[dict, dict]]:
    """(row, images) of each image's ensemble; none unless the output rule is an ensemble."""
    rule = output_rule(cfg)
    if not rule.ensemble:
        return []
    out = []
    for image, idx in _groups(pairs).items():
        seeds = {int(pairs[i].spec.problem.get("seed", 0)) for i in idx}
        if len(seeds) != 1:
            raise DipddpmError(f"image {image}: an ensemble averages replicates of one "
                               f"observation, but they have noise seeds {sorted(seeds)}; set "
                               f"problem.shared_noise: true")
        prob, images = pairs[idx[0]].problem, [results[i].images for i in idx]
        metrics = ensemble_metrics(images, prob.clean, prob.observed, rule,
                                   bool(getattr(cfg, "psnr_uint8", False)))
        row = {"image": image, "replicate": ENSEMBLE_REPLICATE, "ensemble": True, "seed": None,
               "noise_seed": seeds.pop(), "height": int(prob.observed.shape[-2]),
               "width": int(prob.observed.shape[-1]), **metrics}
        out.append((row, {"output": mean_image(images, rule)}))
    return out


def ensemble_summary(rows: list[dict]) -> dict[str, float]:
    """ens_<metric>: the mean over the images' ensemble rows."""
    if not rows:
        return {}
    return {f"ens_{k}": math.fsum(r[k] for r in rows) / len(rows) for k in SUMMARY_KEYS}
