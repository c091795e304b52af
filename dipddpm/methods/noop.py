"""A method that does no work, kept for benchmarks of the sweep machinery (driver, Tune, the
Parquet dataset): each iteration only computes a score from the config, so a trial costs
what the runner around it costs and nothing else.

    score(it) = 1 - (x - 0.3)^2 - 1 / (it + 1)      (best at x = 0.3, rising with it)

It reports `score` (and `iter`) every `report_every` iterations; `sleep_s` waits that long per
iteration, to stand for a method whose iterations take time. No image, no net, no problem.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dipddpm.config import check
from dipddpm.methods.base import Report, Result, no_report

METRICS = ("iter", "score")


@dataclass(frozen=True)
class NoopConfig:
    iters: int = 10  # iterations (each one computes a number)
    x: float = 0.5  # the searched parameter; the score is best at x = 0.3
    report_every: int = 1  # report every this many iterations (and at the last)
    sleep_s: float = 0.0  # seconds to wait per iteration (0: none)

    def __post_init__(self) -> None:
        check(self.iters >= 1, f"iters must be >= 1, got {self.iters}")
        check(self.report_every >= 1, f"report_every must be >= 1, got {self.report_every}")
        check(self.sleep_s >= 0, f"sleep_s must be >= 0 seconds, got {self.sleep_s}")


PRESETS = {"tiny": {"iters": 10}}


def score(x: float, it: int) -> float:
    return 1.0 - (x - 0.3) ** 2 - 1.0 / (it + 1)


def no_problem(spec, cfg) -> None:
    """The noop method needs no problem: `problem:` may be {}."""
    return None


def run_noop(cfg: NoopConfig, problem=None, report: Report = no_report, seed: int = 0,
             resume: dict | None = None, device=None) -> Result:
    """Report the score for cfg.iters iterations; `resume` continues from its `it`."""
    start = int((resume or {}).get("it", 0))
    t0 = time.perf_counter()
    best = float("-inf")
    for it in range(start + 1, cfg.iters + 1):
        if cfg.sleep_s:
            time.sleep(cfg.sleep_s)
        value = score(cfg.x, it)
        best = max(best, value)
        if it % cfg.report_every == 0 or it == cfg.iters:
            report(it, {"score": value}, lambda it=it: {"it": it})
    return Result(metrics={"score_best": best, "iters": cfg.iters,
                           "wall_s": time.perf_counter() - t0})
