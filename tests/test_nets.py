"""DIP networks: the reference parameter counts, shapes, output ranges, registry errors."""

import pytest
import torch

from dipddpm.errors import ConfigError
from dipddpm.nn import NETS, build_net, n_params, size_multiple


def test_skip_reference_parameter_count():
    assert n_params(build_net("skip", 32, 3)) == 2_217_831


def test_skip_small_parameter_count_for_one_channel():
    assert n_params(build_net("skip_small", 1, 1)) == 36_953


def test_depth_alone_keeps_the_preset_channels():
    from dipddpm.nn.skip import SkipNet

    cut = build_net("skip_small", 1, 1, depth=2)  # [8, 16], skips [0, 4]
    assert n_params(cut) == n_params(SkipNet(1, 1, [8, 16], [8, 16], [0, 4]))
    grown = build_net("skip_small", 1, 1, depth=4)  # the coarsest scale repeated
    assert n_params(grown) == n_params(SkipNet(1, 1, [8, 16, 32, 32], [8, 16, 32, 32],
                                               [0, 4, 4, 4]))
    wide = build_net("skip_small", 1, 1, width=16, depth=2)  # width: every scale that wide
    assert n_params(wide) == n_params(SkipNet(1, 1, [16, 16], [16, 16], [4, 4]))


@pytest.mark.parametrize("name", NETS.names())
def test_every_net_trains_at_its_minimum_size_and_says_so(name):
    from dipddpm.nn import min_size

    net = build_net(name, 4, 3, width=8, depth=3)
    low = min_size(net)
    net(torch.rand(1, 4, low, low)).mean().backward()  # BatchNorm in train mode, one image
    if low > size_multiple(net):
        with pytest.raises(ValueError):
            net(torch.rand(1, 4, size_multiple(net), size_multiple(net)))


def test_guided_unet_is_about_1_79m_params():
    assert 1.75e6 < n_params(build_net("unet", 3, 3)) < 1.85e6


@pytest.mark.parametrize("name", NETS.names())
def test_every_net_small_variant_keeps_shape(name):
    net = build_net(name, 4, 3, width=8, depth=3)
    m = size_multiple(net)
    assert m == 8
    x = torch.rand(2, 4, 4 * m, 4 * m)
    out = net(x)
    assert out.shape == (2, 3, 4 * m, 4 * m)
    if name != "segnet":  # segnet has no output activation (clipped at metric time)
        assert out.min() >= 0 and out.max() <= 1


def test_width_and_depth_shrink_the_net():
    assert n_params(build_net("skip", 32, 3, width=16, depth=3)) < 50_000


def test_unknown_net_lists_valid_names():
    with pytest.raises(ConfigError, match="valid names: segnet, skip"):
        build_net("resnet", 3, 3)
    with pytest.raises(ConfigError, match="width"):
        build_net("skip", 3, 3, width=0)
