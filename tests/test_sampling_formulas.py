"""One reverse step at a time, from a fixed non-oracle eps model, against the samplers' formulas
(docs/methods.md, DDPM).

The oracle test (test_sampling.py) only sees the chain's last step, where x0_hat = x0 whatever
the step rule. Here the model's inputs are recorded: the input at the second call IS the first
step's result, so each step rule is checked on its own. Every expected value is computed in the
test from the betas in float64 (the test's own cumulative product, not the process' buffers).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from dipddpm.diffusion import DiffusionProcess
from dipddpm.diffusion.sampling import SamplerConfig, model_predictions, reverse_chain

T = 100
BETAS = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)  # linear, scale_with_T
ABAR = np.cumprod(1.0 - BETAS)
SHAPE = (2, 1, 8, 8)


def proc() -> DiffusionProcess:
    """Built inside each test, not at import: a module-level process is built once, before
    mutation testing switches a mutant on, and would hide every mutant of its buffers."""
    return DiffusionProcess.from_schedule("linear", T)


def abar(t: int) -> float:
    return 1.0 if t < 0 else float(ABAR[t])


class EpsModel:
    """A fixed eps model that is not an oracle: eps = 0.7 tanh(x) + 0.002 t; records calls."""

    def __init__(self):
        self.inputs, self.ts = [], []

    def __call__(self, x_t, t):
        self.inputs.append(x_t.detach().double().clone())
        self.ts.append(int(t[0]))
        return 0.7 * torch.tanh(x_t) + 0.002 * t.float().view(-1, 1, 1, 1)


def eps_of(x: torch.Tensor, t: int) -> torch.Tensor:
    return 0.7 * torch.tanh(x) + 0.002 * t


def start(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)).double()


def first_noise(seed: int) -> torch.Tensor:
    """The chain's first noise draw: its only use of the generator."""
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)).double()


def run(cfg: SamplerConfig, t0: int, x=None, seed: int = 7) -> EpsModel:
    model = EpsModel()
    x = start() if x is None else x
    reverse_chain(model, proc(), x.float(), t0, cfg, "eps", torch.Generator().manual_seed(seed))
    return model


def ddim_step(x_t, t, s, eta, z, clip=False):
    """DDIM (Song et al. 2021, Eq. 16): sigma = eta sqrt((1-a_s)/(1-a_t)) sqrt(1-a_t/a_s);
    x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps_hat + sigma z."""
    a_t, a_s = abar(t), abar(s)
    eps = eps_of(x_t.float(), t).double()
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    if clip:  # eps re-derived from the clipped x0
        x0 = x0.clamp(-1, 1)
        eps = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t)) * math.sqrt(1 - a_t / a_s)
    return math.sqrt(a_s) * x0 + math.sqrt(1 - a_s - sigma ** 2) * eps + sigma * z


def posterior(x_t, t, clip=False):
    """Mean and variance of q(x_{t-1} | x_t, x0_hat) (Ho et al. eq. 7)."""
    a_t, a_prev, beta = abar(t), abar(t - 1), float(BETAS[t])
    x0 = (x_t - math.sqrt(1 - a_t) * eps_of(x_t.float(), t).double()) / math.sqrt(a_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    mean = (math.sqrt(a_prev) * beta / (1 - a_t) * x0
            + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t) * x_t)
    return mean, beta * (1 - a_prev) / (1 - a_t)


