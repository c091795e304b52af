"""The torch device a fit or a training runs on (`--device`): the current CUDA device, or CPU."""

from __future__ import annotations

import torch

from dipddpm.errors import DipddpmError


def pick_device(device=None) -> torch.device:
    """None/'auto': the current CUDA device if there is one (never assumes index 0), else CPU.
    A device that does not exist here is a user error, not a crash deep in the loop."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DipddpmError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            raise DipddpmError(f"device {device!r}: this machine has {n} CUDA device(s); "
                               f"use --device auto or cpu")
    elif dev.type != "cpu":
        raise DipddpmError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return dev
