"""What one trial of a spec costs, before it runs: its memory and its time.

Memory: the fused-fit estimate of `methods/fusion.py` (weights, Adam's moments, the saved
activations, the loop's images) at the base config (preset + `fixed:`; a searched key such as
width changes it) for the trial's members (a study's image x replicate pairs); methods
outside the fitting loop are not estimated.

Time: measured, not modelled. The base config's method runs here on the spec's first
problem for a few iterations, reporting each one; the seconds per iteration are the slope
between the reports (every iteration paying a report's metrics, which a trial pays every
report_every: an upper bound), the set-up the rest. A trial's time is
set-up + its largest iteration budget x s/it x members (members one after another: fused runs
are faster), so an upper bound for trials ASHA stops early; the sweep's is that times the
trials, over the trials running at once. On a machine unlike the cluster's nodes the numbers
are this machine's, and say so.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from dipddpm.errors import DipddpmError

GPU_GIB = (24, 80, 141)  # common GPU memory sizes the fraction a trial needs is shown for
TIMED_ITERS = 2  # iterations timed after the first report (the first pays the warm-up)


def gpu_fraction(mib: float, gib: int) -> float | None:
    """The resources.gpu a trial of this memory needs on a GPU of `gib` GiB (rounded up to a
    twentieth, with 10% headroom); None when one GPU is too small."""
    need = mib * 1.1 / (gib * 1024)
    return None if need > 1 else max(0.05, math.ceil(need * 20) / 20)


def first_problem(spec, cfg) -> Any:
    """The first (image, replicate) pair's problem, built (its image read); DipddpmError or
    OSError when its data is absent."""
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import pair_specs

    specs = pair_specs(spec.problem, spec.seed)
    return METHODS.get(spec.method).make_problem(specs[0].problem, cfg)


def members(spec) -> int:
    from dipddpm.methods.study_pairs import pair_specs

    try:
        return max(1, len(pair_specs(spec.problem, spec.seed)))
    except DipddpmError:  # show works without the images; validate reports them
        return 1


def trial_memory_bytes(spec) -> int | None:
    """The estimated memory of one trial at the base config (None: not estimated: a method
    outside the fitting loop, or its data absent)."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.methods.fusion import estimate_bytes

    method = METHODS.get(spec.method)
    if method.plan is None:
        return None
    cfg = build(method.config_cls, spec.base_values)
    try:
        C, H, W = first_problem(spec, cfg).observed.shape
    except (DipddpmError, OSError):
        return None
    return estimate_bytes(cfg, C, H, W, members(spec))


def trial_footprint(spec) -> dict:
    """Members per trial and the memory estimate, with the GPU fraction it needs per size."""
    out = {"members_per_trial": members(spec), "memory_per_trial_mib": None}
    need = trial_memory_bytes(spec)
    if need is None:
        return out
    mib = need / 2**20
    return {**out, "memory_per_trial_mib": round(mib, 1),
            "gpu_fraction_per_trial": {f"{g} GiB": gpu_fraction(mib, g) for g in GPU_GIB}}


class _Timed(Exception):
    """Raised by the timing report to stop the run once it has what it needs."""


def seconds_per_iteration(method, cfg, problem, device: str) -> tuple[float, float]:
    """(set-up seconds, seconds per iteration) of `cfg` on `problem`, measured over
    TIMED_ITERS iterations after the first report (which pays the warm-up)."""
    if "report_every" in {f.name for f in dataclasses.fields(cfg)}:
        cfg = dataclasses.replace(cfg, report_every=1)
    marks: list[tuple[int, float]] = []

    def report(it, metrics, state) -> None:
        marks.append((it, time.perf_counter()))
        if it - marks[0][0] >= TIMED_ITERS:
            raise _Timed

    start = time.perf_counter()
    try:
        method.run(cfg, problem, report=report, seed=0, device=device)
    except _Timed:
        pass
    end = marks[-1][1] if marks else time.perf_counter()
    if len(marks) < 2:  # the whole run fit before a second report: its time is all there is
        return end - start, 0.0
    (i0, t0), (i1, t1) = marks[0], marks[-1]
    per_it = (t1 - t0) / (i1 - i0)
    return max(t0 - start - i0 * per_it, 0.0), per_it


def time_estimate(spec) -> dict:
    """Seconds per trial and for the sweep, measured on this machine (see the module
    docstring); {"why": ...} when it cannot be measured here."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.sweep.spec.validate import max_budget

    method = METHODS.get(spec.method)
    cfg = build(method.config_cls, spec.base_values)
    device = "cuda" if spec.resources.gpu > 0 and _cuda() else "cpu"
    try:
        problem = first_problem(spec, cfg)
        too_big = _too_big_here(method, cfg, problem, device)
        if too_big:
            return {"why": f"not measured: {too_big}"}
        setup, per_it = seconds_per_iteration(method, cfg, problem, device)
    except (DipddpmError, OSError) as e:
        return {"why": f"not measured: {' '.join(str(e).split())[:120]}"}
    budget = max_budget(spec.search, cfg, method.iters_key)
    trial = setup + budget * per_it * members(spec)
    at_once = max(1, min(spec.searcher.max_concurrent, spec.trials))
    sweep = trial * math.ceil(spec.trials / at_once)
    if spec.time_budget_s is not None:
        sweep = min(sweep, spec.time_budget_s)
    return {"device": device, "setup_s": round(setup, 3), "s_per_iter": round(per_it, 5),
            "iters_per_trial": budget, "trial_s": round(trial, 1), "sweep_s": round(sweep, 1),
            "at_once": at_once}


def _too_big_here(method, cfg, problem, device: str) -> str | None:
    """Why one member would not fit half of this machine's memory (never run it then)."""
    from dipddpm.cluster.feasibility import ram_bytes
    from dipddpm.methods.fusion import estimate_bytes

    if method.plan is None:
        return None
    need = estimate_bytes(cfg, *problem.observed.shape, 1)
    if device == "cuda":
        import torch

        have, where = torch.cuda.get_device_properties(0).total_memory, "GPU memory"
    else:
        have, where = ram_bytes(), "RAM"
    if need <= have / 2:
        return None
    return (f"one fit needs about {need / 2**30:.1f} GiB, more than half of this machine's "
            f"{have / 2**30:.1f} GiB of {where}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