def close(a, b, atol=2e-5):
    return torch.allclose(a.double(), b.double(), atol=atol, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_one_ddim_step_matches_the_formula(eta, clip):
    """t0 = 60, S = 3: the grid int(linspace(-1, 60, 4)) = 60, 39, 19, -1; the first step
    60 -> 39 is the model's second input."""
    x = start() * (3.0 if clip else 1.0)  # large values: x0_hat then leaves [-1, 1]
    m = run(SamplerConfig("ddim", steps=3, eta=eta, clip_x0=clip), 60, x=x, seed=7)
    assert m.ts == [60, 39, 19]
    want = ddim_step(m.inputs[0], 60, 39, eta, first_noise(7), clip)
    assert close(m.inputs[1], want)
    if clip:  # the clip really acted: without it the step lands elsewhere
        assert not close(m.inputs[1], ddim_step(m.inputs[0], 60, 39, eta, first_noise(7)))


@pytest.mark.parametrize("var_type", ["beta", "beta_tilde"])
@pytest.mark.parametrize("clip", [False, True])
def test_one_ancestral_step_matches_the_formula(var_type, clip):
    x = start() * (3.0 if clip else 1.0)
    m = run(SamplerConfig("ddpm", var_type=var_type, clip_x0=clip), 30, x=x, seed=3)
    mean, var_tilde = posterior(m.inputs[0], 30, clip)
    var = float(BETAS[30]) if var_type == "beta" else var_tilde
    assert close(m.inputs[1], mean + math.sqrt(var) * first_noise(3))


def _noise_std(cfg: SamplerConfig, t0: int) -> tuple[float, torch.Tensor]:
    """The first step's noise scale, read off two runs that differ only in the chain's
    noise: x_s(seed a) - x_s(seed b) = sigma (z_a - z_b). Also returns the noise-free part."""
    a, b = run(cfg, t0, seed=11), run(cfg, t0, seed=12)
    dz = first_noise(11) - first_noise(12)
    sigma = ((a.inputs[1] - b.inputs[1]) * dz).sum() / (dz * dz).sum()
    return sigma.item(), a.inputs[1] - sigma * first_noise(11)


def test_eta_zero_is_deterministic_and_eta_one_is_the_posterior_at_stride_one():
    cfg0 = SamplerConfig("ddim", steps=3, eta=0.0)
    a, b = run(cfg0, 60, seed=1), run(cfg0, 60, seed=2)
    assert all(torch.equal(u, v) for u, v in zip(a.inputs, b.inputs, strict=True))
    t = 40  # stride 1: S = t0 + 1, steps t -> t - 1
    sigma, mean = _noise_std(SamplerConfig("ddim", steps=t + 1, eta=1.0, clip_x0=False), t)
    post_mean, post_var = posterior(start(), t)
    assert sigma == pytest.approx(math.sqrt(post_var), rel=1e-4)
    assert close(mean, post_mean)  # DDIM eta = 1 at stride 1 is the DDPM posterior step
    half, _ = _noise_std(SamplerConfig("ddim", steps=t + 1, eta=0.5, clip_x0=False), t)
    assert half == pytest.approx(0.5 * math.sqrt(post_var), rel=1e-4)


def test_var_type_beta_against_beta_tilde():
    t = 1  # small t: beta_t is about twice the posterior variance
    s_beta, m_beta = _noise_std(SamplerConfig("ddpm", var_type="beta", clip_x0=False), t)
    s_tilde, m_tilde = _noise_std(SamplerConfig("ddpm", var_type="beta_tilde", clip_x0=False), t)
    post_mean, post_var = posterior(start(), t)
    assert s_beta == pytest.approx(math.sqrt(BETAS[t]), rel=1e-4)
    assert s_tilde == pytest.approx(math.sqrt(post_var), rel=1e-4)
    assert s_beta > 1.3 * s_tilde
    assert close(m_beta, post_mean) and close(m_tilde, post_mean)  # same mean, other variance


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_no_noise_at_the_last_step(sampler):
    """The chain's result (its x_0) is the same for any generator: t = 0 adds no noise and
    a DDIM step to s = -1 has sigma = 0."""
    cfg = SamplerConfig(sampler, steps=None if sampler == "ddpm" else 4, eta=1.0,
                        var_type="beta")  # beta_tilde's variance at t = 0 is 1e-20 anyway
    x = start().float()
    outs = [reverse_chain(EpsModel(), proc(), x, 1 if sampler == "ddpm" else 9, cfg, "eps",
                          torch.Generator().manual_seed(s)) for s in (1, 2)]
    if sampler == "ddpm":  # t0 = 1: the one noise draw is at t = 1, so the outputs differ
        model = run(cfg, 1, seed=1)
        mean, _ = posterior(model.inputs[1], 0, clip=True)
        assert close(outs[0], mean)  # at t = 0: the posterior mean, no noise
        assert not torch.equal(outs[0], outs[1])
    else:
        model = run(cfg, 9, seed=1)
        last_t = model.ts[-1]
        a_t = abar(last_t)
        x_t = model.inputs[-1]
        x0 = ((x_t - math.sqrt(1 - a_t) * eps_of(x_t.float(), last_t).double())
              / math.sqrt(a_t)).clamp(-1, 1)
        assert close(outs[0], x0)


@pytest.mark.parametrize("t0, S", [(99, 10), (60, 3), (57, 7), (20, 21), (13, 5), (5, 1)])
def test_truncated_ddim_grid_from_t0(t0, S):
    """The grid int(linspace(-1, t0, S+1)) from t0, computed here in exact arithmetic."""
    grid = [int(Fraction(-1) + Fraction(k * (t0 + 1), S)) for k in range(S + 1)][::-1]
    m = run(SamplerConfig("ddim", steps=S), t0)
    assert m.ts == [t for t in grid[:-1]]
    assert m.ts[0] == t0 and torch.equal(m.inputs[0], start().float().double())


def test_truncated_ancestral_chain_visits_every_t_from_t0():
    m = run(SamplerConfig("ddpm"), 17)
    assert m.ts == list(range(17, -1, -1))
    assert torch.equal(m.inputs[0], start().float().double())


def test_process_buffers_match_the_test_formulas():
    """The tables every step reads (and their float64 precision)."""
    t, p = torch.arange(T), proc()
    assert np.allclose(p.alphas_cumprod.numpy(), ABAR, rtol=1e-12)
    prev = np.concatenate([[1.0], ABAR[:-1]])
    assert np.allclose(p.posterior_variance.numpy(), BETAS * (1 - prev) / (1 - ABAR),
                       rtol=1e-12)
    _, var, log_var = p.q_posterior(start(1), start(2), t[:2])  # batch at t = 0 and 1
    assert var.flatten()[0].item() == 0 and log_var[0].item() == pytest.approx(math.log(1e-20))
    assert log_var[1].item() == pytest.approx(math.log(BETAS[1] * (1 - ABAR[0]) / (1 - ABAR[1])))
    x = start(3)
    for tt in (0, 50, 99):
        eps = eps_of(x.float(), tt).double()
        v = math.sqrt(abar(tt)) * eps - math.sqrt(1 - abar(tt)) * x
        assert close(p.velocity(x, tt, eps), v, atol=1e-12)
        assert close(p.x0_from_v(x, tt, v),
                     math.sqrt(abar(tt)) * x - math.sqrt(1 - abar(tt)) * v, atol=1e-12)
        x0_hat = p.predict_x0(x, tt, eps)
        assert close(x0_hat, (x - math.sqrt(1 - abar(tt)) * eps) / math.sqrt(abar(tt)),
                     atol=1e-9)
        assert close(p.predict_eps(x, tt, x0_hat), eps, atol=1e-9)
    assert np.allclose(p.snr.numpy(), ABAR / (1 - ABAR), rtol=1e-12)


@pytest.mark.parametrize("objective", ["x0", "v"])
def test_one_ddim_step_for_x0_and_v_models(objective):
    """A non-oracle x0 / v model: the step uses the x0 it implies and eps re-derived from it."""
    def model(x_t, t):
        return 0.5 * torch.tanh(x_t) + 0.001 * t.float().view(-1, 1, 1, 1)

    seen = []

    def recording(x_t, t):
        seen.append(x_t.double().clone())
        return model(x_t, t)

    x = start()
    reverse_chain(recording, proc(), x.float(), 60, SamplerConfig("ddim", steps=3, clip_x0=False),
                  objective, torch.Generator().manual_seed(0))
    a_t, a_s = abar(60), abar(39)
    out = model(seen[0].float(), torch.tensor([60])).double()
    x0 = out if objective == "x0" else math.sqrt(a_t) * seen[0] - math.sqrt(1 - a_t) * out
    eps = (seen[0] - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
    assert close(seen[1], math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps)


def test_sample_starts_from_noise_at_t_minus_1_and_maps_to_unit_range():
    """sample(): x_{T-1} ~ N(0, I) from the generator, the chain, then (x_0 + 1) / 2 clipped."""
    from dipddpm.diffusion.sampling import sample

    cfg = SamplerConfig("ddim", steps=4, eta=0.5)
    m = EpsModel()
    out = sample(m, proc(), SHAPE, cfg=cfg, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    x = torch.randn(SHAPE, generator=g)
    want = reverse_chain(EpsModel(), proc(), x, T - 1, cfg, "eps", g)
    assert m.ts[0] == T - 1 and torch.equal(m.inputs[0], x.double())
    assert torch.equal(out, ((want + 1) / 2).clamp(0, 1))
    assert out.min() >= 0 and out.max() <= 1
    short, steps = EpsModel(), []
    sample(short, proc(), SHAPE, t0=12, cfg=SamplerConfig("ddpm"),
           generator=torch.Generator().manual_seed(9), callback=lambda i, n: steps.append((i, n)))
    assert short.ts == list(range(12, -1, -1)) and steps == [(i, 13) for i in range(1, 14)]
    raw = SamplerConfig("ddim", steps=2, clip_x0=False)  # x_0 leaves [-1, 1]: the clip acts
    out = sample(EpsModel(), proc(), SHAPE, cfg=raw, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    want = (reverse_chain(EpsModel(), proc(), torch.randn(SHAPE, generator=g), T - 1, raw, "eps",
                          g) + 1) / 2
    assert want.min() < 0 and want.max() > 1 and torch.equal(out, want.clamp(0, 1))


def test_the_ddim_step_to_s_0_uses_abar_0_not_1():
    """t0 = 2 at stride 1: the grid 2, 1, 0, -1. The step 1 -> 0 lands on alpha_bar_0 (< 1);
    only the step to s = -1 (x_0 itself) takes alpha_bar = 1."""
    m = run(SamplerConfig("ddim", steps=3, eta=0.0, clip_x0=False), 2)
    assert m.ts == [2, 1, 0]
    assert abar(0) < 1 - 1e-4  # the two choices are far apart here
    assert close(m.inputs[2], ddim_step(m.inputs[1], 1, 0, 0.0, 0.0), atol=1e-6)


def test_deterministic_ddim_draws_no_noise():
    """eta = 0: sigma = 0, so a step never asks for noise (the generator is left as it was)."""
    from dipddpm.diffusion.sampling import ddim_step as step

    def no_noise():
        raise AssertionError("eta = 0 drew noise")

    x0, eps = start(1), start(2)
    want = math.sqrt(abar(10)) * x0 + math.sqrt(1 - abar(10)) * eps
    assert close(step(abar(30), abar(10), x0, eps, 0.0, no_noise), want, atol=1e-12)


def test_an_eps_model_output_is_used_as_is_and_gets_the_batch_timesteps():
    """Without the clip, eps_hat IS the model's output (not re-derived from x0_hat), and the
    model sees t as a (B,) long tensor on the input's device."""
    seen = []

    def model(x_t, t):
        seen.append(t)
        return 0.3 * x_t + 0.1

    x = torch.randn(2, 3, 4, 4)  # batch 2, channels 3
    x0, eps = model_predictions(model, proc(), x, 17, "eps", clip_x0=False)
    assert torch.equal(eps, 0.3 * x + 0.1)
    (t,) = seen
    assert t.dtype == torch.long and t.shape == (2,) and t.tolist() == [17, 17]
    assert t.device == x.device
    assert close(x0, (x.double() - math.sqrt(1 - abar(17)) * eps.double())
                 / math.sqrt(abar(17)), atol=1e-5)
