"""Optuna samplers by name (a spec's `searcher: {sampler: NAME}`), seeded; no Ray here, so
the Ray-free search benchmark builds its studies with the same samplers as the sweep runner.

Each entry builds its sampler from the seed and the sweep's trial count and names the
optional package it needs (checked before Ray starts); Optuna is imported only when one is
built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dipddpm.registry import Registry
from dipddpm.sweep.spec import SweepSpec


@dataclass(frozen=True)
class Sampler:
    make: Callable[[int, int], Any]  # (seed, num_samples) -> an Optuna sampler
    help: str
    requires: str | None = None  # a package it imports that Optuna does not install


def tpe(seed: int, num_samples: int):
    """TPE with a constant liar (running trials count as bad), a quarter random start."""
    import optuna

    startup = max(2, min(10, num_samples // 4))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def cmaes(seed: int, num_samples: int):
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed)


def gp(seed: int, num_samples: int):
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


def random(seed: int, num_samples: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: Registry[Sampler] = Registry("Optuna sampler")
SAMPLERS.register("tpe")(Sampler(tpe, "TPE, seeded, with a constant liar"))
SAMPLERS.register("cmaes")(Sampler(cmaes, "CMA-ES (needs the cmaes package)", "cmaes"))
SAMPLERS.register("gp")(Sampler(gp, "Gaussian-process Bayesian optimisation"))
SAMPLERS.register("random")(Sampler(random, "independent uniform draws"))


def make_sampler(spec: SweepSpec, trials_before: int = 0):
    """The spec's seeded sampler. A study that already holds `trials_before` trials (a
    resumed sweep) gets the seed shifted by that count: the same seed would replay the
    suggestions the first driver already ran."""
    s = spec.searcher
    return SAMPLERS.get(s.sampler).make(s.seed + trials_before, spec.num_samples)
