"""Rung rules: the time axis on which ASHA counts a trial's rungs (compute is always counted in
total iterations). Each rule is a registry entry naming the reported key ASHA reads.

    total   `iter`: iterations done (plain DIP, DDPM, DIP-prior DDPM)
    final   `iter_final`: iterations done in the final stage (the observation itself), 0
            before it: a staged trial is first judged once it fits what plain DIP fits
    gated   `iter_gated`: iterations done, but 0 until the final stage begins: judged at its
            real cost, once it fits the observation

A staged method fits noisy targets by design until its final stage, so the `total` rule judges
it on numbers it was never meant to have yet (benchmarks/rung_fidelity.py measures it).
`scheduler.rung_rule: null` takes the method's default: its entry's `rung_rule`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dipddpm.registry import Registry


def _total(it: int, iter_final: float) -> int:
    return it


def _final(it: int, iter_final: float) -> int:
    return int(iter_final)


def _gated(it: int, iter_final: float) -> int:
    return it if iter_final > 0 else 0


@dataclass(frozen=True)
class RungRule:
    name: str
    time_attr: str  # the reported key ASHA uses as its time
    needs: str | None  # the report key the rule is computed from (None: iter itself)
    doc: str
    # (iterations done, final-stage iterations done) -> the rule's time
    clock: Callable[[int, float], int] = _total
    # whether it counts final-stage iterations only (a trial whose final stage is shorter than
    # ASHA's grace period is never judged: `sweep validate` warns)
    final_only: bool = False

    def time(self, it: int, iter_final: float | None) -> int:
        if self.needs is None or iter_final is None:
            return it
        return self.clock(it, iter_final)


RUNG_RULES: Registry[RungRule] = Registry("rung rule")
for _rule in (RungRule("total", "iter", None, "iterations done"),
              RungRule("final", "iter_final", "iter_final",
                       "iterations done in the final stage (0 before it)", _final, True),
              RungRule("gated", "iter_gated", "iter_final",
                       "iterations done, 0 until the final stage begins", _gated)):
    RUNG_RULES.register(_rule.name)(_rule)


def rule_for(method: str, rung_rule: str | None) -> RungRule:
    """The spec's rule, or (null) the method entry's default (`Method.rung_rule`)."""
    from dipddpm.methods import METHODS

    return RUNG_RULES.get(rung_rule or METHODS.get(method).rung_rule)
