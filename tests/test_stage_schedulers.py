"""Stage schedulers (docs/methods.md): a contract over every scheduler and the exact counts
that page gives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods.guided_dip import PRESETS, GuidedDipConfig
from dipddpm.stages import STAGE_SCHEDULERS, stage_counts, stage_of_iteration


def _betas(K):  # decreasing betas: stage 1 is the noisiest
    return np.linspace(0.02, 1e-4, K).tolist()


def _check(counts, N, K):
    assert len(counts) == K and sum(counts) == N and min(counts) >= 0
    assert all(isinstance(c, int) for c in counts)
    assert len(stage_of_iteration(counts)) == N


@pytest.mark.parametrize("name", STAGE_SCHEDULERS.names())
@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3000), K=st.integers(1, 30), data=st.data())
def test_contract_every_scheduler(name, N, K, data):
    """Every N and K work with each declared parameter at its smallest valid value; other
    values give valid counts or a ConfigError naming the scheduler (its rule)."""
    entry = STAGE_SCHEDULERS.get(name)
    lows = {p.name: p.low for p in entry.params}
    _check(stage_counts(name, N, K, stage_betas=_betas(K), **lows), N, K)
    drawn = {p.name: data.draw(st.integers(int(p.low), int(p.low) + 50) if isinstance(p.low, int)
                               else st.floats(p.low, p.low + 1000.0)) for p in entry.params}
    try:
        counts = stage_counts(name, N, K, stage_betas=_betas(K), **drawn)
    except ConfigError as e:
        assert name in str(e)
    else:
        _check(counts, N, K)


@pytest.mark.parametrize("name", STAGE_SCHEDULERS.names())
def test_declared_parameters_are_the_functions_and_the_configs(name):
    import dataclasses
    import inspect

    entry = STAGE_SCHEDULERS.get(name)
    keywords = set(inspect.signature(entry.fn).parameters) - {"N", "K", "stage_betas"}
    assert {p.name for p in entry.params} == keywords
    fields = {f.name for f in dataclasses.fields(GuidedDipConfig)}
    assert {p.field for p in entry.params} <= fields
    assert set(entry.pairs) <= fields


def test_a_registered_scheduler_gets_its_declared_parameter_with_no_other_edit():
    """A toy scheduler whose parameter lives in an existing config field: the config's counts
    and `inspect stages` pass it by its declaration alone."""
    from dipddpm.cli.inspect import stage_plan
    from dipddpm.stages.schedulers import SchedulerParam, StageScheduler

    def first_n(N, K, *, stage_betas=None, n=1):
        return [n] + [0] * (K - 2) + [N - n] if K > 1 else [N]

    STAGE_SCHEDULERS.register("toy_first_n")(StageScheduler(
        first_n, (SchedulerParam("n", "sharp_linear_x", low=0),)))
    try:
        cfg = build(GuidedDipConfig, {"iters": 50, "stages": 3, "scheduler": "toy_first_n",
                                      "sharp_linear_x": 7})
        assert cfg.counts() == [7, 0, 43]
        assert stage_plan("toy_first_n", 50, 3, ["n=9"])["counts"] == [9, 0, 41]
        with pytest.raises(ConfigError, match="parameter of toy_first_n, not of uniform"):
            stage_plan("uniform", 50, 3, ["n=9"])
    finally:
        STAGE_SCHEDULERS.unregister("toy_first_n")


def test_uniform_exact_counts():
    assert stage_counts("uniform", 2000, 9) == [125] + [250] * 7 + [125]


def test_uniform_equal_exact_counts():
    assert stage_counts("uniform_equal", 2000, 8) == [250] * 8
    assert stage_counts("uniform_equal", 10, 3) == [4, 3, 3]


def test_sharp_linear_exact_counts_and_error():
    assert stage_counts("sharp_linear", 2000, 9) == [10] * 8 + [1920]
    assert stage_counts("sharp_linear", 2000, 50, x=10) == [10] * 49 + [1510]
    with pytest.raises(ConfigError, match=r"N = 70 .* \(9-1\)\*10 = 80"):
        stage_counts("sharp_linear", 70, 9)


def test_log10_linspace_exact_counts():
    counts = stage_counts("log10_linspace", 2000, 9)
    assert {k + 1: c for k, c in enumerate(counts) if c} == {1: 1, 6: 6, 7: 57, 8: 569,
                                                            9: 1367}


def test_exp_weighted_favours_low_noise_stages_and_uses_c():
    cfg = build(GuidedDipConfig, PRESETS["guided_dip"])
    counts = cfg.counts()
    assert sum(counts) == 2000 and len(counts) == 20
    assert counts == sorted(counts), "smaller beta_t (later stages) must get more iterations"
    flat = build(GuidedDipConfig, {**PRESETS["guided_dip"], "exp_c": 0.0}).counts()
    assert max(flat) - min(flat[:-1]) <= 1, "c = 0 gives equal shares"


def test_exp_weighted_default_c_depends_on_schedule():
    base = {**PRESETS["guided_dip"]}
    lin = build(GuidedDipConfig, base).counts()
    lin250 = build(GuidedDipConfig, {**base, "exp_c": 250.0}).counts()
    cos = build(GuidedDipConfig, {**base, "beta_schedule": "cosine"}).counts()
    cos400 = build(GuidedDipConfig, {**base, "beta_schedule": "cosine", "exp_c": 400.0}).counts()
    assert lin == lin250 and cos == cos400


def test_staged_dip_preset_timesteps():
    cfg = build(GuidedDipConfig, PRESETS["staged_dip"])
    assert cfg.timesteps_list() == [888, 777, 666, 555, 444, 333, 222, 111, 0]
    gd = build(GuidedDipConfig, PRESETS["guided_dip"])
    assert gd.timesteps_list() == np.linspace(500, 40, 20).astype(int).tolist()


def test_unknown_scheduler_and_bad_sizes():
    with pytest.raises(ConfigError, match="valid names: exp_weighted"):
        stage_counts("uniformm", 10, 2)
    with pytest.raises(ConfigError, match="stages must be a positive integer"):
        stage_counts("uniform", 10, 0)
    with pytest.raises(ConfigError, match="iterations must be a positive integer"):
        stage_counts("uniform", 0, 3)


def _independent_exp_weighted_counts(schedule: str, c: float, N=2000, T=1000) -> list[int]:
    """exp_weighted from scratch: w = softmax(-c beta_{t_k}), n_k = floor(N w_k), last = rest,
    with the betas of docs/methods.md (cosine clipped to [1e-4, 0.999], the guided-DIP preset's)."""
    import math

    ts = [int(500 + k * (40 - 500) / 19) for k in range(20)]  # int(linspace(500, 40, 20))
    if schedule == "linear":
        betas = [1e-4 + k * (0.02 - 1e-4) / (T - 1) for k in range(T)]
    else:
        f = [math.cos((k / T + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(T + 1)]
        betas = [min(max(1 - f[k + 1] / f[k], 1e-4), 0.999) for k in range(T)]
    e = [math.exp(-c * betas[t]) for t in ts]
    counts = [math.floor(N * v / math.fsum(e)) for v in e[:-1]]
    return counts + [N - sum(counts)]


@pytest.mark.parametrize("schedule, c", [("linear", 250.0), ("cosine", 400.0)])
def test_exp_weighted_exact_counts_of_the_guided_dip_preset(schedule, c):
    cfg = build(GuidedDipConfig, {**PRESETS["guided_dip"], "beta_schedule": schedule})
    want = _independent_exp_weighted_counts(schedule, c)
    assert cfg.timesteps_list() == [int(500 + k * (40 - 500) / 19) for k in range(20)]
    assert cfg.counts() == want
    assert len(set(want)) > 5  # the weights really differ from stage to stage
