"""The trial scheduler of `dipddpm sweep run`, driven outside a Tune run.

`sweep run` gives Ray Tune the scheduler that the spec's `scheduler:` entry builds
(dipddpm/sweep/tune_schedulers.py), with the spec's metric and mode, and its trainable
reports every result with `iter` and the time attribute of the spec's rung rule
(dipddpm/sweep/spec/rung_rules.py, dipddpm/sweep/trial_reporter.py). `SweepScheduler` builds
that very scheduler object and calls it as Tune's controller does, so a benchmark that fits
in its own process (benchmarks/search.py) or replays recorded curves
(benchmarks/rung_fidelity.py) stops the trials `sweep run` would stop, at the same report:

- `start`: on_trial_add, when a trial starts;
- `result`: on_trial_result for a report, with the trainable's `iter` and rung-rule time;
  True means the scheduler stopped the trial there;
- `end`: on_trial_complete with the trial's last result (stopped or done), or
  on_trial_error (failed).

Ray Tune's scheduler objects need Ray installed, not a running Ray: no cluster starts here.

The trainable sends a result at once when its time reaches an ASHA rung, and the others
batched at most once a second; a result between rungs changes no scheduler state, so feeding
every report gives the same decisions, but for one case: a report whose time jumps past two
rungs at once (the gated rule when the final stage starts) is judged at the higher rung and the
lower rung at the next result the scheduler sees (here the next report; in `sweep run` the next
one sent, which depends on timing there).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any


def tune_result(rule, it: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """A report as the trainable gives it to Tune: the metrics, `iter`, and the rung rule's
    time attribute (computed by the rule when the method does not report it)."""
    result = {**metrics, "iter": it}
    if rule.time_attr not in result:
        result[rule.time_attr] = float(rule.time(it, result.get("iter_final")))
    return result


class SweepScheduler:
    """The scheduler `sweep run` builds for a scheduler section, metric and mode."""

    def __init__(self, section, method: str, metric: str, mode: str) -> None:
        from dipddpm.sweep.spec.rung_rules import rule_for
        from dipddpm.trial_schedulers import make_scheduler

        self.metric = metric
        self.rule = rule_for(method, section.rung_rule)  # as the trial's reporter picks it
        # the entry builds Ray's scheduler from the spec's facts it reads (method, metric)
        self.tune = make_scheduler(SimpleNamespace(scheduler=section, method=method,
                                                   metric=metric, mode=mode))
        self.tune.set_search_properties(metric, mode)
        self.last: dict[str, dict] = {}  # trial id -> its last result

    @classmethod
    def of(cls, spec) -> SweepScheduler:
        """The scheduler of a parsed sweep spec (dipddpm.sweep.spec.load_spec)."""
        return cls(spec.scheduler, spec.method, spec.metric, spec.mode)

    @property
    def time_attr(self) -> str:
        return self.rule.time_attr

    def start(self, trial_id: str) -> None:
        self.tune.on_trial_add(None, SimpleNamespace(trial_id=trial_id))

    def result(self, trial_id: str, it: int, metrics: dict[str, Any]) -> bool:
        """Feed one report; True: the scheduler stops the trial here."""
        from ray.tune.schedulers import TrialScheduler

        result = tune_result(self.rule, it, metrics)
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            raise FloatingPointError(f"{self.metric} is {value} at iteration {it}")
        self.last[trial_id] = result
        action = self.tune.on_trial_result(None, SimpleNamespace(trial_id=trial_id), result)
        if action not in (TrialScheduler.CONTINUE, TrialScheduler.STOP):
            raise NotImplementedError(f"the scheduler answered {action!r}: only schedulers that "
                                      "continue or stop trials can run outside Ray Tune")
        return action == TrialScheduler.STOP

    def end(self, trial_id: str, error: bool = False) -> None:
        """The trial ended: stopped or done, Tune completes it with its last result; failed,
        it tells the scheduler of the error."""
        trial = SimpleNamespace(trial_id=trial_id)
        last = self.last.pop(trial_id, None)
        if error:
            self.tune.on_trial_error(None, trial)
        elif last is None:
            self.tune.on_trial_remove(None, trial)
        else:
            self.tune.on_trial_complete(None, trial, last)

    def replay(self, trial_id: str, reports: list[tuple[int, dict]], budget: int) -> int | None:
        """A whole trial from its reports (iteration, metrics), in order: the iteration the
        scheduler stops it at, or None when it reaches its budget (the report at the budget
        ends the trial whatever the scheduler answers, as in `sweep run`)."""
        self.start(trial_id)
        stop = None
        for it, metrics in reports:
            if self.result(trial_id, it, metrics) and it < budget:
                stop = it
                break
        self.end(trial_id)
        return stop
