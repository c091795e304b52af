"""The image sizes a net accepts: H and W divisible by its size multiple (one per down-sampling)
and at least its minimum side (the coarsest scale keeps 2x2 values); `build_for_problem` builds
a DIP-family net for a problem and checks its size."""

from __future__ import annotations

import torch

from dipddpm.errors import DipddpmError
from dipddpm.nn import build_net, min_size, size_multiple


def build_for_problem(cfg, channels: int, problem) -> torch.nn.Module:
    """The net of a DIP-family config `cfg` for `problem`'s image, its size checked."""
    net = build_net(cfg.net, cfg.input_depth, channels, cfg.width, cfg.depth, cfg.net_sigmoid)
    check_size(net, cfg.net, *problem.observed.shape[-2:])
    return net


def check_size(net: torch.nn.Module, name: str, H: int, W: int) -> None:
    """The image must fit the net: H, W divisible by its multiple and at least its minimum."""
    err = size_error(name, size_multiple(net), min_size(net), H, W)
    if err is not None:
        raise err


def size_error(name: str, m: int, low: int, H: int, W: int) -> DipddpmError | None:
    """The error of an H x W image for a net of size multiple m and minimum side low."""
    if H % m or W % m:
        return DipddpmError(
            f"net {name!r} needs H and W divisible by {m}, got {H}x{W}; "
            f"crop the image (make_image_problem(multiple={m})) or use a smaller depth")
    if min(H, W) < low:
        return DipddpmError(
            f"net {name!r} needs H and W of at least {low} (its coarsest scale must keep "
            f"2x2 values), got {H}x{W}; use a larger --size or a smaller depth "
            f"(--set depth=N)")
    return None
