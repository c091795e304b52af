"""Beta schedules (docs/methods.md): a contract over every registered schedule, and the numbers
that page gives."""

import pytest
import torch

from dipddpm.diffusion import SCHEDULES, DiffusionProcess, make_betas
from dipddpm.errors import ConfigError


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("T", [25, 100, 1000])
def test_contract_every_schedule(name, T):
    betas = make_betas(name, T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert (betas > 0).all() and (betas <= 0.999 + 1e-12).all()
    assert (betas[1:] >= betas[:-1] - 1e-15).all(), "betas must be non-decreasing"
    abar = DiffusionProcess(betas).alphas_cumprod
    assert (abar[1:] < abar[:-1]).all() and abar[0] < 1


@pytest.mark.parametrize("name, expected", [("linear", 0.0778), ("cosine", 0.4923),
                                            ("sigmoid", 0.4983)])
def test_alphas_cumprod_at_500_matches_spec(name, expected):
    abar = DiffusionProcess.from_schedule(name, 1000).alphas_cumprod
    assert abar[500].item() == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("name", ["cosine", "sigmoid"])
def test_cosine_and_sigmoid_end_at_max_beta(name):
    assert make_betas(name, 1000)[-1].item() == pytest.approx(0.999)


def test_linear_scale_with_T_is_plain_linspace_at_1000():
    plain = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(make_betas("linear", 1000), plain)
    assert torch.allclose(make_betas("linear", 1000, scale_with_T=False), plain)
    # at T = 100 the scaled schedule has 10x larger betas than the unscaled one
    assert make_betas("linear", 100)[-1].item() == pytest.approx(0.2)
    assert make_betas("linear", 100, scale_with_T=False)[-1].item() == pytest.approx(0.02)


def test_cosine_min_beta_clips_from_below():
    assert make_betas("cosine", 1000, min_beta=1e-4)[0].item() == pytest.approx(1e-4)
    assert make_betas("cosine", 1000)[0].item() < 1e-4


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ConfigError, match="valid names: cosine, linear, sigmoid"):
        make_betas("cosin", 1000)


def test_bad_params_and_T_are_config_errors():
    with pytest.raises(ConfigError, match="cosine"):
        make_betas("cosine", 1000, nope=1)
    with pytest.raises(ConfigError, match="positive integer"):
        make_betas("linear", 0)
    with pytest.raises(ConfigError, match="outside"):
        make_betas("linear", 10)  # scaled: beta_end = 0.02 * 1000 / 10 = 2
    assert make_betas("linear", 10, scale_with_T=False)[-1].item() == pytest.approx(0.02)


def test_betas_must_lie_strictly_inside_0_1():
    """make_betas refuses a schedule with a beta of 0 (no noise added) or of 1 or more (the
    signal gone); one timestep is a valid process."""
    assert make_betas("linear", 1).shape == (1,)
    for start, end in ((0.0, 0.02), (1e-4, 1.0), (1e-4, 1.5)):
        with pytest.raises(ConfigError, match=f"beta schedule 'linear' at T=10 gives betas "
                                              f"outside \\(0, 1\\) \\(max {end:.4g}\\)"):
            make_betas("linear", 10, beta_start=start, beta_end=end, scale_with_T=False)


def test_q_sample_matches_closed_form():
    proc = DiffusionProcess.from_schedule("linear", 1000)
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 999])
    xt = proc.q_sample(x0, t, eps)
    for i, ti in enumerate(t.tolist()):
        a = proc.alphas_cumprod[ti].item()
        assert torch.allclose(xt[i], a ** 0.5 * x0[i] + (1 - a) ** 0.5 * eps[i], atol=1e-6)
    # eps and x0 predictions invert q_sample
    assert torch.allclose(proc.predict_x0(xt, t, eps), x0, atol=1e-4)
    assert torch.allclose(proc.predict_eps(xt, t, x0), eps, atol=1e-3)


def _from_abar(abar: list[float], lo: float, hi: float) -> list[float]:
    return [min(max(1 - abar[k + 1] / abar[k], lo), hi) for k in range(len(abar) - 1)]


@pytest.mark.parametrize("T, kw", [(1000, {}), (300, {"start": -2.0, "end": 4.0, "tau": 0.5}),
                                   (200, {"start": -1.0, "end": 2.0, "tau": 1.7})])
def test_sigmoid_betas_from_scratch(T, kw):
    """The sigmoid abar(tau) (Jabri et al. 2023), then beta as for cosine; float64 throughout."""
    import math

    start, end, tau = kw.get("start", -3.0), kw.get("end", 3.0), kw.get("tau", 1.0)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    abar = [(sig(end / tau) - sig(((k / T) * (end - start) + start) / tau))
            / (sig(end / tau) - sig(start / tau)) for k in range(T + 1)]
    want = torch.tensor(_from_abar(abar, 0.0, 0.999), dtype=torch.float64)
    assert torch.allclose(make_betas("sigmoid", T, **kw), want, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("T, kw", [(1000, {}), (250, {"s": 0.02, "min_beta": 1e-3,
                                                       "max_beta": 0.5})])
def test_cosine_betas_from_scratch(T, kw):
    import math

    s = kw.get("s", 0.008)
    f = [math.cos((k / T + s) / (1 + s) * math.pi / 2) ** 2 for k in range(T + 1)]
    want = _from_abar(f, kw.get("min_beta", 0.0), kw.get("max_beta", 0.999))
    assert torch.allclose(make_betas("cosine", T, **kw), torch.tensor(want, dtype=torch.float64),
                          rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("T, scale", [(500, True), (2000, True), (500, False)])
def test_linear_betas_from_scratch(T, scale):
    k = 1000 / T if scale else 1.0
    want = [1e-4 * k + i * (0.02 - 1e-4) * k / (T - 1) for i in range(T)]
    got = make_betas("linear", T, scale_with_T=scale)
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12)
    other = make_betas("linear", T, beta_start=1e-3, beta_end=0.01, scale_with_T=scale)
    assert other[0].item() == pytest.approx(1e-3 * k) and other[-1].item() == pytest.approx(
        0.01 * k)
