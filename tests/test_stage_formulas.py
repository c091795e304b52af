"""Stage schedulers, stage timesteps and stage targets (docs/methods.md) against
per-iteration rules written here from that text, over many (N, K)."""

import math

import numpy as np
import pytest
import torch

from dipddpm.errors import ConfigError
from dipddpm.stages import stage_counts
from dipddpm.stages.timesteps import stage_target, stage_timesteps

SIZES = [(1, 1), (1, 4), (2, 2), (7, 3), (10, 3), (100, 9), (333, 5), (2000, 2), (2000, 9),
         (1999, 7)]


def counted(rule, N: int, K: int) -> list[int]:
    counts = [0] * K
    for i in range(N):
        counts[rule(i, N, K) - 1] += 1
    return counts


def uniform_rule(i, N, K):  # round(1 + (K-1) i/(N-1)), half to even as numpy does
    return 1 if N == 1 else int(np.rint(1 + (K - 1) * i / (N - 1)))


def equal_rule(i, N, K):
    return (i * K) // N + 1


def log10_rule(i, N, K):  # L = linspace(10, 10^K, N)
    L = 10.0 if N == 1 else 10.0 + i * (10.0 ** K - 10.0) / (N - 1)
    return min(max(int(np.rint(math.log10(L))), 1), K)


@pytest.mark.parametrize("N, K", SIZES)
@pytest.mark.parametrize("name, rule", [("uniform", uniform_rule),
                                        ("uniform_equal", equal_rule),
                                        ("log10_linspace", log10_rule)])
def test_per_iteration_schedulers_from_their_rules(name, rule, N, K):
    assert stage_counts(name, N, K) == counted(rule, N, K)


def test_sharp_linear_edges():
    assert stage_counts("sharp_linear", 5, 3, x=0) == [0, 0, 5]  # x = 0 is allowed
    assert stage_counts("sharp_linear", 20, 3, x=10) == [10, 10, 0]  # N = (K-1) x: last empty
    with pytest.raises(ConfigError, match="x must be >= 0"):
        stage_counts("sharp_linear", 20, 3, x=-1)
    with pytest.raises(ConfigError, match="N >= \\(K-1\\)\\*x"):
        stage_counts("sharp_linear", 19, 3, x=10)


def test_exp_weighted_default_c_and_missing_betas():
    betas = [0.02, 0.011, 0.004, 0.0001]
    e = [math.exp(-250.0 * b) for b in betas]
    want = [math.floor(1000 * v / sum(e)) for v in e[:-1]]
    got = stage_counts("exp_weighted", 1000, 4, stage_betas=betas)
    assert got == want + [1000 - sum(want)]
    assert all(type(n) is int for n in got)  # iteration counts, not floats that compare equal
    for bad in (None, betas[:3]):
        with pytest.raises(ConfigError, match="^exp_weighted needs beta_\\{t_k\\} for each of "
                                              "the K stages$"):
            stage_counts("exp_weighted", 1000, 4, stage_betas=bad)


def test_a_parameter_a_scheduler_does_not_take_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="^stage scheduler 'sharp_linear': .*unexpected "
                                          "keyword argument 'c'"):
        stage_counts("sharp_linear", 100, 3, c=2.0)


@pytest.mark.parametrize("K, t_max, t_min, spacing, drop", [
    (9, 999, 0, "linear", True), (20, 500, 40, "linear", False), (5, 300, 3, "log", False),
    (4, 999, 0, "log", True), (1, 250, 250, "linear", False)])
def test_stage_timesteps_from_the_formula(K, t_max, t_min, spacing, drop):
    n = K + 1 if drop else K
    if spacing == "linear":
        pts = [t_max + k * (t_min - t_max) / (n - 1) if n > 1 else t_max for k in range(n)]
    else:  # geometric in t + 1
        r = (t_min + 1) / (t_max + 1)
        pts = [(t_max + 1) * r ** (k / (n - 1)) - 1 for k in range(n)]
    want = [int(p + 1e-9) for p in pts]  # int(): truncation (the tiny shift absorbs fp noise)
    assert stage_timesteps(K, t_max, t_min, spacing, drop) == (want[1:] if drop else want)


def test_stage_timesteps_defaults_are_linear_without_drop():
    assert stage_timesteps(4, 300, 0) == [300, 200, 100, 0]


def test_exp_weighted_is_stable_for_large_betas():
    """softmax with the max subtracted: c beta near 400 must not underflow to 0/0."""
    betas, c = [0.999, 0.998, 0.9975], 400.0
    e = [math.exp(-c * (b - min(betas))) for b in betas]
    want = [math.floor(100 * v / sum(e)) for v in e[:-1]]
    assert stage_counts("exp_weighted", 100, 3, stage_betas=betas, c=c) == want + [
        100 - sum(want)]


def test_stage_timesteps_bad_input():
    with pytest.raises(ConfigError, match="stages must be >= 1"):
        stage_timesteps(0, 10, 0)
    with pytest.raises(ConfigError, match="t_spacing"):
        stage_timesteps(3, 10, 0, "cubic")
    with pytest.raises(ConfigError, match="0 <= t_min <= t_max"):
        stage_timesteps(3, 10, 11)


@pytest.mark.parametrize("space", ["unit", "symmetric"])
@pytest.mark.parametrize("affine", [(1.0, 0.0), (0.5, 0.5), (0.8, -0.1)])
def test_stage_target_formula(space, affine):
    """y_k = sqrt(abar) s + sqrt(1 - abar)(a eps + b) in [0, 1] ('unit'), or in [-1, 1] with
    s = 2 source - 1 and the result mapped back by (v + 1) / 2 ('symmetric')."""
    g = torch.Generator().manual_seed(0)
    source = torch.rand(3, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    a, b = affine
    abar = 0.37
    if space == "unit":
        want = math.sqrt(abar) * source + math.sqrt(1 - abar) * (a * eps + b)
    else:
        want = (math.sqrt(abar) * (2 * source - 1) + math.sqrt(1 - abar) * (a * eps + b) + 1) / 2
    got = stage_target(source, abar, eps, affine, space)
    assert torch.allclose(got, want, atol=1e-12)
    with pytest.raises(ConfigError, match="stage space must be 'unit' or 'symmetric', got "
                                          "'Unit'"):
        stage_target(source, abar, eps, affine, "Unit")
    if affine == (1.0, 0.0):  # the default arguments are unit space and (1, 0)
        assert torch.equal(stage_target(source, abar, eps), stage_target(source, abar, eps,
                                                                         affine, "unit"))
