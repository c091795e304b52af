"""K DIP nets run as one (horizontal fusion): the exact per-member form of every layer.

Member-major channels: a fused activation (B, K*C, H, W) holds member k's C channels at
[k*C, (k+1)*C). Then
- a convolution (or transposed convolution) with `groups=K*g` and the members' weights
  stacked on dim 0 computes each member's own convolution: group k reads only member k;
- BatchNorm over K*C channels keeps per-channel, hence per-member, statistics;
- padding, activations, upsampling and max pooling (whose indices are per channel plane)
  act per channel already;
- a concatenation must join each member's own channels (`cat_members`).
Every fused parameter and buffer has a leading dim of K times the member's, so member k's
slice is `t.view(K, -1)[k]`. A net whose forward concatenates declares `members` (the class
default 1) and concatenates with `cat_members`; any other module type refuses to fuse.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dipddpm.errors import DipddpmError

CHANNELWISE = (nn.ReflectionPad2d, nn.ZeroPad2d, nn.LeakyReLU, nn.ReLU, nn.Sigmoid, nn.Identity,
               nn.Upsample, nn.MaxPool2d, nn.MaxUnpool2d)
CONTAINERS = (nn.Sequential, nn.ModuleList)


def cat_members(xs: list[torch.Tensor], members: int) -> torch.Tensor:
    """Concatenate on channels, member by member: [a_1 b_1 a_2 b_2 ...] (K=1: torch.cat)."""
    if members == 1:
        return torch.cat(xs, dim=1)
    B, H, W = xs[0].shape[0], xs[0].shape[-2], xs[0].shape[-1]
    parts = [x.reshape(B, members, -1, H, W) for x in xs]
    return torch.cat(parts, dim=2).reshape(B, -1, H, W)


def _stack(ts) -> nn.Parameter:
    return nn.Parameter(torch.cat([t.detach() for t in ts]))


def _fused_conv(ms: list[nn.Module]) -> nn.Module:
    m, K = ms[0], len(ms)
    kw = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups * K,
              bias=m.bias is not None, padding_mode=m.padding_mode, device="meta",
              dtype=m.weight.dtype)
    if isinstance(m, nn.ConvTranspose2d):
        kw["output_padding"] = m.output_padding
    f = type(m)(m.in_channels * K, m.out_channels * K, m.kernel_size, **kw)
    f.weight = _stack(x.weight for x in ms)
    if m.bias is not None:
        f.bias = _stack(x.bias for x in ms)
    return f


def _fused_bn(ms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m, K = ms[0], len(ms)
    f = nn.BatchNorm2d(m.num_features * K, m.eps, m.momentum, m.affine,
                       m.track_running_stats, device=m.weight.device, dtype=m.weight.dtype)
    if m.affine:
        f.weight, f.bias = _stack(x.weight for x in ms), _stack(x.bias for x in ms)
    if m.track_running_stats:
        for name in ("running_mean", "running_var"):
            getattr(f, name).copy_(torch.cat([getattr(x, name) for x in ms]))
        f.num_batches_tracked.copy_(m.num_batches_tracked)
    return f


def _refuse(name: str, m: nn.Module) -> DipddpmError:
    return DipddpmError(f"net {name!r} cannot be fused: it holds a {type(m).__name__}, which "
                        f"has no per-member form (nn/fused.py); use replicates 1 or --serial")


def check_fusable(net: nn.Module, name: str) -> None:
    """Raise one line naming the net if any of its modules has no exact per-member form."""
    for m in net.modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, *CHANNELWISE,
                              *CONTAINERS)) and not hasattr(m, "members"):
            raise _refuse(name, m)


def _fuse_children(target: nn.Module, members: list[nn.Module]) -> None:
    if hasattr(target, "members"):
        target.members = len(members)
    for child_name, child in list(target.named_children()):
        ms = [getattr(m, child_name) for m in members]
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
            setattr(target, child_name, _fused_conv(ms))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(target, child_name, _fused_bn(ms))
        else:
            _fuse_children(child, ms)


def fuse(nets: list[nn.Module], name: str = "net") -> nn.Module:
    """One net computing all of `nets` (same architecture, own weights) member by member;
    input (B, K*C_in, H, W), output (B, K*C_out, H, W). One member: that net itself, whatever
    its modules (a net with no per-member form still fits alone)."""
    if len(nets) == 1:
        return nets[0]
    for net in nets:
        check_fusable(net, name)
    fused = copy.deepcopy(nets[0])
    _fuse_children(fused, nets)
    return fused


def member_view(t: torch.Tensor, members: int) -> torch.Tensor:
    """A fused parameter, buffer or gradient as (K, per-member numel)."""
    return t.view(members, -1)


def member_state_dict(fused: nn.Module, k: int, members: int) -> dict[str, torch.Tensor]:
    """Member k's weights and buffers under the unfused net's keys."""
    return {key: (t if t.ndim == 0 else t.chunk(members)[k]).clone()
            for key, t in fused.state_dict().items()}
