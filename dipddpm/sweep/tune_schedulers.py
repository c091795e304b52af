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
    make: Callable[..., Any]  # (the spec's scheduler section, method) -> a Tune scheduler
    params: tuple[str, ...]  # the section's fields it reads
    help: str


def asha(s: Any, method: str = ""):
    """Asynchronous successive halving, its rungs on the axis of the section's rung rule
    (`iter`, `iter_final` or `iter_gated`: sweep/spec/rung_rules.py)."""
    from ray.tune.schedulers import ASHAScheduler

    from dipddpm.sweep.spec.rung_rules import rule_for

    axis = rule_for(method, s.rung_rule).time_attr
    return ASHAScheduler(time_attr=axis, max_t=s.max_t, grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, brackets=s.brackets)


def fifo(s: Any, method: str = ""):
    """Every trial runs its whole budget, first in first out."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


TUNE_SCHEDULERS: Registry[TuneScheduler] = Registry("Tune scheduler")
TUNE_SCHEDULERS.register("asha")(TuneScheduler(
    asha, ("grace_period", "reduction_factor", "max_t", "brackets", "rung_rule"),
    "ASHA stops the weaker trials at its rungs"))
TUNE_SCHEDULERS.register("none")(TuneScheduler(fifo, (), "every trial runs its whole budget"))


def make_scheduler(section: Any, method: str = ""):
    """Ray Tune's scheduler for a spec's scheduler section (its `type` names the entry) and
    the sweep's method (whose default rung rule applies when the section names none)."""
    return TUNE_SCHEDULERS.get(section.type).make(section, method)
