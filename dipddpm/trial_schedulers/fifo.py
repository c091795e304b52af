"""No early stopping: every trial runs its whole budget, first in first out (Tune's FIFO)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FifoSection:
    """`scheduler: {type: none}` has no keys of its own."""


def make(section: FifoSection, spec: Any):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def describe(section: FifoSection) -> str:
    return "no early stopping"
