"""The guided-DIP source's two backbones (docs/methods.md), written from their description.

GuidedUNet: `depth` strided 5x5 convs (in -> base -> 2 base -> ... ; 3->8->...->256 by default),
BN, LeakyReLU(0.01); 4-channel 5x5 skip convs on the three finest levels; a transposed-conv
decoder (4x4, stride 2) that concatenates the skips; BN + sigmoid at the output (~1.80 M params).
SegNet: VGG16-style encoder (conv3x3-BN-ReLU blocks of 2,2,3,3,3 convs, max-pool keeping the
indices), a mirrored decoder that unpools with those indices, a plain final conv, no activation.
"""

from __future__ import annotations

import torch
from torch import nn

from dipddpm.errors import ConfigError
from dipddpm.nn.fused import cat_members


class GuidedUNet(nn.Module):
    members = 1  # fused members (nn/fused.py): the concat joins each member's own channels

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base: int = 8, depth: int = 6,
                 skip_channels: int = 4, skip_levels: int = 3, sigmoid: bool = True) -> None:
        super().__init__()
        ch = [base * 2 ** i for i in range(depth)]  # encoder output channels per level
        prev = [in_ch] + ch[:-1]
        self.enc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(p, c, 5, 2, 2), nn.BatchNorm2d(c), nn.LeakyReLU(0.01))
            for p, c in zip(prev, ch, strict=True))
        self.skip_levels = min(skip_levels, depth)
        self.skips = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[i], skip_channels, 5, 1, 2),
                          nn.BatchNorm2d(skip_channels), nn.LeakyReLU(0.01))
            for i in range(self.skip_levels))
        dec = []
        for i in range(depth):  # dec[i] upsamples level i -> level i-1
            c_in = ch[i] + (skip_channels if i < self.skip_levels else 0)
            c_out = ch[i - 1] if i > 0 else out_ch
            act = nn.LeakyReLU(0.01) if i > 0 else nn.Identity()
            dec.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1),
                                     nn.BatchNorm2d(c_out), act))
        self.dec = nn.ModuleList(dec)
        self.sigmoid = sigmoid
        self.size_multiple = 2 ** depth
        self.min_size = 2 * self.size_multiple  # the last strided conv's BN needs 2x2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,in,H,W) -> (B,out,H,W)
        feats = []
        for enc in self.enc:
            x = enc(x)
            feats.append(x)
        h = feats[-1]
        for i in reversed(range(len(self.dec))):
            if i < self.skip_levels:
                h = cat_members([h, self.skips[i](feats[i])], self.members)
            h = self.dec[i](h)
        return torch.sigmoid(h) if self.sigmoid else h


def _vgg_block(c_in: int, c_out: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for j in range(n):
        layers += [nn.Conv2d(c_in if j == 0 else c_out, c_out, 3, 1, 1),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    members = 1  # fused members (nn/fused.py); pooling indices are per channel, so per member

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base: int = 64, depth: int = 5,
                 sigmoid: bool = False) -> None:
        super().__init__()
        if depth > 5:
            raise ConfigError(f"segnet has at most 5 blocks (VGG16), got depth {depth}; use 1-5")
        widths = [base, 2 * base, 4 * base, 8 * base, 8 * base][:depth]
        convs = [2, 2, 3, 3, 3][:depth]
        prev = [in_ch] + widths[:-1]
        self.enc = nn.ModuleList(_vgg_block(p, w, n)
                                 for p, w, n in zip(prev, widths, convs, strict=True))
        dec = []
        for i in range(depth):  # dec[i] mirrors enc[i]: widths[i] -> widths[i-1] (or out)
            w, n = widths[i], convs[i]
            layers = list(_vgg_block(w, w, n - 1)) if n > 1 else []
            if i > 0:
                layers += [nn.Conv2d(w, widths[i - 1], 3, 1, 1),
                           nn.BatchNorm2d(widths[i - 1]), nn.ReLU(inplace=True)]
            else:
                layers += [nn.Conv2d(w, out_ch, 3, 1, 1)]  # plain final conv
            dec.append(nn.Sequential(*layers))
        self.dec = nn.ModuleList(dec)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.sigmoid = sigmoid
        self.size_multiple = 2 ** depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, sizes = [], []
        for enc in self.enc:
            x = enc(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        for i in reversed(range(len(self.dec))):
            x = self.unpool(x, indices[i], output_size=sizes[i])
            x = self.dec[i](x)
        return torch.sigmoid(x) if self.sigmoid else x
