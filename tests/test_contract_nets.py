"""The net contract, checked for every registered DIP net (dipddpm.nn.NETS), small variants:

- the output has the input's H x W and the asked-for channels, at the net's smallest legal size;
- the parameter count is the same on every build (it does not depend on the RNG), and the
  same seed gives the same weights;
- the size rule (`size_multiple`, `min_size`) is what the fitting loop enforces: the smallest
  legal size passes, a size off the multiple or under the minimum is refused.

The helpers take a builder's name, so a net registered by a test is checked the same way.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dipddpm.errors import DipddpmError
from dipddpm.nn import NETS, build_net, min_size, n_params, size_multiple
from dipddpm.nn.sizes import check_size

SMALL = {"width": 8, "depth": 3}


def smallest_size(net: nn.Module) -> int:
    """The smallest H = W the net takes: a multiple of size_multiple, at least min_size."""
    m = size_multiple(net)
    return m * math.ceil(min_size(net) / m)


def check_shape(name: str) -> None:
    net = build_net(name, 4, 3, **SMALL)
    s = smallest_size(net)
    for H, W in ((s, s), (s, 2 * s)):
        assert net(torch.rand(2, 4, H, W)).shape == (2, 3, H, W)


def check_parameter_count_stable(name: str) -> None:
    torch.manual_seed(0)
    a = build_net(name, 4, 3, **SMALL)
    torch.manual_seed(1)
    b = build_net(name, 4, 3, **SMALL)
    torch.manual_seed(0)
    c = build_net(name, 4, 3, **SMALL)
    assert n_params(a) == n_params(b) > 0
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def check_size_rule(name: str) -> None:
    net = build_net(name, 4, 3, **SMALL)
    m, s = size_multiple(net), smallest_size(net)
    check_size(net, name, s, s)
    if m > 1:
        with pytest.raises(DipddpmError, match=f"divisible by {m}"):
            check_size(net, name, s + 1, s)
    if min_size(net) > m:
        with pytest.raises(DipddpmError, match="at least"):
            check_size(net, name, m, m)


@pytest.mark.parametrize("name", NETS.names())
def test_net_contract(name):
    check_shape(name)
    check_parameter_count_stable(name)
    check_size_rule(name)


class Toy(nn.Module):
    """Two stride-2 convs and an upsampling: H, W multiples of 4, at least 8."""

    size_multiple = 4
    min_size = 8

    def __init__(self, in_ch: int, out_ch: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, width, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(width, out_ch, 3, 2, 1),
                                  nn.Upsample(scale_factor=4))

    def forward(self, x):
        return self.body(x)


def test_a_net_registered_in_a_test_is_checked_by_the_same_helpers():
    NETS.register("toy")(lambda i, o, width=None, depth=None: Toy(i, o, width or 4))
    try:
        check_shape("toy")
        check_parameter_count_stable("toy")
        check_size_rule("toy")
        assert smallest_size(build_net("toy", 4, 3)) == 8
    finally:
        NETS.unregister("toy")


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_net_fits_in_a_ray_trial_with_no_other_edit(ray_local, tmp_path):
    """The toy, registered in this (driver) process only, is a DIP sweep's net through `sweep
    validate`, one Ray run and `results summarize`: the trial's process imports dipddpm afresh
    and gets the plug-in from the driver (registry.py Registry.plugins)."""
    from contract_sweep import shipped, through_everything

    NETS.register("toy")(lambda i, o, width=None, depth=None: Toy(i, o, width or 4))
    try:
        with shipped(__name__):
            spec = {"name": "toy-net", "method": "dip", "preset": "tiny", "metric": "psnr_best",
                    "problem": {"image": "skimage:camera", "size": 32, "sigma": 25},
                    "fixed": {"net": "toy", "width": 4, "iters": 6, "report_every": 3},
                    "search": {"lr": {"grid": [0.01]}}, "searcher": {"type": "grid"},
                    "scheduler": {"type": "none"}, "num_samples": 1,
                    "resources": {"cpu": 1}, "storage": str(tmp_path / "results")}
            _, outcome, summary = through_everything(tmp_path, spec)
    finally:
        NETS.unregister("toy")
    assert summary["counts"]["COMPLETED"] == 1, outcome.rows[0].get("error")
    assert outcome.rows[0]["config.net"] == "toy" and outcome.rows[0]["iters_done"] == 6
