"""Tune trial schedulers by name (a spec's `scheduler: {type: NAME, ...}`): each entry
(entry.py) owns its spec section, its rung maths, its `sweep show` line and its report text.

    asha   asynchronous successive halving (asha.py)
    none   every trial runs its whole budget (fifo.py)
    pbt    population based training, exploiting checkpoints (pbt.py)

Ray is imported only when a scheduler is built, so the spec validator and the report (which
draws the rungs on the learning curves) read the entries without it. Adding a scheduler is a
module beside these and its registration here (CONTRIBUTING.md, "How to add a Tune
scheduler").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dipddpm.registry import Registry
from dipddpm.trial_schedulers import asha, fifo, pbt
from dipddpm.trial_schedulers.entry import SweepFacts, TuneScheduler

TUNE_SCHEDULERS: Registry[TuneScheduler] = Registry("Tune scheduler")
TUNE_SCHEDULERS.register("asha")(TuneScheduler(
    section=asha.AshaSection, make=asha.make, help="ASHA stops the weaker trials at its rungs",
    describe=asha.describe, resolve=asha.resolve, rungs=asha.rungs, rung_label="ASHA rung",
    warn=asha.idle, example={"grace_period": 2, "reduction_factor": 2}))
TUNE_SCHEDULERS.register("none")(TuneScheduler(
    section=fifo.FifoSection, make=fifo.make, help="every trial runs its whole budget",
    describe=fifo.describe))
TUNE_SCHEDULERS.register("pbt")(TuneScheduler(
    section=pbt.PbtSection, make=pbt.make, describe=pbt.describe, resolve=pbt.resolve,
    help="population based training: the bottom trials clone the top ones' checkpoints and "
         "explore their config", rungs=pbt.rungs, rung_label="PBT perturbation",
    checkpoint_at_rungs=True, mutates_config=True, checkpoints_kept=4,
    example={"perturbation_interval": 4, "mutate": ["x"], "quantile_fraction": 0.5}))


def make_scheduler(spec: Any):
    """Ray Tune's scheduler for a spec (its scheduler section's `type` names the entry)."""
    section = spec.scheduler
    return TUNE_SCHEDULERS.get(section.type).make(section.options, spec)


def rung_lines(raw: Any) -> tuple[str, list[float]]:
    """(label, iterations) of the rung lines a stored spec's scheduler section draws on the
    learning curves; none where the section is absent or does not parse."""
    from dipddpm.errors import DipddpmError

    if not isinstance(raw, Mapping) or raw.get("type", "asha") not in TUNE_SCHEDULERS:
        return "", []
    entry = TUNE_SCHEDULERS.get(raw.get("type", "asha"))
    try:
        section = entry.build({k: v for k, v in raw.items() if k != "type"})
    except DipddpmError:
        return "", []
    last = getattr(section, "max_t", None)  # a rung at the budget's end draws no line
    return entry.rung_label, [float(t) for t in entry.rungs(section)
                              if last is None or t < last]


__all__ = ["TUNE_SCHEDULERS", "SweepFacts", "TuneScheduler", "make_scheduler", "rung_lines"]
