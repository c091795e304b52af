"""DIP-prior DDPM: t0 = 0 is the identity, metrics and baselines, modes, resume, bad input."""

import math

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.datasets import load_dataset
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods import METHODS
from dipddpm.methods.ddpm import train_ddpm
from dipddpm.methods.ddpm_checkpoint import load_ddpm
from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig
from dipddpm.methods.dip_prior_ddpm import METRICS, refine

M = METHODS.get("dip_prior_ddpm")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    data = load_dataset("skimage-patches", size=32, count=32, eval_count=8)
    cfg = build(DdpmConfig, {**PRESETS["tiny"], "iters": 10, "sample_count": 0})
    return str(train_ddpm(cfg, data).save(tmp_path_factory.mktemp("ddpm") / "ddpm.pt"))


def config(ckpt, **kw):
    return build(M.config_cls, {**M.presets["tiny"], "checkpoint": ckpt, **kw})


def problem(ckpt, **kw):
    return M.make_problem({"image": "skimage:camera", "resize": True, **kw}, config(ckpt))


def test_t0_zero_returns_the_prior_unchanged(ckpt):
    ddpm = load_ddpm(ckpt, "cpu")
    prior = torch.rand(2, 1, 32, 32)
    for rescale in (True, False):  # with or without the hand-off's 2x - 1
        out = refine(ddpm, prior, config(ckpt, t0=0, rescale_prior=rescale), torch.Generator())
        assert torch.equal(out, prior)
    result = M.run(config(ckpt, t0=0), problem(ckpt))
    assert torch.equal(result.images["output"], result.images["dip"])
    assert result.metrics["reverse_steps"] == 0
    assert result.metrics["psnr_gt"] == result.metrics["psnr_dip"]


def test_run_reports_the_contract_metrics_and_baselines(ckpt):
    reports = []
    result = M.run(config(ckpt, t0=7), problem(ckpt), report=lambda it, m, s:
                   reports.append((it, m)))
    assert [it for it, _ in reports] == [10, 20, 30]
    assert all(set(METRICS) <= set(m) for _, m in reports)
    m = result.metrics
    for key in ("psnr_gt", "ssim_gt", "psnr_vs_dip", "psnr_dip", "reverse_steps", "wall_s_dip",
                "wall_s_ddpm", "psnr_ddpm_y", "ssim_ddpm_y", "psnr_ddpm_noise"):
        assert math.isfinite(m[key]), key
    assert m["reverse_steps"] == 8 and m["t0"] == 7
    assert result.images["output"].shape == (1, 32, 32)
    ddim = M.run(config(ckpt, t0=50, sampler="ddim", steps=5), problem(ckpt))
    assert ddim.metrics["reverse_steps"] == 5


def test_direct_hand_off_and_noise_passes(ckpt):
    cfg = config(ckpt, dip_prior_mode="noise_passes", dip_input_depth=1, init_mode="direct",
                 rescale_prior=False, baselines=False, dip_iters=0, t0=3)
    result = M.run(cfg, problem(ckpt))
    assert math.isfinite(result.metrics["psnr_gt"]) and "psnr_ddpm_y" not in result.metrics
    with pytest.raises(DipddpmError, match="dip_input_depth must equal the image channels"):
        M.run(config(ckpt, dip_prior_mode="noise_passes", dip_input_depth=4), problem(ckpt))


def test_resume_mid_dip_gives_the_same_result(ckpt):
    states = {}

    def report(it, m, state):
        if it == 10:
            states["s"] = state()

    cfg = config(ckpt, t0=4)
    whole = M.run(cfg, problem(ckpt), report=report, seed=2)
    again = M.run(cfg, problem(ckpt), resume=states["s"], seed=2)
    assert again.metrics["psnr_dip"] == pytest.approx(whole.metrics["psnr_dip"], abs=1e-6)
    assert again.metrics["psnr_gt"] == pytest.approx(whole.metrics["psnr_gt"], abs=1e-6)


def test_bad_input(ckpt, tmp_path):
    with pytest.raises(DipddpmError, match="t0 must be in 0..99"):
        M.run(config(ckpt, t0=100), problem(ckpt))
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        config(ckpt, sampler="ddim", steps=0)
    with pytest.raises(DipddpmError, match="is 512x512 but the DDPM was trained on 32x32.*"
                                           "--resize"):
        M.make_problem({"image": "skimage:camera"}, config(ckpt))
    with pytest.raises(DipddpmError, match="size 64 differs"):
        M.make_problem({"image": "skimage:camera", "size": 64}, config(ckpt))
    with pytest.raises(ConfigError, match="checkpoint is required"):
        M.make_problem({"image": "skimage:camera"}, config(""))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DipddpmError, match="corrupt"):
        M.make_problem({"image": "skimage:camera"}, config(str(tmp_path / "bad.pt")))


def test_presets():
    assert {"mnist_noise_passes", "dip_prior_default"} <= set(M.presets)
    src = build(M.config_cls, M.presets["mnist_noise_passes"])
    assert (src.dip_prior_mode, src.init_mode, src.dip_passes) == ("noise_passes", "direct", 2)
    default = build(M.config_cls, M.presets["dip_prior_default"])
    assert (default.dip_prior_mode, default.init_mode, default.rescale_prior) == (
        "fit_observation", "q_sample", True)


def test_a_null_dip_depth_is_fitted_to_the_ddpm_images():
    from dipddpm.methods.dip_prior_ddpm import DipPriorDdpmConfig

    cfg = DipPriorDdpmConfig(dip_net="skip")  # 5 scales: 32x32 would leave a 1x1 coarsest
    assert cfg.fitted_depth(1, 32) == 4 and cfg.fitted_depth(1, 28) == 2  # 28 = 4 * 7
    assert cfg.fitted_depth(3, 64) is None  # the net's own depth fits
    assert DipPriorDdpmConfig(dip_depth=5).fitted_depth(1, 32) == 5  # explicit: as given
    assert cfg.dip_config(1, 32).depth == 4 and cfg.dip_config().depth is None
