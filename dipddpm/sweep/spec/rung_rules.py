"""Rung rules: the time axis on which ASHA counts a trial's rungs (compute is always counted in
total iterations). Each rule is a registry entry naming the reported key ASHA reads.

    total   `iter`: iterations done (plain DIP, DDPM, DIP-prior DDPM)
    final   `iter_final`: iterations done in the final stage (the observation itself), 0
            before it: a staged trial is first judged once it fits what plain DIP fits
    gated   `iter_gated`: iterations done, but 0 until the final stage begins: judged at its
            real cost, once it fits the observation

A staged method fits noisy targets by design until its final stage, so the `total` rule judges
it on numbers it was never meant to have yet (benchmarks/rung_fidelity.py measures it).
`scheduler.rung_rule: null` takes the method's default, DEFAULT_RULE.
"""

from __future__ import annotations

from dataclasses import dataclass

from dipddpm.registry import Registry


@dataclass(frozen=True)
class RungRule:
    name: str
    time_attr: str  # the reported key ASHA uses as its time
    needs: str | None  # the report key the rule is computed from (None: iter itself)
    doc: str

    def time(self, it: int, iter_final: float | None) -> int:
        if self.needs is None or iter_final is None:
            return it
        if self.name == "final":
            return int(iter_final)
        return it if iter_final > 0 else 0


RUNG_RULES: Registry[RungRule] = Registry("rung rule")
for _rule in (RungRule("total", "iter", None, "iterations done"),
              RungRule("final", "iter_final", "iter_final",
                       "iterations done in the final stage (0 before it)"),
              RungRule("gated", "iter_gated", "iter_final",
                       "iterations done, 0 until the final stage begins")):
    RUNG_RULES.register(_rule.name)(_rule)

# the rule for a method when the spec gives none (benchmarks/results/rung_fidelity.json)
DEFAULT_RULE = {"guided_dip": "final"}


def rule_for(method: str, rung_rule: str | None) -> RungRule:
    return RUNG_RULES.get(rung_rule or DEFAULT_RULE.get(method, "total"))
