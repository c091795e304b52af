"""DIP networks by name. A builder is `(in_channels, out_channels, width, depth) -> nn.Module`;
width (channels) and depth (scales) of None mean the preset's own, so tiny nets run on CPU.
Every built net has `size_multiple`: H and W must be divisible by it.
"""

from __future__ import annotations

from torch import nn

from dipddpm.errors import ConfigError
from dipddpm.nn.guided import GuidedUNet, SegNet
from dipddpm.nn.skip import SkipNet
from dipddpm.registry import Registry

NETS: Registry = Registry("net")


def _skip(in_ch, out_ch, down, up, skip, width, depth, **kw):
    """A skip net from per-scale channel lists. `width` makes every scale that wide (skip
    channels: the coarsest scale's); `depth` alone keeps the preset's progression, cut or
    extended with its coarsest scale (skip_small depth 2: [8, 16], skips [0, 4])."""
    n = depth if depth is not None else len(down)
    if width is not None:
        down, up, skip = [width] * n, [width] * n, [skip[-1]] * n
    elif depth is not None:
        down, up, skip = ((list(c) + [c[-1]] * n)[:n] for c in (down, up, skip))
    return SkipNet(in_ch, out_ch, down, up, skip, **kw)


@NETS.register("skip")
def skip(in_ch=32, out_ch=3, width=None, depth=None, sigmoid=True):
    """Original DIP denoising net: 5 scales x 128 channels, skip 4 (2,217,831 params, RGB)."""
    return _skip(in_ch, out_ch, [128] * 5, [128] * 5, [4] * 5, width, depth, sigmoid=sigmoid)


@NETS.register("skip_snail")
def skip_snail(in_ch=3, out_ch=3, width=None, depth=None, sigmoid=True):
    """Channels [8,16,32,64,128], skips only on the two coarsest scales."""
    return _skip(in_ch, out_ch, [8, 16, 32, 64, 128], [8, 16, 32, 64, 128], [0, 0, 0, 4, 4],
                 width, depth, sigmoid=sigmoid)


@NETS.register("skip_small")
def skip_small(in_ch=1, out_ch=1, width=None, depth=None, sigmoid=True):
    """Three scales [8,16,32], skips [0,4,4] (the MNIST source's small DIP)."""
    return _skip(in_ch, out_ch, [8, 16, 32], [8, 16, 32], [0, 4, 4], width, depth,
                 sigmoid=sigmoid)


@NETS.register("unet")
def unet(in_ch=3, out_ch=3, width=None, depth=None, sigmoid=True):
    """Guided-DIP source UNet: 6 strided 5x5 convs 3->8->...->256, 4-channel skips."""
    return GuidedUNet(in_ch, out_ch, base=width or 8, depth=depth or 6, sigmoid=sigmoid)


@NETS.register("segnet")
def segnet(in_ch=3, out_ch=3, width=None, depth=None, sigmoid=False):
    """Guided-DIP source SegNet: VGG16-style encoder with pooling indices, no output activation."""
    return SegNet(in_ch, out_ch, base=width or 64, depth=depth or 5, sigmoid=sigmoid)


def build_net(name: str, in_channels: int, out_channels: int, width: int | None = None,
              depth: int | None = None, sigmoid: bool | None = None) -> nn.Module:
    """Build net `name`; sigmoid None keeps the preset's own output activation."""
    for key, v in (("width", width), ("depth", depth)):
        if v is not None and v < 1:
            raise ConfigError(f"net {key} must be >= 1 or null (preset's own), got {v}")
    kw = {} if sigmoid is None else {"sigmoid": sigmoid}
    return NETS.get(name)(in_channels, out_channels, width=width, depth=depth, **kw)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def size_multiple(net: nn.Module) -> int:
    return int(getattr(net, "size_multiple", 1))


def min_size(net: nn.Module) -> int:
    """The smallest H and W the net trains on: its coarsest scale must keep at least 2x2
    values, or BatchNorm with one image has a single value per channel."""
    return int(getattr(net, "min_size", size_multiple(net)))


__all__ = ["NETS", "build_net", "min_size", "n_params", "size_multiple"]
