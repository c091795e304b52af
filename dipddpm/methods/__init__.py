"""Methods by name. Each is a frozen config + a plain loop (see `base.Method`)."""

from __future__ import annotations

from dipddpm.methods import dip, guided_dip
from dipddpm.methods.base import Method, Result
from dipddpm.methods.problems import image_problem
from dipddpm.registry import Registry

METHODS: Registry = Registry("method")

FIT_METRICS = ("iter", "loss", "psnr_noisy", "psnr_gt", "psnr_gt_sm", "ssim_gt", "psnr_best",
               "psnr_best_iter", "stage", "stage_t")

METHODS.register("dip")(Method(
    name="dip", config_cls=dip.DipConfig, run=dip.run_dip, make_problem=image_problem,
    metrics=FIT_METRICS, presets=dip.PRESETS))
METHODS.register("guided_dip")(Method(
    name="guided_dip", config_cls=guided_dip.GuidedDipConfig, run=guided_dip.run_guided_dip,
    make_problem=image_problem, metrics=FIT_METRICS, presets=guided_dip.PRESETS))

__all__ = ["METHODS", "Method", "Result"]
