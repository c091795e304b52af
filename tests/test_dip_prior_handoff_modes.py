"""DIP-prior DDPM in studies: `t0: auto` picks the step whose forward noise matches the DIP
estimate's remaining noise, and `init_mode: scaled` hands x_t0 = sqrt(abar_t0) x_start over
with no fresh noise (the DMID hand-off)."""

from __future__ import annotations

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.diffusion import DiffusionProcess
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS, dip_prior_ddpm
from dipddpm.methods.dip_prior_ddpm import DipPriorDdpmConfig, auto_t0


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_auto_t0_matches_the_estimated_noise(schedule):
    proc = DiffusionProcess.from_schedule(schedule, 1000)
    abar = proc.alphas_cumprod.double()
    picked = []
    for sigma in (10, 25, 50):
        p = make_image_problem("skimage:camera", size=64, sigma=sigma, seed=0, grey=True)
        t, s_hat = auto_t0(proc, p.observed)
        assert abs(s_hat * 255 - sigma) < 0.2 * sigma  # the estimator finds the noise
        # independently: x_t / sqrt(abar_t) = x0 + sqrt((1 - abar_t) / abar_t) eps, and the
        # image's noise in [-1, 1] space is 2 sigma_hat
        gaps = (((1 - abar) / abar).sqrt() - 2 * s_hat).abs()
        assert gaps[t] <= min(gaps[t - 1], gaps[t + 1])
        picked.append(t)
    assert picked == sorted(picked) and picked[0] < picked[-1]  # more noise, later step


def test_scaled_hand_off_is_sqrt_abar_times_the_start_without_noise(monkeypatch, tiny_ddpm):
    from dipddpm.methods.ddpm_checkpoint import load_ddpm

    ddpm = load_ddpm(str(tiny_ddpm), torch.device("cpu"))
    seen = {}

    def chain(model, process, x_t0, t0, *args, **kw):
        seen.update(x=x_t0.clone(), t0=t0)
        return x_t0

    monkeypatch.setattr(dip_prior_ddpm, "reverse_chain", chain)
    x_dip = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    before = g.get_state().clone()
    for mode, t0 in (("scaled", 7), ("q_sample", 7)):
        cfg = build(DipPriorDdpmConfig, {"checkpoint": str(tiny_ddpm), "t0": t0,
                                         "init_mode": mode})
        dip_prior_ddpm.refine(ddpm, x_dip, cfg, g)
        abar = float(ddpm.process.alphas_cumprod[t0])
        scaled = abar ** 0.5 * (2 * x_dip - 1)
        if mode == "scaled":
            assert seen["t0"] == 7 and torch.allclose(seen["x"], scaled, atol=1e-6)
            assert torch.equal(g.get_state(), before)  # no noise drawn
        else:  # q_sample adds sqrt(1 - abar) eps on top of the same scaled start
            resid = (seen["x"] - scaled) / (1 - abar) ** 0.5
            assert 0.7 < float(resid.std()) < 1.3


def test_t0_auto_end_to_end(tiny_ddpm):
    m = METHODS.get("dip_prior_ddpm")
    cfg = build(m.config_cls, {**m.preset_values("tiny"), "checkpoint": str(tiny_ddpm),
                               "t0": "auto", "dip_iters": 10, "init_mode": "scaled"})
    problem = m.make_problem({"image": "skimage:camera", "resize": True, "sigma": 25}, cfg)
    res = m.run(cfg, problem, seed=0, device="cpu")
    t0 = res.metrics["t0"]
    assert isinstance(t0, int) and 0 <= t0 < 100 and res.metrics["t0_sigma_hat"] > 0
    assert res.metrics["reverse_steps"] == (t0 + 1 if t0 else 0)


def test_t0_auto_needs_steps_null():
    with pytest.raises(ConfigError, match="t0 auto is picked at run time, so steps must be "
                                          "null"):
        build(DipPriorDdpmConfig, {"t0": "auto", "sampler": "ddim", "steps": 5})
    with pytest.raises(ConfigError, match="t0"):
        build(DipPriorDdpmConfig, {"t0": "soon"})
