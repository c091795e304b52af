"""Search domains -> an Optuna define-by-run function, or a Ray Tune param space (grid searcher).

    uniform [lo, hi]     suggest_float(lo, hi)            tune.uniform(lo, hi)
    loguniform [lo, hi]  suggest_float(lo, hi, log=True)  tune.loguniform(lo, hi)
    int [lo, hi], step   suggest_int(lo, hi, step)        tune.choice([lo, lo+step, ..., <= hi])
    int [lo, hi], log    suggest_int(lo, hi, log=True)    tune.lograndint(lo, hi + 1)
    choice [a, b, ...]   suggest_categorical              tune.choice
    grid [a, b, ...]     (not with Optuna)                tune.grid_search

A domain with `when: {key: value}` is sampled only when the earlier key took that value
(define-by-run), so `exp_c` exists only in trials whose scheduler is exp_weighted.
Optuna's categorical values must be scalars: lists/tuples travel as JSON strings and are decoded
back by `decode`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dipddpm.sweep.spec.schema import Domain

SCALARS = (str, int, float, bool, type(None))


def _encode(v: Any) -> Any:
    return v if isinstance(v, SCALARS) else json.dumps(list(v))


def decode(domains: tuple[Domain, ...], params: Mapping[str, Any]) -> dict[str, Any]:
    """Undo `_encode` for choice values that were lists/tuples; keeps only active keys."""
    out: dict[str, Any] = {}
    for d in domains:
        if d.key not in params or not d.active(out):
            continue
        v = params[d.key]
        if d.kind in ("choice", "grid") and isinstance(v, str):
            for orig in d.values:
                if not isinstance(orig, SCALARS) and _encode(orig) == v:
                    v = orig
        out[d.key] = v
    return out


def suggest(trial: Any, d: Domain) -> Any:
    """One Optuna suggestion for domain `d` on an optuna.Trial."""
    if d.kind == "uniform":
        return trial.suggest_float(d.key, d.low, d.high)
    if d.kind == "loguniform":
        return trial.suggest_float(d.key, d.low, d.high, log=True)
    if d.kind == "int":
        return trial.suggest_int(d.key, d.low, d.high, step=d.step, log=d.log)
    if d.kind == "choice":
        return trial.suggest_categorical(d.key, [_encode(v) for v in d.values])
    raise ValueError(f"{d.kind} domains are not sampled by Optuna (key {d.key!r})")


def define_by_run(domains: tuple[Domain, ...]):
    """The Optuna define-by-run function of the spec's search space."""

    def space(trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for d in domains:
            if d.active(params):
                params[d.key] = suggest(trial, d)
        return params

    return space


def distributions(domains: tuple[Domain, ...]) -> dict[str, Any]:
    """Optuna distributions of every domain (conditional ones included), e.g. for the docs."""
    import optuna.distributions as od

    out: dict[str, Any] = {}
    for d in domains:
        if d.kind in ("uniform", "loguniform"):
            out[d.key] = od.FloatDistribution(d.low, d.high, log=d.kind == "loguniform")
        elif d.kind == "int":
            out[d.key] = od.IntDistribution(d.low, d.high, step=d.step, log=d.log)
        elif d.kind == "choice":
            out[d.key] = od.CategoricalDistribution([_encode(v) for v in d.values])
    return out


def tune_space(domains: tuple[Domain, ...]) -> dict[str, Any]:
    """A Ray Tune param space for the grid/random variant generator (no conditions)."""
    from ray import tune

    out: dict[str, Any] = {}
    for d in domains:
        if d.kind == "uniform":
            out[d.key] = tune.uniform(d.low, d.high)
        elif d.kind == "loguniform":
            out[d.key] = tune.loguniform(d.low, d.high)
        elif d.kind == "int" and d.log:
            out[d.key] = tune.lograndint(d.low, d.high + 1)  # Tune's upper bound is exclusive
        elif d.kind == "int":  # the values Optuna would take: lo + k*step, bounds inclusive
            out[d.key] = tune.choice(list(range(d.low, d.high + 1, d.step)))
        elif d.kind == "choice":
            out[d.key] = tune.choice(list(d.values))
        else:
            out[d.key] = tune.grid_search(list(d.values))
    return out


def grid_size(domains: tuple[Domain, ...]) -> int:
    n = 1
    for d in domains:
        if d.kind == "grid":
            n *= len(d.values)
    return n
