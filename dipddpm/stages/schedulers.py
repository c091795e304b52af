"""Stage schedulers (docs/methods.md): how N fitting iterations split over K stages.

Each is a pure function `(N, K, *, stage_betas, **params) -> counts` with len(counts) == K,
sum(counts) == N, counts[k] >= 0, stage 1 (index 0) the most noisy. `stage_betas` holds
beta_{t_k} per stage; only `exp_weighted` uses it. A scheduler with a per-iteration rule k(i)
is written as that rule and counted, so it matches the source exactly.

Its registry entry (`StageScheduler`) declares its parameters: the keyword, the guided-DIP
config field holding the value, and the smallest valid value. A new parameterised scheduler
is its function, its entry here, and its config field in methods/guided_dip.py.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dipddpm.errors import ConfigError
from dipddpm.registry import Registry

STAGE_SCHEDULERS: Registry = Registry("stage scheduler")


def _count(stage_of_iter: np.ndarray, K: int) -> list[int]:
    """Counts of 1-based stage indices k(i) over i in [0, N)."""
    return np.bincount(stage_of_iter.astype(np.int64) - 1, minlength=K)[:K].tolist()


def uniform(N: int, K: int, *, stage_betas=None) -> list[int]:
    """k(i) = round(1 + (K-1) i/(N-1)): first and last stage get half shares."""
    if K == 1 or N == 1:
        return [N] + [0] * (K - 1)
    i = np.arange(N)
    return _count(np.rint(1 + (K - 1) * i / (N - 1)), K)


def uniform_equal(N: int, K: int, *, stage_betas=None) -> list[int]:
    """k(i) = floor(i K / N) + 1: equal shares."""
    i = np.arange(N)
    return _count(i * K // N + 1, K)


def sharp_linear(N: int, K: int, *, stage_betas=None, x: int = 10) -> list[int]:
    """Every stage but the last gets x iterations; the last gets the rest."""
    if x < 0:
        raise ConfigError(f"sharp_linear x must be >= 0, got {x}")
    if N < (K - 1) * x:
        raise ConfigError(
            f"sharp_linear needs N >= (K-1)*x: N = {N} iterations < ({K}-1)*{x} = {(K - 1) * x}; "
            f"raise the iterations, or lower the stages or x"
        )
    return [x] * (K - 1) + [N - (K - 1) * x]


def log10_linspace(N: int, K: int, *, stage_betas=None) -> list[int]:
    """k(i) = round(log10(L_i)), L = linspace(10, 10^K, N): early stages may get none."""
    L = np.linspace(10.0, 10.0 ** K, N)
    return _count(np.clip(np.rint(np.log10(L)), 1, K), K)


def exp_weighted(N: int, K: int, *, stage_betas=None, c: float = 250.0) -> list[int]:
    """w = softmax(-c beta_{t_k}); n_k = floor(N w_k) for k < K, the last gets the rest."""
    if stage_betas is None or len(stage_betas) != K:
        raise ConfigError("exp_weighted needs beta_{t_k} for each of the K stages")
    logits = -float(c) * np.asarray(stage_betas, dtype=np.float64)
    w = np.exp(logits - logits.max())
    w /= w.sum()
    counts = [int(v) for v in np.floor(N * w[:-1])]
    return counts + [N - sum(counts)]


@dataclass(frozen=True)
class SchedulerParam:
    """A keyword parameter of a scheduler function and the config field that sets it."""

    name: str  # the function's keyword, e.g. "x" (also the short `inspect stages --set` key)
    field: str  # the config field holding it, e.g. "sharp_linear_x"
    low: float  # the smallest valid value (every N and K work with it)
    # the value when the field is None (null): from the whole config; None: pass nothing
    fallback: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class StageScheduler:
    """A registered stage scheduler: its counting function and its declared parameters."""

    fn: Callable[..., list[int]]
    params: tuple[SchedulerParam, ...] = ()
    # config values its source pairs it with (`inspect stages` uses them unless --set)
    pairs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # its formula gives every stage iterations once N >= K (uniform, uniform_equal,
    # sharp_linear with x >= 1), so a config whose split leaves one empty is refused; false
    # where empty early stages are by design (log10_linspace's log spacing, exp_weighted's
    # floor): only N < K is refused there
    fills_every_stage: bool = False

    def __call__(self, N: int, K: int, **kw) -> list[int]:
        return self.fn(N, K, **kw)

    def default(self, param: SchedulerParam) -> Any:
        """The function's own default of a parameter (for help texts)."""
        return inspect.signature(self.fn).parameters[param.name].default

    def values(self, cfg: Any) -> dict[str, Any]:
        """The parameters' values held by a config (keyword -> value)."""
        out = {}
        for p in self.params:
            v = getattr(cfg, p.field)
            if v is None and p.fallback is not None:
                v = p.fallback(cfg)
            if v is not None:
                out[p.name] = v
        return out


