"""Population based training (Jaderberg et al., 2017) through Ray Tune's scheduler: every
`perturbation_interval` iterations (on the axis of its rung rule, as ASHA's rungs) a trial in
the bottom `quantile_fraction` of the running population is stopped, restarted from the
checkpoint of a trial in the top fraction (exploit: its weights, optimizer and RNG state, and
its config), and the `mutate:` keys of that config are perturbed or resampled from their
`search:` domain (explore).

A trial checkpoints at every perturbation point (the trial reporter asks the entry), so the
top trial's state at that iteration is what is cloned. Only keys the method takes from a new
config when it resumes from a checkpoint may be mutated (its entry's `mutable`: noop's `x`; a
DIP fit's learning rate lives in its Adam state, so DIP declares none). Tune's basic variant
generator hands out the configs (`searcher: {type: grid}`): a searcher holding each trial's
params (Optuna) would record params the trial no longer runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dipddpm.config import check
from dipddpm.errors import ConfigError
from dipddpm.trial_schedulers.entry import SweepFacts, check_rung_rule, rule_axis


@dataclass(frozen=True)
class PbtSection:
    perturbation_interval: int = 50  # iterations between a trial's perturbations (checkpoints)
    mutate: tuple[str, ...] = ()  # searched keys explored at each exploit (at least one)
    quantile_fraction: float = 0.25  # the bottom fraction clones the top fraction (<= 0.5)
    resample_probability: float = 0.25  # explore: resample from the domain, else perturb
    perturbation_factors: tuple[float, float] = (1.2, 0.8)  # explore: a number times one of
    # these (a choice: a neighbouring value)
    burn_in: int = 0  # iterations before a trial's first perturbation
    max_t: int | None = None  # iterations; null = the largest budget (the last point drawn)
    # the axis its interval counts on: total | final | gated (sweep/spec/rung_rules.py); null =
    # the method's default (staged methods: final, perturbed once they fit the observation)
    rung_rule: str | None = None

    def __post_init__(self) -> None:
        check(self.perturbation_interval >= 1, f"scheduler.perturbation_interval must be >= 1 "
                                               f"iteration, got {self.perturbation_interval}")
        check(0 < self.quantile_fraction <= 0.5, f"scheduler.quantile_fraction must be in "
                                                 f"(0, 0.5], got {self.quantile_fraction}")
        check(0 <= self.resample_probability <= 1, f"scheduler.resample_probability must be in"
                                                   f" [0, 1], got {self.resample_probability}")
        check(self.burn_in >= 0, f"scheduler.burn_in must be >= 0 iterations, got "
                                 f"{self.burn_in}")
        check_rung_rule(self.rung_rule)
        check(len(self.mutate) > 0, "scheduler.mutate must name at least one searched key that "
                                    "PBT explores, e.g. mutate: [lr]")


def _domain(facts: SweepFacts, key: str):
    return next((d for d in facts.search if d.key == key), None)


def resolve(s: PbtSection, facts: SweepFacts) -> PbtSection:
    """Every mutated key is searched, unconditional, and taken from a new config on resume;
    max_t defaults to the largest budget."""
    method = facts.method
    for key in s.mutate:
        d = _domain(facts, key)
        if d is None:
            searched = ", ".join(x.key for x in facts.search) or "(none)"
            raise ConfigError(f"scheduler.mutate: {key!r} is not a searched key; PBT explores "
                              f"a key's search: domain; searched: {searched}")
        if d.when:
            raise ConfigError(f"scheduler.mutate: {key!r} is conditional (when:); PBT needs a "
                              f"key every trial has")
        if key not in method.mutable:
            takes = ", ".join(method.mutable) or "none"
            raise ConfigError(f"scheduler.mutate: {method.name} keeps {key!r} in its "
                              f"checkpoint, so a cloned trial would not take the new value; "
                              f"keys it takes on resume: {takes}")
    rule_axis(method, s.rung_rule, "PBT")
    max_t = s.max_t if s.max_t is not None else facts.budget
    return dataclasses.replace(s, max_t=max_t)


@dataclass(frozen=True)
class Clip:
    """PBT's explore step, then each numeric mutated key clipped into its domain's bounds
    (a perturbation factor may step outside them; the config would refuse the value)."""

    bounds: tuple[tuple[str, float, float], ...]  # (key, low, high)

    def __call__(self, config: dict) -> dict:
        for key, low, high in self.bounds:
            if isinstance(config.get(key), int | float):
                value = min(max(config[key], low), high)
                config[key] = type(config[key])(value)
        return config


def mutations(s: PbtSection, spec: Any) -> tuple[dict[str, Any], Clip]:
    """Tune's hyperparam_mutations: a key with values (choice, grid, stepped int) moves to a
    neighbouring value or resamples one; a range (uniform, loguniform, log int) is scaled
    by a perturbation factor, then clipped into its bounds."""
    from dipddpm.sweep.spec.space import tune_space

    space = tune_space(spec.search)
    out, bounds = {}, []
    for key in s.mutate:
        d = spec.domain(key)
        if d.values:
            out[key] = list(d.values)
        elif d.step is not None and not d.log:
            out[key] = list(range(d.low, d.high + 1, d.step))
        else:
            out[key] = space[key]
            bounds.append((key, d.low, d.high))
    return out, Clip(tuple(bounds))


def make(s: PbtSection, spec: Any):
    from ray.tune.schedulers import PopulationBasedTraining

    from dipddpm.sweep.spec.rung_rules import rule_for

    mutate, clip = mutations(s, spec)
    return PopulationBasedTraining(
        time_attr=rule_for(spec.method, s.rung_rule).time_attr,
        perturbation_interval=s.perturbation_interval,
        burn_in_period=s.burn_in, hyperparam_mutations=mutate, custom_explore_fn=clip,
        quantile_fraction=s.quantile_fraction, resample_probability=s.resample_probability,
        perturbation_factors=tuple(s.perturbation_factors))


def rungs(s: PbtSection) -> list[float]:
    """The perturbation points: every interval after the burn-in, before max_t."""
    if s.max_t is None:
        return []
    first = max(s.perturbation_interval, s.burn_in)
    return [float(t) for t in range(first, s.max_t, s.perturbation_interval)]


def describe(s: PbtSection) -> str:
    return (f"PBT every {s.perturbation_interval} it (after {s.burn_in}), bottom "
            f"{s.quantile_fraction:g} clones the top, exploring {', '.join(s.mutate)}")
