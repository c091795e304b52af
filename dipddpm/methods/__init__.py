"""Methods by name. Each is a frozen config + a plain loop (see `base.Method`)."""

from __future__ import annotations

from dipddpm.methods import (
    aseq_dip,
    bm3d,
    ddpm,
    ddpm_config,
    dip,
    dip_prior_ddpm,
    dip_sure,
    dip_tv,
    guided_dip,
    nlm,
    noop,
    self_diffusion,
)
from dipddpm.methods.base import Method, Result
from dipddpm.methods.classical import image_problem as uncropped_problem
from dipddpm.methods.keys import FIT_METRICS, FIT_SUMMARY
from dipddpm.methods.problems import IMAGE_32, check_image_spec, check_net_size, image_problem
from dipddpm.registry import Registry

METHODS: Registry = Registry("method")

DIP_PRIOR_SUMMARY = ("iter", "psnr_gt", "ssim_gt", "psnr_vs_dip", "psnr_dip", "ssim_dip",
                     "psnr_noisy_input", "reverse_steps", "t0", "wall_s_dip", "wall_s_ddpm",
                     "wall_s")

METHODS.register("dip")(Method(
    name="dip", config_cls=dip.DipConfig, run=dip.run_dip, make_problem=image_problem,
    metrics=FIT_METRICS, presets=dip.PRESETS, check_trial=check_net_size, plan=dip.dip_plan,
    example_config={**dip.PRESETS["tiny"], "iters": 12, "report_every": 4},
    example_problem=IMAGE_32, check_problem_spec=check_image_spec, summary=FIT_SUMMARY,
    reproduce="dipddpm fit dip", help="Deep Image Prior (Ulyanov et al., CVPR 2018)",
    image_form="Fit Deep Image Prior (Ulyanov et al., CVPR 2018) to one noisy image. Presets: "
               "{presets:dip}."))
METHODS.register("guided_dip")(Method(
    name="guided_dip", config_cls=guided_dip.GuidedDipConfig, run=guided_dip.run_guided_dip,
    make_problem=image_problem, metrics=FIT_METRICS, presets=guided_dip.PRESETS,
    check_trial=check_net_size, plan=guided_dip.make_plan,
    example_config={**guided_dip.PRESETS["tiny"], "iters": 12, "stages": 3, "report_every": 4},
    example_problem=IMAGE_32, problem_presets=guided_dip.PROBLEM_PRESETS,
    final_stage_iters=lambda cfg: cfg.counts()[-1], check_problem_spec=check_image_spec,
    summary=FIT_SUMMARY, rung_rule="final",  # benchmarks/results/rung_fidelity.json
    reproduce="dipddpm fit guided-dip", help="staged / guided DIP: noisy targets, then y",
    image_form="Fit staged / guided DIP (docs/methods.md). Presets: {presets:guided_dip}."))
METHODS.register("ddpm")(Method(
    name="ddpm", config_cls=ddpm_config.DdpmConfig, run=ddpm.run_ddpm,
    make_problem=ddpm.dataset_problem,
    metrics=("iter", "epoch", "step", "train_loss", "val_loss"), presets=ddpm_config.PRESETS,
    example_config={**ddpm_config.PRESETS["tiny"], "iters": 6, "report_every": 2, "val_max": 8,
                    "sample_count": 2, "sample_steps": 2},
    example_problem={"dataset": "skimage-patches", "size": 16, "count": 32},
    check_problem_spec=ddpm.check_dataset_spec,
    summary=("steps", "epochs", "train_loss_final", "val_loss_final", "val_loss_best",
             "val_loss_best_iter", "wall_s", "n_params"),
    help="train a DDPM (Ho et al., NeurIPS 2020) on a dataset"))
METHODS.register("dip_prior_ddpm")(Method(
    name="dip_prior_ddpm", config_cls=dip_prior_ddpm.DipPriorDdpmConfig,
    run=dip_prior_ddpm.run_dip_prior_ddpm, make_problem=dip_prior_ddpm.image_problem,
    metrics=dip_prior_ddpm.METRICS, presets=dip_prior_ddpm.PRESETS, iters_key="dip_iters",
    check_trial=dip_prior_ddpm.check_trial,
    example_config={**dip_prior_ddpm.PRESETS["tiny"], "dip_iters": 12, "dip_report_every": 4,
                    "t0": 3, "baselines": False},
    example_problem={"image": "skimage:camera", "resize": True, "sigma": 25, "seed": 0},
    check_problem_spec=lambda spec: check_image_spec(spec, dip_prior_ddpm.DipPriorProblemSpec),
    summary=DIP_PRIOR_SUMMARY, help="a DIP estimate refined by a trained DDPM's reverse chain"))
METHODS.register("bm3d")(Method(
    name="bm3d", config_cls=bm3d.Bm3dConfig, run=bm3d.run_bm3d, make_problem=uncropped_problem,
    metrics=FIT_METRICS, presets=bm3d.PRESETS, example_problem=IMAGE_32,
    check_problem_spec=check_image_spec, summary=FIT_SUMMARY, reproduce="dipddpm fit bm3d",
    baseline={}, help="BM3D (CBM3D for colour) with the problem's sigma, bm3d's default profile",
    image_form="Denoise one noisy image with BM3D (CBM3D for colour), the classical baseline, "
               "on the same observation a DIP fit would get; sigma from --sigma unless --set "
               "sigma=S."))
# the DIP family from the literature: each file holds its method's entry
for _module in (self_diffusion, dip_sure, aseq_dip, dip_tv):
    METHODS.register(_module.METHOD.name)(_module.METHOD)
METHODS.register("nlm")(Method(
    name="nlm", config_cls=nlm.NlmConfig, run=nlm.run_nlm, make_problem=uncropped_problem,
    metrics=FIT_METRICS, presets=nlm.PRESETS, check_trial=nlm.check_trial,
    example_problem=IMAGE_32, check_problem_spec=check_image_spec, summary=FIT_SUMMARY,
    reproduce="dipddpm fit nlm", baseline={},
    help="non-local means (scikit-image) with the problem's sigma and the h, patch size and "
         "search distance scikit-image's documentation gives for it",
    image_form="Denoise one noisy image with non-local means (scikit-image's denoise_nl_means), "
               "the second classical baseline, on the same observation a DIP fit would get; h, "
               "patch size and search distance as scikit-image's documentation gives them for "
               "the problem's sigma (--sigma) unless --set h_factor=, patch_size=, "
               "patch_distance=."))
METHODS.register("noop")(Method(  # benchmarks of the sweep machinery only
    name="noop", config_cls=noop.NoopConfig, run=noop.run_noop, make_problem=noop.no_problem,
    metrics=noop.METRICS, presets=noop.PRESETS,
    example_config={"iters": 6, "report_every": 2}, summary=("score_best", "iters", "wall_s"),
    mutable=("x",), image_output=False,  # its checkpoint holds the iteration only
    help="no work: a score from the config (benchmarks of the sweep machinery)"))

__all__ = ["FIT_METRICS", "FIT_SUMMARY", "METHODS", "Method", "Result"]
