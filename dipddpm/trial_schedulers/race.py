"""Racing over a study's pairs (F-race, Birattari et al., GECCO 2002; SMAC's intensification,
Hutter et al., LION 2011): a study trial fits its (image, replicate) pairs `block` at a time,
and after each block its per-pair values are compared, paired, with the incumbent's on the
same pairs. A trial the test finds worse is stopped (PRUNED, `stopped_by: raced`); the others
go on to the next block, so the incumbent and every survivor end with every pair and their
verdicts stay paired and complete.

The test: a one-sided paired t-test (scipy.stats.ttest_rel, H1: the challenger is worse than
the incumbent on the pairs both have), Holm's step-down correction over the trials still
racing at that moment, at `alpha`. Why a paired t-test and not F-race's Friedman test or a
Wilcoxon signed-rank test: a study has few pairs (6 in sweeps/study_guided_vs_dip.yaml), and a
rank test on n pairs cannot reach p < 2^-n one-sided (Wilcoxon: 0.031 at n = 5), so it could
only stop a trial after its last block, saving nothing; the t-test uses the size of the paired
differences and can decide after 2 pairs when they are large and consistent. Friedman's test
also needs every configuration on the same blocks at the same time, which Tune's asynchronous
trials do not give.

A configuration matching `keep` (e.g. `keep: {stages: 1}`, plain DIP: the study's reference)
is never stopped, so every survivor's verdict against it stays paired over every pair: raced
out after 2 pairs, a reference would leave a verdict on 2 pairs whose CI says far more than the
full study does (measured: benchmarks/results/racing*.json).

The incumbent: the trial not stopped with the best mean over the pairs all trials not stopped
have (trials run concurrently, so one may be ahead of another by blocks); a challenger is
tested against it on every pair the two share. The decision is made in the driver
(race_tune.py: a Tune scheduler sees every trial's results), so trials in different Ray
workers share one incumbent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dipddpm.config import check
from dipddpm.errors import ConfigError, closest
from dipddpm.trial_schedulers.entry import SweepFacts


@dataclass(frozen=True)
class RaceSection:
    block: int = 2  # pairs a trial fits before each test (the last block may be smaller)
    alpha: float = 0.05  # the one-sided test's level, Holm-corrected over the racing trials
    # searched values whose configurations are never raced out (the study's reference)
    keep: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check(self.keep is None or (isinstance(self.keep, Mapping) and bool(self.keep)),
              f"scheduler.keep must map searched keys to values, e.g. keep: {{stages: 1}}; "
              f"got {self.keep!r}")
        check(self.block >= 1, f"scheduler.block must be >= 1 pair, got {self.block}")
        check(0 < self.alpha < 1, f"scheduler.alpha must be in (0, 1), got {self.alpha}; "
                                  f"e.g. alpha: 0.05")


def resolve(s: RaceSection, facts: SweepFacts) -> RaceSection:
    """Racing needs a study of at least two pairs, and a block no larger than the pairs; `keep`
    names values of the search space that some configuration has."""
    check_keep(s.keep or {}, facts.search)
    if facts.pairs is None:  # the problem breaks a rule: said when it is built
        return s
    if facts.pairs < 2:
        raise ConfigError("scheduler: race compares trials over a study's (image, replicate) "
                          "pairs, and this problem has 1 pair per trial: nothing to race; give "
                          "problem.images: [...] or problem.replicates: >= 2, or use "
                          "scheduler: {type: none}")
    if s.block > facts.pairs:
        raise ConfigError(f"scheduler.block ({s.block}) > the study's {facts.pairs} pairs per "
                          f"trial; use block: 1 to {facts.pairs}")
    return s


def check_keep(keep: Mapping[str, Any], search: tuple) -> None:
    """Each kept key is searched, its value is one the domain gives, and it is active where
    the other kept values hold (a `when:` they do not meet would keep nothing)."""
    searched = {d.key: d for d in search}
    for key, value in keep.items():
        d = searched.get(key)
        if d is None:
            raise ConfigError(f"scheduler.keep.{key}: not a searched key"
                              f"{closest(key, list(searched))}; keep names searched values "
                              f"(searched: {', '.join(searched) or 'none'})")
        if d.values and value not in d.values:
            raise ConfigError(f"scheduler.keep.{key}: {value!r} is not one of its values; use "
                              f"one of {list(d.values)}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not d.values and not (number and d.low <= value <= d.high):
            raise ConfigError(f"scheduler.keep.{key}: {value!r} is outside its range; use a "
                              f"value in [{d.low}, {d.high}]")
        if not d.active(keep):
            raise ConfigError(f"scheduler.keep.{key} is searched only when "
                              f"{dict((k, list(v)) for k, v in d.when)}, which keep does not "
                              f"give; add those keys to keep")


def make(s: RaceSection, spec: Any):
    from dipddpm.trial_schedulers.race_tune import RaceScheduler

    return RaceScheduler(RaceBook(alpha=s.alpha, maximize=spec.mode == "max"),
                         keeps=lambda config: kept(s, spec, config))


def kept(s: RaceSection, spec: Any, config: Mapping[str, Any]) -> bool:
    """Whether a trial's Tune config is one `keep` protects."""
    from dipddpm.sweep.spec.space import decode

    params = decode(spec.search, config)
    return bool(s.keep) and all(params.get(k) == v for k, v in s.keep.items())


