"""The forward process's own rules (docs/methods.md: DDPM, Conventions): which betas it takes,
the float64 tables it keeps, and how a timestep broadcasts over a batch. Its formulas are
checked against the test's own arithmetic in test_sampling_formulas.py; every process here is
built inside its test."""

import math

import pytest
import torch

from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.schedules import make_betas
from dipddpm.errors import ConfigError


@pytest.mark.parametrize("betas, why", [
    ([0.1, 0.0, 0.2], r"shape \(3,\), range \[0, 0.2\]"),  # a zero beta: alpha_bar never moves
    ([0.1, 1.5], r"shape \(2,\), range \[0.1, 1.5\]"),
    ([[0.1, 0.2]], r"shape \(1, 2\)"),
    ([], r"shape \(0,\); build them"),
])
def test_betas_outside_0_1_or_not_one_per_step_are_refused(betas, why):
    with pytest.raises(ConfigError, match=r"betas must be one value per timestep \(at least "
                                          r"one\), each in \(0, 1\]; got " + why):
        DiffusionProcess(torch.tensor(betas))


def test_a_beta_of_one_is_allowed_and_ends_the_signal():
    p = DiffusionProcess(torch.tensor([0.5, 1.0]))
    assert p.T == 2 and p.alphas_cumprod[-1].item() == 0.0
    assert DiffusionProcess(torch.tensor([0.3])).T == 1  # one step is a process too


def test_tables_are_float64_whatever_the_input():
    betas = torch.linspace(1e-3, 0.2, 7, dtype=torch.float32)
    p = DiffusionProcess(betas)
    assert p.T == 7
    for name in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance",
                 "posterior_mean_coef1", "posterior_mean_coef2", "snr"):
        assert getattr(p, name).dtype == torch.float64, name
        assert getattr(p, name).shape == (7,), name
    # float64 products of the float32 betas, not float32 ones
    want = math.prod(1 - float(b) for b in betas)
    assert p.alphas_cumprod[-1].item() == pytest.approx(want, rel=1e-14)
    assert p.alphas_cumprod_prev[0].item() == 1.0


def test_from_schedule_passes_the_schedule_parameters():
    p = DiffusionProcess.from_schedule("cosine", 50, min_beta=0.02)
    assert torch.equal(p.betas, make_betas("cosine", 50, min_beta=0.02))
    assert p.betas.min().item() == pytest.approx(0.02)
    assert not torch.equal(p.betas, make_betas("cosine", 50))


def test_q_sample_draws_standard_normal_noise_when_none_is_given():
    p = DiffusionProcess.from_schedule("linear", 100)
    x0 = torch.rand(3, 2, 8, 8)
    torch.manual_seed(5)
    got = p.q_sample(x0, 40)
    torch.manual_seed(5)
    want = p.q_sample(x0, 40, torch.randn_like(x0))
    assert torch.equal(got, want)
    assert not torch.equal(got, p.q_sample(x0, 40, torch.zeros_like(x0)))


def test_an_integer_timestep_broadcasts_over_the_batch_not_the_channels():
    p = DiffusionProcess.from_schedule("linear", 100)
    x0 = torch.rand(2, 3, 4, 5)  # batch 2, channels 3: a per-channel gather would misshape
    eps = torch.randn_like(x0)
    xt = p.q_sample(x0, 40, eps)
    assert xt.shape == x0.shape
    a = p.alphas_cumprod[40].item()
    assert torch.allclose(xt, math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, atol=1e-6)
    per_item = p.q_sample(x0, torch.tensor([40, 40]), eps)
    assert torch.equal(xt, per_item)
