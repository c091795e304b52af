"""Tune-level trial schedulers by name (a spec's `scheduler: {type: NAME, ...}`).

Each entry builds Ray Tune's scheduler from the spec's scheduler section and names the
section fields it reads; Ray is imported only when one is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dipddpm.registry import Registry


@dataclass(frozen=True)
class TuneScheduler:
    make: Callable[[Any], Any]  # the spec's scheduler section -> a Ray Tune scheduler
    params: tuple[str, ...]  # the section's fields it reads
    help: str


def asha(s: Any):
    """Asynchronous successive halving on the `iter` axis (ASHA)."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="iter", max_t=s.max_t, grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, brackets=s.brackets)


def fifo(s: Any):
    """Every trial runs its whole budget, first in first out."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


TUNE_SCHEDULERS: Registry[TuneScheduler] = Registry("Tune scheduler")
TUNE_SCHEDULERS.register("asha")(TuneScheduler(
    asha, ("grace_period", "reduction_factor", "max_t", "brackets"),
    "ASHA stops the weaker trials at its rungs"))
TUNE_SCHEDULERS.register("none")(TuneScheduler(fifo, (), "every trial runs its whole budget"))


def make_scheduler(section: Any):
    """Ray Tune's scheduler for a spec's scheduler section (its `type` names the entry)."""
    return TUNE_SCHEDULERS.get(section.type).make(section)
