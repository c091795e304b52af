"""A Tune trial scheduler's registry entry: everything the runner, the spec validator, `sweep
show`, `sweep status`, the trial reporter and the report need to know about it.

    section     its spec section: the keys beside `type`, a frozen dataclass that checks
                its own values in `__post_init__` (built through dipddpm/config.py, so an
                unknown key, a wrong type or a bad range is one line naming the key)
    make        (section, spec) -> Ray Tune's scheduler (Ray imported only here)
    resolve     (section, SweepFacts) -> the section with its defaults that depend on the
                sweep filled in (ASHA's max_t), after the rules joining it to the rest of the
                spec (a key the method does not report, a too-short budget)
    rungs       section -> the iterations at which it judges trials: the trial reporter sends
                a result at once there (and checkpoints there when `checkpoint_at_rungs`), the
                learning curves draw a line there, labelled `rung_label`
    describe    section -> its one line in `sweep show`
    warn        (section, method entry, configs at the space's corners) -> warnings
    mutates_config   it changes a running trial's config (PBT's explore): the searcher must
                hand out configs it does not hold (searchers.py `holds_params` false)
    example     its section's values for the smallest sweep (the contract suite's)

No other module knows a scheduler by its name: they ask its entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepFacts:
    """What a scheduler's section is checked against beside itself."""

    method: Any  # the method's registry entry (methods/base.py Method)
    budget: int  # the largest iteration budget any trial of the space can have
    search: tuple = ()  # the spec's search domains (sweep/spec/schema.py Domain)
    checkpoint_every: int = 100  # iterations between trial checkpoints


def _as_is(section: Any, facts: SweepFacts) -> Any:
    return section


def _no_rungs(section: Any) -> list[float]:
    return []


def _no_warnings(section: Any, method: Any, configs: list) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class TuneScheduler:
    section: type  # its spec section (the keys beside `type`): a frozen dataclass
    make: Callable[[Any, Any], Any]  # (section, spec) -> a Ray Tune scheduler
    help: str
    describe: Callable[[Any], str]  # section -> its `sweep show` line
    resolve: Callable[[Any, SweepFacts], Any] = _as_is
    rungs: Callable[[Any], list[float]] = _no_rungs
    rung_label: str = ""  # the label of its rung lines on the learning curves
    checkpoint_at_rungs: bool = False  # a trial checkpoints at every rung (PBT's exploit)
    warn: Callable[[Any, Any, list], tuple[str, ...]] = _no_warnings
    mutates_config: bool = False
    checkpoints_kept: int = 1  # Tune's checkpoints kept per trial (PBT clones older ones)
    # its section's values in the smallest sweep: the noop method, `x` searched, `iters`
    # iterations reported each (tests/test_contract_tune_schedulers.py runs every entry so)
    example: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def params(self) -> tuple[str, ...]:
        """The keys of its section."""
        return tuple(f.name for f in dataclasses.fields(self.section))

    def values(self, section: Any) -> dict[str, Any]:
        """Its section as a plain mapping (tuples as lists, as YAML writes them back)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(section).items()}

    def build(self, raw: Mapping[str, Any]) -> Any:
        """Its section from the spec's keys beside `type` (errors name `scheduler.KEY`)."""
        from dipddpm.config import build

        return build(self.section, dict(raw), prefix="scheduler.")


def check_rung_rule(name: str | None) -> None:
    """A section's `rung_rule` names a registered rule (null: the method's default)."""
    from dipddpm.config import check_name
    from dipddpm.sweep.spec.rung_rules import RUNG_RULES

    if name is not None:
        check_name("scheduler.rung_rule", name, RUNG_RULES)


def rule_axis(method: Any, name: str | None, scheduler: str) -> Any:
    """The rung rule a section counts on (null: the method's default), refused when it is
    computed from a key the method does not report."""
    from dipddpm.errors import ConfigError
    from dipddpm.sweep.spec.rung_rules import rule_for

    rule = rule_for(method.name, name)
    if rule.needs is not None and rule.needs not in method.metrics:
        raise ConfigError(f"scheduler.rung_rule: {rule.name!r} counts {scheduler}'s time in "
                          f"the final stage, which {method.name} has no notion of (it reports "
                          f"no {rule.needs}); use rung_rule: total")
    return rule