# exp_weighted's c when unset, by the config's beta schedule (the guided-DIP report: 250 with
# linear betas), and with any other schedule
EXP_C = {"linear": 250.0}
EXP_C_OTHER = 400.0


def exp_c_fallback(cfg: Any) -> float:
    """exp_weighted's c when unset: EXP_C of the config's beta schedule, else EXP_C_OTHER."""
    return EXP_C.get(cfg.beta_schedule, EXP_C_OTHER)


# registered after definition (not as decorators), so mutation testing reaches them
STAGE_SCHEDULERS.register("uniform")(StageScheduler(uniform, fills_every_stage=True))
STAGE_SCHEDULERS.register("uniform_equal")(StageScheduler(uniform_equal, fills_every_stage=True))
STAGE_SCHEDULERS.register("sharp_linear")(StageScheduler(
    sharp_linear, (SchedulerParam("x", "sharp_linear_x", low=0),), fills_every_stage=True))
STAGE_SCHEDULERS.register("log10_linspace")(StageScheduler(log10_linspace))
STAGE_SCHEDULERS.register("exp_weighted")(StageScheduler(
    exp_weighted, (SchedulerParam("c", "exp_c", low=0.0, fallback=exp_c_fallback),),
    pairs={"beta_schedule": "linear"}))  # the guided-DIP source's pairing


def stage_counts(name: str, N: int, K: int, *, stage_betas=None, **params) -> list[int]:
    """Validated counts for scheduler `name`; bad N, K or params give a ConfigError."""
    if int(N) != N or N < 1:
        raise ConfigError(f"iterations must be a positive integer, got {N!r}")
    if int(K) != K or K < 1:
        raise ConfigError(f"stages must be a positive integer, got {K!r}")
    fn = STAGE_SCHEDULERS.get(name)
    try:
        counts = fn(int(N), int(K), stage_betas=stage_betas, **params)
    except TypeError as e:
        raise ConfigError(f"stage scheduler {name!r}: {e}") from None
    assert len(counts) == K and sum(counts) == N and min(counts) >= 0, (name, counts)
    return [int(c) for c in counts]


def check_every_stage(name: str, counts: list[int]) -> None:
    """A config's split must give each stage iterations: K stages in N < K iterations leave
    some with none under every scheduler, and a scheduler that does not leave stages empty
    by design must not leave one empty (sharp_linear with x = 0)."""
    N, K = sum(counts), len(counts)
    if N < K:
        raise ConfigError(f"stages: {K} stages in {N} iterations leave at least one stage with "
                          f"none; raise iters to >= {K} or lower stages to <= {N}")
    empty = [k for k, n in enumerate(counts, 1) if n == 0]
    if empty and STAGE_SCHEDULERS.get(name).fills_every_stage:
        raise ConfigError(f"stages: the {name} scheduler gives stage {empty[0]} of {K} no "
                          f"iterations ({N} iterations split {counts}); raise iters, lower "
                          f"stages, or pick a scheduler's parameter that fills every stage")


def stage_of_iteration(counts: list[int]) -> np.ndarray:
    """(N,) 0-based stage index of every iteration, from the counts."""
    return np.repeat(np.arange(len(counts)), counts)
