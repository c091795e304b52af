"""The time-conditioned U-Net of DDPM (Ho et al. 2020, App. B), written from its description.

    t -> sinusoidal embedding (time_dim) -> per level: MLP -> (B, C_level) added to the feature
    map entering that level.
    encoder: per level `blocks` x [norm -> conv3x3 -> SiLU -> conv3x3 -> SiLU] (+ self-attention
    at the levels listed in `attention`), then a stride-2 conv down (not after the last level)
    middle: `blocks` blocks at the last width (+ attention when any level has it)
    decoder: upsample to the skip's size, concat the skip, the same blocks, mirrored
    head: 1x1 conv to the image channels

The net maps (x_t in [-1, 1], integer t (B,)) to the objective's target (eps, x0 or v) of the
same shape. Sizes need not be powers of two (MNIST's 28 -> 14 -> 7 -> 4 works): the decoder
upsamples to each skip's exact size. Presets live in `UNET_PRESETS`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dipddpm.config import check
from dipddpm.registry import Registry


@dataclass(frozen=True)
class UNetSpec:
    channels: int = 1  # image channels in and out
    image_size: int = 32  # training image side (pixels); the net itself accepts any size
    widths: tuple[int, ...] = (32, 64)  # channels per level, finest first; levels = len(widths)
    blocks: int = 1  # conv blocks per level (encoder, middle and decoder each)
    attention: tuple[int, ...] = ()  # level indices (0 = finest) with a self-attention block
    time_dim: int = 64  # size of the sinusoidal time embedding
    norm: Literal["layer", "group"] = "group"  # layer = GroupNorm(1, C): LayerNorm over C,H,W
    groups: int = 8  # groups of GroupNorm when norm = group (must divide every width)

    def __post_init__(self) -> None:
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(len(self.widths) >= 1 and all(w >= 1 for w in self.widths),
              f"widths must be a non-empty list of positive channel counts, got {self.widths}")
        check(self.blocks >= 1, f"blocks must be >= 1, got {self.blocks}")
        check(all(0 <= a < len(self.widths) for a in self.attention),
              f"attention levels must be in 0..{len(self.widths) - 1}, got {self.attention}")
        check(self.time_dim >= 2 and self.time_dim % 2 == 0,
              f"time_dim must be an even number >= 2, got {self.time_dim}")
        if self.norm == "group":
            check(all(w % self.groups == 0 for w in self.widths),
                  f"norm=group needs every width divisible by groups={self.groups}, got "
                  f"widths {self.widths}; use norm=layer or other widths")


UNET_PRESETS: Registry = Registry("time U-Net preset")
UNET_PRESETS.register("tiny")({"widths": (8, 16), "blocks": 1, "time_dim": 16, "norm": "group",
                               "groups": 4})
# the MNIST source: 28x28x1, LayerNorm + SiLU blocks, channels 10/20/40; 589,231 params (~0.6 M)
UNET_PRESETS.register("mnist")({"widths": (10, 20, 40), "blocks": 5, "time_dim": 100,
                                "norm": "layer", "image_size": 28, "channels": 1})
# CIFAR-10 sized: 32x32x3, attention at 16x16 and 8x8
UNET_PRESETS.register("cifar")({"widths": (64, 128, 256, 256), "blocks": 2, "attention": (1, 2),
                                "time_dim": 128, "norm": "group", "groups": 32,
                                "image_size": 32, "channels": 3})
# a CPU-sized prior for 32x32 patches (the dip_prior_ddpm benchmark)
UNET_PRESETS.register("small")({"widths": (32, 64, 64), "blocks": 1, "attention": (2,),
                                "time_dim": 64, "norm": "group", "groups": 8})


def unet_spec(preset: str, **overrides) -> UNetSpec:
    """The preset's spec with `overrides` (None values keep the preset's own)."""
    values = dict(UNET_PRESETS.get(preset))
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(UNetSpec)}
    return UNetSpec(**{k: v for k, v in values.items() if k in names})


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim): [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def _norm(spec: UNetSpec, c: int) -> nn.Module:
    return nn.GroupNorm(1 if spec.norm == "layer" else spec.groups, c)


class Block(nn.Module):
    """norm -> conv3x3 -> SiLU -> conv3x3 -> SiLU, with a 1x1 residual when widths change."""

    def __init__(self, spec: UNetSpec, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(spec, c_in), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU())
        self.res = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(x) + self.body(x)


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""

    def __init__(self, spec: UNetSpec, c: int) -> None:
        super().__init__()
        self.norm = _norm(spec, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


def _time_mlp(time_dim: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Linear(time_dim, c), nn.SiLU(), nn.Linear(c, c))


class Level(nn.Module):
    """`blocks` Blocks (+ attention) with the time embedding added to the input feature map."""

    def __init__(self, spec: UNetSpec, c_in: int, c_out: int, attention: bool) -> None:
        super().__init__()
        self.time = _time_mlp(spec.time_dim, c_in)
        self.blocks = nn.Sequential(*[Block(spec, c_in if i == 0 else c_out, c_out)
                                      for i in range(spec.blocks)])
        self.attn = Attention(spec, c_out) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.blocks(x + self.time(temb)[:, :, None, None]))


class TimeUNet(nn.Module):
    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.widths
        self.stem = nn.Conv2d(spec.channels, w[0], 3, padding=1)
        self.down = nn.ModuleList()  # encoder levels
        self.pool = nn.ModuleList()  # stride-2 convs between levels
        for i, c in enumerate(w):
            self.down.append(Level(spec, w[max(i - 1, 0)], c, i in spec.attention))
            if i < len(w) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = Level(spec, w[-1], w[-1], bool(spec.attention))
        self.up = nn.ModuleList()  # decoder levels, coarsest first
        for i in reversed(range(len(w))):
            c_below = w[-1] if i == len(w) - 1 else w[i + 1]
            self.up.append(Level(spec, c_below + w[i], w[i], i in spec.attention))
        self.head = nn.Sequential(_norm(spec, w[0]), nn.SiLU(), nn.Conv2d(w[0], spec.channels, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B,C,H,W) in [-1,1]-space, t (B,) integer timesteps -> (B,C,H,W)."""
        temb = sinusoidal_embedding(t, self.spec.time_dim)  # (B, time_dim)
        h = self.stem(x)
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, temb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, temb)
        for level in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = level(torch.cat([h, skip], dim=1), temb)
        return self.head(h)
