"""The time-conditioned U-Net: presets, shapes at odd sizes, time conditioning, config errors."""

import pytest
import torch

from dipddpm.errors import ConfigError
from dipddpm.nn import n_params
from dipddpm.nn.time_unet import UNET_PRESETS, TimeUNet, sinusoidal_embedding, unet_spec


@pytest.mark.parametrize("preset", ["tiny", "small", "mnist"])
def test_presets_map_images_to_same_shape(preset):
    spec = unet_spec(preset)
    net = TimeUNet(spec)
    x = torch.randn(2, spec.channels, spec.image_size, spec.image_size)
    assert net(x, torch.tensor([0, 999])).shape == x.shape


def test_mnist_preset_matches_the_source_size():
    spec = unet_spec("mnist")
    assert (spec.channels, spec.image_size, spec.widths, spec.norm) == (1, 28, (10, 20, 40),
                                                                        "layer")
    assert 0.55e6 < n_params(TimeUNet(spec)) < 0.65e6


def test_cifar_preset_is_rgb_32_with_attention():
    spec = unet_spec("cifar")
    assert (spec.channels, spec.image_size) == (3, 32) and spec.attention
    assert "cifar" in UNET_PRESETS


@pytest.mark.parametrize("size", [7, 25, 28, 30])
def test_any_image_size_works(size):
    net = TimeUNet(unet_spec("tiny", widths=(4, 8, 8), groups=4))
    x = torch.randn(1, 1, size, size)
    assert net(x, torch.tensor([3])).shape == x.shape


def test_output_depends_on_t():
    torch.manual_seed(0)
    net = TimeUNet(unet_spec("tiny"))
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([1, 900]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_sinusoidal_embedding_shape_and_t0():
    e = sinusoidal_embedding(torch.tensor([0, 5]), 8)
    assert e.shape == (2, 8)
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_bad_specs_are_config_errors():
    with pytest.raises(ConfigError, match="divisible by groups"):
        unet_spec("tiny", widths=(6, 12))
    with pytest.raises(ConfigError, match="attention levels"):
        unet_spec("tiny", attention=(5,))
    with pytest.raises(ConfigError, match="unknown time U-Net preset"):
        unet_spec("huge")
