"""The defining formula of each DIP-family method (methods/self_diffusion.py, dip_sure.py,
aseq_dip.py, dip_tv.py), each against a case computed by hand here; the loop is spied on from
outside (the net's forward hooks), as tests/test_fitting_loop.py does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.errors import DipddpmError
from dipddpm.methods import fitting
from dipddpm.methods.aseq_dip import AseqDipConfig, run_aseq_dip
from dipddpm.methods.dip_sure import DipSureConfig, Sure, divergence, run_dip_sure
from dipddpm.methods.dip_tv import DipTvConfig, TotalVariation, run_dip_tv, total_variation
from dipddpm.methods.loss_terms import LossInputs
from dipddpm.methods.self_diffusion import SelfDiffusionConfig, run_self_diffusion, stage_sigmas

NET = {"width": 8, "depth": 2, "report_every": 1, "backtracking": False, "smoothing": 0.0}


class Spy:
    """Every training forward of the loop's net: its input and output."""

    def __init__(self):
        self.inputs, self.outputs = [], []

    def attach(self, net):
        def hook(module, args, out):
            if module.training:
                self.inputs.append(args[0].detach().clone())
                self.outputs.append(out.detach().clone())
        net.register_forward_hook(hook)


@pytest.fixture
def spy(monkeypatch):
    s = Spy()
    build = fitting.build_for_problem

    def spied(cfg, channels, problem):
        net = build(cfg, channels, problem)
        s.attach(net)
        return net

    monkeypatch.setattr(fitting, "build_for_problem", spied)
    return s


@pytest.fixture(scope="module")
def problem():
    return make_image_problem("skimage:astronaut", size=16, sigma=25, seed=0, multiple=4)


class Reports(list):
    def __call__(self, it, metrics, state):
        self.append(dict(metrics))


# ---------------------------------------------------------------------------- self-diffusion
def test_self_diffusion_sigmas_decrease_along_the_linear_ddpm_schedule():
    """sigma_s = sqrt(1 - abar_t) at t = 999, 499, 0 of the linear betas 1e-4 ... 0.02
    (abar computed here with numpy); `ve`: sqrt((1 - abar) / abar)."""
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - betas)
    cfg = build(SelfDiffusionConfig, {"iters": 6, "stages": 3})
    assert cfg.timesteps_list() == [999, 499, 0]
    want = [math.sqrt(1 - abar[t]) for t in (999, 499, 0)]
    got = stage_sigmas(cfg)
    assert got == pytest.approx(want, rel=1e-9)
    assert got[-1] == pytest.approx(0.01, rel=1e-6)  # sqrt(beta_0)
    assert got[0] > got[1] > got[2]
    ve = stage_sigmas(build(SelfDiffusionConfig, {"iters": 6, "stages": 3,
                                                  "input_noise_scale": "ve"}))
    assert ve == pytest.approx([math.sqrt((1 - abar[t]) / abar[t]) for t in (999, 499, 0)],
                               rel=1e-9)


def test_self_diffusion_feeds_the_noised_estimate(spy, problem):
    """x_hat_0 ~ N(0, I) and every eps are draws of the member's own generator, in order;
    stage s feeds x_s = x_hat + sigma_s eps for all its iterations, x_hat the last output of
    the stage before."""
    cfg = build(SelfDiffusionConfig, {**NET, "iters": 6, "stages": 3})
    run_self_diffusion(cfg, problem, seed=7)
    sig = stage_sigmas(cfg)
    g = torch.Generator().manual_seed(7)
    shape = (1, *problem.observed.shape)
    x_hat = torch.randn(shape, generator=g)
    for s in range(3):
        if s:
            x_hat = spy.outputs[2 * s - 1]
        x_s = x_hat + sig[s] * torch.randn(shape, generator=g)
        for j in (2 * s, 2 * s + 1):
            assert torch.allclose(spy.inputs[j], x_s, atol=1e-6), (s, j)


# ---------------------------------------------------------------------------------- DIP-SURE
def _linear(a: float):
    return lambda v: a * v


def test_sure_divergence_of_a_linear_map_converges_to_a_times_n():
    """f(y) = a y: b^T (f(y + eps b) - f(y)) / eps = a b^T b, whose mean over Gaussian probes
    is a N (N = C H W; sd of the mean of 4000: a sqrt(2N / 4000)); a Rademacher probe gives
    a N exactly."""
    a, N = 0.7, 3 * 8 * 8
    y = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    eps = torch.tensor([0.05], dtype=torch.float64)
    divs = [float(divergence(_linear(a), y, a * y,
                             torch.randn(y.shape, generator=g, dtype=torch.float64), eps))
            for _ in range(4000)]
    assert np.mean(divs) == pytest.approx(a * N, abs=5 * a * math.sqrt(2 * N / 4000))
    b = torch.randint(0, 2, y.shape, generator=g).double() * 2 - 1
    assert float(divergence(_linear(a), y, a * y, b, eps)) == pytest.approx(a * N, rel=1e-9)


