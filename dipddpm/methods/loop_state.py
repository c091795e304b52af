"""The fitting loop's checkpoint codec: its state (`fitting.FitState`, a dataclass) as a dict of
plain values and back. Each field is saved by its kind: what holds state (net, Adam, trackers)
by its `state_dict`, torch generators by their state, tensors as CPU copies, lists and dicts
item by item; `GlobalRng` makes torch's global RNG such a field. Resume loads each value back
the same way, into the live object where it holds state (`_dump`, `_load`)."""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import torch


class GlobalRng:
    """torch's global RNG as a checkpointable value (saved as it is when saved)."""

    def state_dict(self) -> torch.Tensor:
        return torch.get_rng_state()

    def load_state_dict(self, s: torch.Tensor) -> None:
        torch.set_rng_state(s)


def _dump(v):
    """A checkpoint value that never aliases the live one (tensors as CPU copies)."""
    if hasattr(v, "state_dict"):
        return copy.deepcopy(v.state_dict())
    if isinstance(v, torch.Generator):
        return v.get_state()
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", copy=True)
    if isinstance(v, list | tuple):
        return [_dump(x) for x in v]
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


def _load(current, saved, dev):
    """The live value for `saved`: loaded into `current` where it holds state (net, Adam,
    generators, trackers), else rebuilt (tensors copied to `dev`)."""
    if hasattr(current, "load_state_dict"):  # a copy: torch's Adam keeps the tensors it is
        current.load_state_dict(copy.deepcopy(saved))  # given and would step the checkpoint
        return current
    if isinstance(current, torch.Generator):
        current.set_state(saved.to(current.get_state().device))
        return current
    if isinstance(saved, torch.Tensor):
        return saved.to(dev, copy=True)
    if isinstance(saved, list):
        cur = current if isinstance(current, list) and len(current) == len(saved) else saved
        return [_load(c, s, dev) for c, s in zip(cur, saved, strict=True)]
    if isinstance(saved, dict):
        return {k: _load(None, x, dev) for k, x in saved.items()}
    return saved


def dump_state(st: Any) -> dict:
    """The checkpoint of the loop's state `st` (a dataclass: fitting.FitState)."""
    return {f.name: _dump(getattr(st, f.name)) for f in fields(st)}


def load_state(st: Any, resume: dict, dev) -> None:
    """Load the checkpoint `resume` back into the loop's state `st`."""
    for f in fields(st):
        setattr(st, f.name, _load(getattr(st, f.name), resume[f.name], dev))
