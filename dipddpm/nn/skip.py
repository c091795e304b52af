"""The Deep Image Prior `skip` encoder-decoder (Ulyanov et al., CVPR 2018, supplementary),
written from its description.

Per scale: deeper = conv s2 -> BN -> act -> conv -> BN -> act -> [next scale] -> upsample;
skip = 1x1 conv -> BN -> act; merge = concat[skip, deeper] -> BN -> conv3x3 -> BN -> act ->
conv1x1 -> BN -> act. Final 1x1 conv (+ sigmoid). Reflection padding, BatchNorm,
LeakyReLU(0.2), stride-2 conv downsampling, bilinear x2 upsampling. With the defaults below and
3 output channels it has exactly 2,217,831 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dipddpm.nn.fused import cat_members


def conv(c_in: int, c_out: int, k: int, stride: int = 1, pad: str = "reflection") -> nn.Module:
    """k x k conv with 'same' padding (reflection or zero); stride 2 halves H and W."""
    p = (k - 1) // 2
    if pad == "reflection" and p > 0:
        return nn.Sequential(nn.ReflectionPad2d(p), nn.Conv2d(c_in, c_out, k, stride, 0))
    return nn.Conv2d(c_in, c_out, k, stride, p)


def conv_bn_act(c_in: int, c_out: int, k: int, stride: int = 1, pad: str = "reflection",
                slope: float = 0.2) -> list[nn.Module]:
    return [conv(c_in, c_out, k, stride, pad), nn.BatchNorm2d(c_out), nn.LeakyReLU(slope)]


class Scale(nn.Module):
    """One scale of the skip net; `inner` is the next (coarser) scale or None at the bottom."""

    members = 1  # fused members (nn/fused.py): the concat joins each member's own channels

    def __init__(self, c_in: int, down: int, up: int, skip: int, inner: nn.Module | None,
                 inner_out: int, pad: str, upsample_mode: str) -> None:
        super().__init__()
        self.skip = nn.Sequential(*conv_bn_act(c_in, skip, 1, pad=pad)) if skip else None
        self.deeper = nn.Sequential(
            *conv_bn_act(c_in, down, 3, stride=2, pad=pad),
            *conv_bn_act(down, down, 3, pad=pad),
            *([inner] if inner is not None else []),
            nn.Upsample(scale_factor=2, mode=upsample_mode),
        )
        merged = skip + (inner_out if inner is not None else down)
        self.merge = nn.Sequential(
            nn.BatchNorm2d(merged),
            *conv_bn_act(merged, up, 3, pad=pad),
            *conv_bn_act(up, up, 1, pad=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,C,H,W) -> (B,up,H,W)
        deep = self.deeper(x)
        if self.skip is not None:
            deep = cat_members([self.skip(x), deep], self.members)
        return self.merge(deep)


class SkipNet(nn.Module):
    members = 1  # fused members (nn/fused.py); the head and the body are per channel group

    def __init__(self, in_channels: int = 32, out_channels: int = 3,
                 channels_down: Sequence[int] = (128,) * 5,
                 channels_up: Sequence[int] = (128,) * 5,
                 channels_skip: Sequence[int] = (4,) * 5,
                 pad: str = "reflection", upsample_mode: str = "bilinear",
                 sigmoid: bool = True) -> None:
        super().__init__()
        if not len(channels_down) == len(channels_up) == len(channels_skip):
            raise ValueError("channels_down, channels_up and channels_skip need equal lengths")
        self.scales = len(channels_down)
        inner, inner_out = None, 0
        for i in reversed(range(self.scales)):  # build from the coarsest scale up
            c_in = in_channels if i == 0 else channels_down[i - 1]
            inner = Scale(c_in, channels_down[i], channels_up[i], channels_skip[i], inner,
                          inner_out, pad, upsample_mode)
            inner_out = channels_up[i]
        self.body = inner
        self.size_multiple = 2 ** self.scales
        self.min_size = 2 * self.size_multiple  # the coarsest scale's BN needs 2x2
        self.head = nn.Conv2d(channels_up[0], out_channels, 1)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(z))
        return torch.sigmoid(out) if self.sigmoid else out