def test_sure_loss_of_a_linear_map_by_hand():
    """With a Rademacher probe the estimate is exact for f = a y, so
    SURE = mean((y - a y)^2) - sigma^2 + 2 sigma^2 a, per member with its own sigma."""
    a = 0.6
    y = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.2], dtype=torch.float64)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    x = LossInputs(a * y, y, y, _linear(a), sigma, gens)
    got = Sure(eps_scale=0.5, probe="rademacher")(x)
    want = [float(((1 - a) * y[i]).square().mean()) - s ** 2 + 2 * s ** 2 * a
            for i, s in enumerate(sigma.tolist())]
    assert got.tolist() == pytest.approx(want, rel=1e-9)


def test_dip_sure_fits_the_observation_itself_with_the_problems_sigma(spy, problem):
    """The input is y (every iteration, no reg-noise); sigma 25/255 from the problem is
    recorded; SURE is not the plain MSE (the divergence term is there)."""
    rec = Reports()
    res = run_dip_sure(build(DipSureConfig, {**NET, "iters": 3}), problem, report=rec)
    y = problem.observed[None]
    assert all(torch.equal(z, y) for z in spy.inputs[::2])  # forward 1 of each iteration
    assert res.extra["sigma_source"] == "problem"
    assert res.metrics["sigma_used"] == pytest.approx(25.0)
    assert res.metrics["sigma_estimated"] == 0.0
    mse = F.mse_loss(spy.outputs[0], y).item()
    assert rec[0]["loss"] != pytest.approx(mse, rel=1e-3)


def test_dip_sure_estimates_sigma_where_the_problem_has_none_or_refuses():
    fwd = make_image_problem("skimage:astronaut", size=16, seed=0, multiple=4,
                             observation="forward")
    assert fwd.noise_std is None
    res = run_dip_sure(build(DipSureConfig, {**NET, "iters": 1}), fwd)
    assert res.extra["sigma_source"] == "estimate" and res.metrics["sigma_estimated"] == 1.0
    assert 0 < res.metrics["sigma_used"] < 255
    with pytest.raises(DipddpmError, match="estimate_sigma is false"):
        run_dip_sure(build(DipSureConfig, {**NET, "iters": 1, "estimate_sigma": False}), fwd)


# ------------------------------------------------------------------------------------ aSeqDIP
def test_aseq_input_is_the_last_output_every_m_iterations(spy, problem):
    """m = 3: iterations 0-2 feed y, 3-5 the output of iteration 2, 6 the output of 5; the
    loss is MSE(f(z), y) + lambda MSE(f(z), z), computed here from the recorded forwards."""
    rec = Reports()
    cfg = build(AseqDipConfig, {**NET, "iters": 7, "aseq_every": 3,
                                "autoencoding_weight": 0.7, "lr": 0.01})
    run_aseq_dip(cfg, problem, report=rec)
    y = problem.observed[None]
    fed = [y, y, y, spy.outputs[2], spy.outputs[2], spy.outputs[2], spy.outputs[5]]
    for j, z in enumerate(fed):
        assert torch.equal(spy.inputs[j], z), j
        o = spy.outputs[j]
        want = F.mse_loss(o, y).item() + 0.7 * F.mse_loss(o, spy.inputs[j]).item()
        assert rec[j]["loss"] == pytest.approx(want, rel=1e-5), j
    assert not torch.equal(spy.outputs[2], y)


# ------------------------------------------------------------------------------------- DIP-TV
IMG = torch.tensor([[0.0, 1.0, 0.0],
                    [0.0, 0.0, 0.0],
                    [2.0, 0.0, 0.0]])


def test_tv_of_a_hand_made_3x3_image():
    """Forward differences, zero across the last row and column:
    D_h = [[1, -1, 0], [0, 0, 0], [-2, 0, 0]], D_v = [[0, -1, 0], [2, 0, 0], [0, 0, 0]];
    isotropic: 1 + sqrt(2) + 2 + 2; anisotropic: 1 + (1 + 1) + 2 + 2."""
    x = IMG[None, None]
    assert float(total_variation(x, "isotropic")) == pytest.approx(5 + math.sqrt(2))
    assert float(total_variation(x, "anisotropic")) == pytest.approx(7.0)
    two = torch.cat([x, 2 * x])  # per member; and over channels, summed
    assert total_variation(two).tolist() == pytest.approx([5 + math.sqrt(2),
                                                           2 * (5 + math.sqrt(2))])
    assert float(total_variation(torch.cat([x, x], 1))) == pytest.approx(2 * (5 + math.sqrt(2)))
    term = TotalVariation(weight=0.3)
    x_in = LossInputs(x, x, x, lambda v: v, torch.zeros(1), [torch.Generator()])
    assert float(term(x_in)) == pytest.approx(0.3 * (5 + math.sqrt(2)) / 9)


def test_tv_gradient_is_finite_where_the_image_is_flat():
    x = torch.zeros(1, 1, 3, 3, requires_grad=True)
    total_variation(x).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) == 0


def test_dip_tv_loss_is_mse_plus_weighted_tv(spy, problem):
    rec = Reports()
    run_dip_tv(build(DipTvConfig, {**NET, "iters": 2, "tv_weight": 0.5}), problem,
               report=rec)
    y = problem.observed[None]
    for j, o in enumerate(spy.outputs):
        want = F.mse_loss(o, y).item() + 0.5 * float(total_variation(o)) / y.numel()
        assert rec[j]["loss"] == pytest.approx(want, rel=1e-5), j