def describe(s: RaceSection) -> str:
    keep = ", never " + ", ".join(f"{k}={v}" for k, v in s.keep.items()) if s.keep else ""
    return (f"racing over pairs, {s.block} a block, paired t-test at alpha {s.alpha:g} "
            f"(Holm){keep}")


def pair_block(s: RaceSection) -> int:
    return s.block


def p_worse(challenger: list[float], incumbent: list[float], maximize: bool) -> float:
    """One-sided paired t-test p-value of H1 "the challenger is worse" on the pairs both
    have (the first n of each: every trial fits its pairs in the same order). 1 where fewer
    than 2 pairs are shared or the differences have no spread and no sign against it."""
    from scipy.stats import ttest_rel

    n = min(len(challenger), len(incumbent))
    if n < 2:
        return 1.0
    p = ttest_rel(challenger[:n], incumbent[:n],
                  alternative="less" if maximize else "greater").pvalue
    return 1.0 if math.isnan(p) else float(p)


def holm(pvalues: dict[str, float], alpha: float) -> set[str]:
    """Holm's step-down procedure: the keys whose null is rejected at family-wise `alpha`."""
    out: set[str] = set()
    ranked = sorted(pvalues.items(), key=lambda kv: kv[1])
    for i, (key, p) in enumerate(ranked):
        if p > alpha / (len(ranked) - i):
            break
        out.add(key)
    return out


@dataclass
class RaceBook:
    """The race's state: every trial's per-pair values so far, the full count of pairs, and
    which trials were stopped. Pure Python (the replay in benchmarks/racing.py drives it too)."""

    alpha: float
    maximize: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)  # never stopped (RaceSection.keep)

    def add(self, trial: str, values: list[float], total: int) -> None:
        self.values[trial], self.total[trial] = [float(v) for v in values], int(total)

    def _mean(self, trial: str, n: int) -> float:
        v = self.values[trial][:n]
        return math.fsum(v) / len(v) * (1 if self.maximize else -1)

    def incumbent(self) -> str | None:
        """The trial not stopped with the best mean over the pairs every such trial has (the
        first n: all fit their pairs in one order); ties: the one with more pairs."""
        alive = [t for t in self.values if t not in self.stopped and self.values[t]]
        if not alive:
            return None
        n = min(len(self.values[t]) for t in alive)
        return max(alive, key=lambda t: (self._mean(t, n), len(self.values[t])))

    def racing(self) -> list[str]:
        """Trials neither stopped nor through all their pairs."""
        return [t for t in self.values
                if t not in self.stopped and len(self.values[t]) < self.total[t]]

    def decide(self, trial: str) -> bool:
        """True when `trial` loses to the incumbent now (it is then marked stopped)."""
        inc = self.incumbent()
        if inc is None or inc == trial or trial in self.stopped:
            return False
        family = {t: p_worse(self.values[t], self.values[inc], self.maximize)
                  for t in self.racing() if t != inc and t not in self.kept}
        if trial not in family:  # through all its pairs (it ran to the end), or kept
            return False
        if trial in holm(family, self.alpha):
            self.stopped.add(trial)
            return True
        return False

