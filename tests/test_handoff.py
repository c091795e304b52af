"""DIP-prior DDPM's hand-off (docs/methods.md, DIP-prior DDPM) and its same-budget baselines,
against formulas.

A stand-in DDPM (a fixed eps model that records every call) replaces the trained one, so the
chain's first input - the hand-off itself - and the timesteps of each chain can be read off.
"""

import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.diffusion import DiffusionProcess
from dipddpm.methods import dip_prior_ddpm as dpd

T = 50
ABAR = np.cumprod(1 - np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T))  # the linear schedule


class RecordingEps(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))  # the loop finds the device from a parameter
        self.calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, x, t):
        self.calls.append((int(t[0]), x.detach().double().clone()))
        return 0.3 * torch.tanh(x) + self.w


def fake_ddpm(C=1, S=16):
    return SimpleNamespace(model=RecordingEps(), process=DiffusionProcess.from_schedule(
        "linear", T), cfg=SimpleNamespace(objective="eps", amp=False),
        spec=SimpleNamespace(channels=C, image_size=S))


def config(**kw):
    return build(dpd.DipPriorDdpmConfig, {**dpd.PRESETS["tiny"], "checkpoint": "stand-in.pt",
                                          **kw})


def prior():
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))


def first_draw(seed, shape=(2, 1, 16, 16)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("rescale", [True, False])
def test_q_sample_hand_off(rescale):
    """x_t0 = sqrt(abar_t0) x_start + sqrt(1 - abar_t0) eps, x_start = 2 x_dip - 1 or x_dip."""
    ddpm, p, t0 = fake_ddpm(), prior(), 10
    dpd.refine(ddpm, p, config(t0=t0, rescale_prior=rescale), torch.Generator().manual_seed(5))
    t, x = ddpm.model.calls[0]
    x_start = (2 * p - 1 if rescale else p).double()
    want = math.sqrt(ABAR[t0]) * x_start + math.sqrt(1 - ABAR[t0]) * first_draw(5)
    assert t == t0 and torch.allclose(x, want, atol=1e-6)
    assert [c[0] for c in ddpm.model.calls] == list(range(t0, -1, -1))


@pytest.mark.parametrize("rescale", [True, False])
def test_direct_hand_off(rescale):
    ddpm, p = fake_ddpm(), prior()
    dpd.refine(ddpm, p, config(t0=6, init_mode="direct", rescale_prior=rescale),
               torch.Generator().manual_seed(5))
    want = (2 * p - 1 if rescale else p).double()
    assert ddpm.model.calls[0][0] == 6 and torch.allclose(ddpm.model.calls[0][1], want)


def test_the_result_is_mapped_back_to_unit_range():
    """One DDIM step from t0 to -1 returns clip(x0_hat); the result is (x0_hat + 1) / 2."""
    ddpm, p, t0 = fake_ddpm(), prior(), 30
    out = dpd.refine(ddpm, p, config(t0=t0, sampler="ddim", steps=1),
                     torch.Generator().manual_seed(2))
    _, x = ddpm.model.calls[0]
    x0 = ((x - math.sqrt(1 - ABAR[t0]) * 0.3 * torch.tanh(x)) / math.sqrt(ABAR[t0])).clamp(-1, 1)
    assert torch.allclose(out.double(), (x0 + 1) / 2, atol=1e-6)


def ddim_ts(t0, S):
    """int(linspace(-1, t0, S+1)) from t0 down, in exact arithmetic, without the final -1."""
    return [int(Fraction(-1) + Fraction(k * (t0 + 1), S)) for k in range(S, 0, -1)]


@pytest.mark.parametrize("sampler_kw, n", [({"sampler": "ddpm", "t0": 7}, 8),
                                           ({"sampler": "ddim", "t0": 20, "steps": 3}, 3)])
def test_run_and_its_baselines_take_the_same_number_of_steps(monkeypatch, sampler_kw, n):
    """The DIP-prior chain, the chain from y and the one from pure noise at T-1 each take
    `reverse_steps` model calls; y gets the same hand-off (and the same eps) as x_dip."""
    ddpm = fake_ddpm()
    monkeypatch.setattr(dpd, "load_ddpm", lambda *a, **k: ddpm)
    problem = make_image_problem("skimage:camera", size=16, grey=True)
    cfg = config(dip_iters=3, **sampler_kw)
    res = dpd.run_dip_prior_ddpm(cfg, problem, seed=1)
    calls = ddpm.model.calls
    t0 = sampler_kw["t0"]
    chain = list(range(t0, -1, -1)) if sampler_kw["sampler"] == "ddpm" else ddim_ts(t0, n)
    assert len(chain) == n and res.metrics["reverse_steps"] == n and res.metrics["t0"] == t0
    assert [t for t, _ in calls] == chain + chain + ddim_ts(T - 1, n)
    eps = first_draw(1 + 1, (1, 1, 16, 16))  # the chains' generator: seed + 1
    x_dip = res.images["dip"][None].double()
    for i, start in ((0, x_dip), (n, problem.observed[None].double())):
        want = math.sqrt(ABAR[t0]) * (2 * start - 1) + math.sqrt(1 - ABAR[t0]) * eps
        assert torch.allclose(calls[i][1], want, atol=1e-6)
    assert torch.allclose(calls[2 * n][1], first_draw(1 + 2, (1, 1, 16, 16)))  # N(0, I)
    for key in ("psnr_ddpm_y", "psnr_ddpm_noise", "psnr_gt", "psnr_dip"):
        assert math.isfinite(res.metrics[key])
