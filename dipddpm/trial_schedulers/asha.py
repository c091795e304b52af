"""ASHA (Li et al., MLSys 2020): asynchronous successive halving. A trial is judged at each rung
(grace_period x reduction_factor^k iterations, on the axis of the section's rung rule:
sweep/spec/rung_rules.py) against the trials that reached that rung, and stopped unless it is
in their top 1/reduction_factor.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dipddpm.config import check
from dipddpm.errors import ConfigError
from dipddpm.trial_schedulers.entry import SweepFacts, check_rung_rule, rule_axis


@dataclass(frozen=True)
class AshaSection:
    grace_period: int = 50  # iterations before ASHA may stop a trial
    reduction_factor: float = 3.0
    max_t: int | None = None  # iterations; null = the largest iteration budget in the space
    brackets: int = 1
    # the axis rungs are counted on: total | final | gated (sweep/spec/rung_rules.py); null = the
    # method's default (its entry's rung_rule; staged methods: final)
    rung_rule: str | None = None

    def __post_init__(self) -> None:
        check(self.grace_period >= 1, f"scheduler.grace_period must be >= 1 iteration, got "
                                      f"{self.grace_period}")
        check(self.reduction_factor > 1, f"scheduler.reduction_factor must be > 1, got "
                                         f"{self.reduction_factor}")
        check(self.brackets >= 1, f"scheduler.brackets must be >= 1, got {self.brackets}")
        check_rung_rule(self.rung_rule)


def make(s: AshaSection, spec: Any):
    """Ray Tune's ASHA, its rungs on the axis of the section's rung rule."""
    from ray.tune.schedulers import ASHAScheduler

    from dipddpm.sweep.spec.rung_rules import rule_for

    axis = rule_for(spec.method, s.rung_rule).time_attr
    return ASHAScheduler(time_attr=axis, max_t=s.max_t, grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, brackets=s.brackets)


def resolve(s: AshaSection, facts: SweepFacts) -> AshaSection:
    """max_t defaults to the largest budget; it must let a trial complete and the grace
    period fit in it; the rung rule must count a key the method reports."""

    method, budget = facts.method, facts.budget
    max_t = s.max_t if s.max_t is not None else budget
    if s.grace_period > max_t:
        raise ConfigError(f"scheduler.grace_period ({s.grace_period}) > max_t ({max_t} "
                          f"iterations); lower grace_period or raise max_t / {method.iters_key}")
    if max_t < budget:
        raise ConfigError(f"scheduler.max_t ({max_t}) < the largest {method.iters_key} budget "
                          f"({budget}): ASHA would stop every trial at max_t and none could "
                          f"complete; raise max_t or leave it out (default: {budget})")
    rule_axis(method, s.rung_rule, "ASHA")
    return dataclasses.replace(s, max_t=max_t)


def rungs(s: AshaSection) -> list[float]:
    """The iterations (on the rule's axis) at which ASHA looks at a trial, every bracket."""
    if s.max_t is None:
        return []
    out = set()
    for b in range(s.brackets):
        n = int(math.log(s.max_t / s.grace_period) / math.log(s.reduction_factor) - b + 1)
        out.update(s.grace_period * s.reduction_factor ** (k + b) for k in range(n))
    return sorted(out)


def describe(s: AshaSection) -> str:
    return f"ASHA max_t {s.max_t} it, grace {s.grace_period} it"


def idle(s: AshaSection, method: Any, configs: list) -> tuple[str, ...]:
    """Under a rule counting final-stage iterations only, ASHA reaches no rung when no
    corner's final stage reaches grace_period (a warning: the corners sample the space)."""
    from dipddpm.sweep.spec.rung_rules import rule_for

    if method.final_stage_iters is None or not configs:
        return ()
    rule = rule_for(method.name, s.rung_rule)
    if not rule.final_only:
        return ()
    longest = max(method.final_stage_iters(cfg) for cfg in configs)
    if longest >= s.grace_period:
        return ()
    return (f"scheduler: under rung_rule {rule.name} ASHA counts final-stage iterations only, "
            f"and the longest final stage in the search space is {longest} iterations (at its "
            f"corners), under grace_period ({s.grace_period}): ASHA is likely to stop no "
            f"trial; lower grace_period to <= {longest}, or use rung_rule: gated",)
