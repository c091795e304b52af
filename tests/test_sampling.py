"""The shared reverse chain: posterior against closed forms, oracle recovery, time grids."""

import numpy as np
import pytest
import torch

from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.sampling import SamplerConfig, reverse_chain, reverse_steps, time_pairs
from dipddpm.errors import ConfigError, DipddpmError


def proc() -> DiffusionProcess:
    """Built inside each test, not at import: a module-level process is built once, before
    mutation testing switches a mutant on, and would hide every mutant of its buffers."""
    return DiffusionProcess.from_schedule("linear", 1000)


@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_posterior_matches_the_gaussian_product(t):
    """q(x_{t-1} | x_t, x0) from Bayes: prior N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}) times the
    likelihood N(x_t; sqrt(alpha_t) x_{t-1}, beta_t)."""
    g = torch.Generator().manual_seed(t)
    x0, x_t = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64).unbind(0)
    x0, x_t = x0[None], x_t[None]
    p = proc()
    abar_prev = p.alphas_cumprod[t - 1].item() if t > 0 else 1.0
    beta, alpha = p.betas[t].item(), 1 - p.betas[t].item()
    mean, var, log_var = p.q_posterior(x0, x_t, t)
    if t == 0:
        assert var.item() == pytest.approx(0.0, abs=1e-12)
        assert torch.allclose(mean, x0)
        assert log_var.item() == pytest.approx(np.log(1e-20))
        return
    precision = 1 / (1 - abar_prev) + alpha / beta
    want_mean = (np.sqrt(abar_prev) * x0 / (1 - abar_prev) + np.sqrt(alpha) * x_t / beta)
    want_mean = want_mean / precision
    assert var.item() == pytest.approx(1 / precision, rel=1e-9)
    assert torch.allclose(mean, want_mean, atol=1e-10)


def oracle(p: DiffusionProcess, x0: torch.Tensor, objective: str):
    """A model that knows x0: returns the true eps / x0 / v of its input."""

    def model(x_t, t):
        ti = int(t[0])
        eps = p.predict_eps(x_t, ti, x0)
        return {"eps": eps, "x0": x0.expand_as(x_t), "v": p.velocity(x0, ti, eps)}[objective]

    return model


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
@pytest.mark.parametrize("cfg", [SamplerConfig("ddpm", var_type="beta_tilde"),
                                 SamplerConfig("ddpm", var_type="beta", clip_x0=False),
                                 SamplerConfig("ddim", steps=7, eta=0.0),
                                 SamplerConfig("ddim", steps=3, eta=1.0)])
@pytest.mark.parametrize("t0", [0, 3, 57, 999])
def test_oracle_model_recovers_x0_from_any_t0(objective, cfg, t0):
    g = torch.Generator().manual_seed(t0)
    x0 = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    p = proc()
    x_t0 = p.q_sample(x0, t0, torch.randn(x0.shape, generator=g))
    if cfg.sampler == "ddim" and cfg.steps > t0 + 1:
        cfg = SamplerConfig("ddim", steps=t0 + 1, eta=cfg.eta)
    out = reverse_chain(oracle(p, x0, objective), p, x_t0, t0, cfg, objective, generator=g)
    assert torch.allclose(out, x0, atol=1e-4)


def test_ddpm_chain_is_stochastic_but_seeded():
    torch.manual_seed(0)
    x0 = torch.zeros(1, 1, 4, 4)

    def model(x_t, t):  # a wrong model: the chain noise then shows in the output
        return torch.zeros_like(x_t)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return reverse_chain(model, proc(), x0 + 0.5, 50, SamplerConfig("ddpm"), generator=g)

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_ddim_grid_is_the_spec_formula():
    pairs = time_pairs(999, 1000, SamplerConfig("ddim", steps=10))
    grid = [int(v) for v in np.linspace(-1, 999, 11)][::-1]
    assert [t for t, _ in pairs] == grid[:-1] and pairs[-1][1] == -1
    assert reverse_steps(999, 1000, SamplerConfig("ddim", steps=50)) == 50
    assert reverse_steps(20, 1000, SamplerConfig("ddpm")) == 21
    truncated = time_pairs(100, 1000, SamplerConfig("ddim", steps=4))
    assert truncated[0][0] == 100 and truncated[-1][1] == -1 and len(truncated) == 4


def test_bad_t0_and_steps_are_errors():
    with pytest.raises(DipddpmError, match="t0 must be in 0..999"):
        time_pairs(1000, 1000, SamplerConfig())
    with pytest.raises(DipddpmError, match="t0 must be"):
        time_pairs(-1, 1000, SamplerConfig())
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        SamplerConfig("ddim", steps=0)
    with pytest.raises(DipddpmError, match="<= t0 \\+ 1"):
        time_pairs(5, 1000, SamplerConfig("ddim", steps=10))
    with pytest.raises(DipddpmError, match="use sampler=ddim"):
        time_pairs(50, 1000, SamplerConfig("ddpm", steps=10))


def test_the_error_messages_name_the_limits():
    with pytest.raises(DipddpmError, match=r"^t0 must be in 0\.\.999 \(the model has T = 1000 "
                       r"timesteps\), got 1000; use t0 = 999 to sample from pure noise$"):
        time_pairs(1000, 1000, SamplerConfig())
    with pytest.raises(DipddpmError, match=r"^DDIM steps must be <= t0 \+ 1 = 6, got 7$"):
        time_pairs(5, 1000, SamplerConfig("ddim", steps=7))
    with pytest.raises(DipddpmError, match=r"^the ddpm sampler takes every step from t0 = 50 to "
                       r"0 \(51 steps\), got steps=50; use sampler=ddim for fewer steps$"):
        time_pairs(50, 1000, SamplerConfig("ddpm", steps=50))
    with pytest.raises(ConfigError, match=r"^eta must be >= 0, got -0\.1$"):
        SamplerConfig("ddim", eta=-0.1)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_every_step_from_t0_by_default_or_with_steps_t0_plus_1(sampler):
    """steps null and steps = t0 + 1 are the same chain: (t, t - 1) for every t from t0, the
    last step to s = -1 (x_0)."""
    want = [(3, 2), (2, 1), (1, 0), (0, -1)]
    got = time_pairs(3, 1000, SamplerConfig(sampler))
    assert got == want and time_pairs(3, 1000, SamplerConfig(sampler, steps=4)) == want
    assert all(type(t) is int and type(s) is int for t, s in got)  # plain ints index tables
