"""Running a study trial: one configuration on all its (image, replicate) pairs, in lockstep.

The set's report at iteration i needs every pair at iteration i, so the pairs advance together:

- fused: the DIP family (methods whose registry entry has a `plan`) runs the pairs as the
  members of one fused net when the fusion policy says so (methods/fusion.py: on CUDA; on CPU
  where measured faster) and the images share one shape. Every report has all pairs.
- single: a study of one pair runs the method's own loop (its state at every report);
- chunked: any other method, or where fusion loses or would not fit in the free GPU memory,
  runs each pair up to the next sync point
  (the first report at or past `sync_every` iterations on), pauses it there by its own
  checkpoint (`state()`, the contract every method keeps: resume equals uninterrupted), and
  moves to the next pair; when all have reached the sync point their reports are given out
  in order. The trainable's checkpoints fall on those sync points (same rule, same period),
  so the study's state exists exactly where a checkpoint asks for it.

`report(it, metrics, state)` gets the set's metrics (study_set.py) with `pairs`: each pair's
metrics, image and replicate. The state holds every pair's loop and the set's curve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.study_ensemble import ensemble_rows, ensemble_summary
from dipddpm.methods.study_pairs import Pair
from dipddpm.methods.study_set import SetCurve


@dataclass
class StudyResult:
    result: Result  # the set's summary metrics; the first pair's images
    # per pair: image, replicate, ensemble, seed, noise_seed, its summary; then (output:
    # ensemble) a row per image of the mean of its replicates (study_ensemble.py)
    pairs: list[dict[str, Any]]
    images: list[dict[str, Any]]  # per row: its output images
    mode: str  # fused or serial (chunked)


class _Pause(Exception):
    """Raised from a pair's report callback at a sync point: the pair waits there."""


def _no_state() -> dict:
    raise DipddpmError("a study's state exists at its sync points only (every "
                       "checkpoint_every iterations); checkpoint at those iterations")


def _tagged(pairs: list[Pair], metrics: list[dict]) -> list[dict]:
    return [{"image": p.spec.image, "replicate": p.spec.replicate, **m}
            for p, m in zip(pairs, metrics, strict=True)]


def _emitter(pairs: list[Pair], curve: SetCurve, report: Report):
    def emit(it: int, metrics: list[dict], state: Callable[[], dict]) -> None:
        m = curve(it, metrics)
        m["pairs"] = _tagged(pairs, metrics)
        report(it, m, state)
    return emit


def _advance(method, cfg, pair: Pair, resume, until: int, budget: int, device):
    """Run one pair from `resume` to its first report at or past `until` (or its end)."""
    reports: list[tuple[int, dict]] = []
    box: dict[str, dict] = {}

    def report(it, metrics, state):
        reports.append((it, dict(metrics)))
        if until <= it < budget:
            box["state"] = state()
            raise _Pause

    try:
        res = method.run(cfg, pair.problem, report=report, seed=pair.seed, resume=resume,
                         device=device)
    except _Pause:
        return reports, box["state"], None
    return reports, None, res


def _chunked(method, cfg, pairs, emit, resume, device, sync_every, curve) -> list[Result]:
    budget = int(getattr(cfg, method.iters_key))
    states = list(resume["pairs"]) if resume else [None] * len(pairs)
    pos = int(resume["iter"]) if resume else 0
    while True:
        runs = [_advance(method, cfg, p, states[i], pos + sync_every, budget, device)
                for i, p in enumerate(pairs)]
        its = [it for it, _ in runs[0][0]]
        if any([it for it, _ in r[0]] != its for r in runs):
            raise DipddpmError(f"{method.name}: the pairs of a study reported at different "
                               f"iterations; a study needs one report schedule for all pairs")
        states = [r[1] for r in runs]
        done = all(r[2] is not None for r in runs)
        pos = its[-1] if its else pos
        for n, it in enumerate(its):
            at_sync = n == len(its) - 1 and not done
            snap = {"mode": "chunked", "iter": pos, "pairs": states}
            state = (lambda snap=snap: {**snap, "curve": curve.state_dict()}) if at_sync \
                else _no_state
            emit(it, [r[0][n][1] for r in runs], state)
        if done:
            return [r[2] for r in runs]


def _fused_members(method, cfg, pairs: list[Pair], device, mode: str, resuming: bool):
    """The pairs as fusion members, or None where they run chunked: a method without a stage
    plan, one pair, images of different shapes, or where the one fusion decision
    (`fusion.fusion_mode`: the policy, then the GPU memory) says serial. Resuming a fused
    run resumes it fused (or is refused in one line where it no longer fits)."""
    if method.plan is None or len(pairs) < 2 or (mode == "serial" and not resuming):
        return None
    from dipddpm.methods.device import pick_device
    from dipddpm.methods.fitting import Member
    from dipddpm.methods.fusion import fusion_mode

    if len({tuple(p.problem.observed.shape) for p in pairs}) > 1:
        return None  # different image shapes cannot share one fused net
    members = [Member(p.problem, method.plan(cfg, p.problem), p.seed) for p in pairs]
    if fusion_mode(cfg, members, pick_device(device), mode, resuming=resuming) != "fused":
        return None
    return members


def _fused(cfg, members, emit, resume, device, curve) -> list[Result]:
    from dipddpm.methods.fusion import run_fused

    def report(it, metrics, state):
        emit(it, metrics, lambda: {"mode": "fused", "loop": state(),
                                   "curve": curve.state_dict()})

    return run_fused(cfg, members, report, device, resume["loop"] if resume else None)


def _single(method, cfg, pair: Pair, emit, resume, device, curve) -> list[Result]:
    """One pair: the method's own loop, its state at every report (as a plain trial's)."""
    def report(it, metrics, state):
        emit(it, [metrics], lambda: {"mode": "single", "loop": state(),
                                     "curve": curve.state_dict()})

    return [method.run(cfg, pair.problem, report=report, seed=pair.seed,
                       resume=resume["loop"] if resume else None, device=device)]


def run_study(method, cfg, pairs: list[Pair], report: Report = no_report,
              resume: dict | None = None, device=None, sync_every: int = 100,
              mode: str = "auto") -> StudyResult:
    """Fit `cfg` to every pair (see the module docstring); mode auto|fused|serial."""
    curve = SetCurve()
    if resume is not None:
        curve.load_state_dict(resume["curve"])
    emit = _emitter(pairs, curve, report)
    members = None
    if resume is None or resume.get("mode") == "fused":
        members = _fused_members(method, cfg, pairs, device, mode, resuming=resume is not None)
    if members is not None:
        results = _fused(cfg, members, emit, resume, device, curve)
    elif len(pairs) == 1:
        results = _single(method, cfg, pairs[0], emit, resume, device, curve)
    else:
        results = _chunked(method, cfg, pairs, emit, resume, device, sync_every, curve)
    rows = [{"image": p.spec.image, "replicate": p.spec.replicate, "ensemble": False,
             "seed": p.seed, "noise_seed": int(p.spec.problem.get("seed", 0)),
             "height": int(p.problem.observed.shape[-2]),
             "width": int(p.problem.observed.shape[-1]), **r.metrics}
            for p, r in zip(pairs, results, strict=True)]
    ensembles = ensemble_rows(cfg, pairs, results)  # output: ensemble: a row per image
    summary = curve.summary([r.metrics for r in results])
    summary.update(ensemble_summary([row for row, _ in ensembles]))
    first = results[0]
    return StudyResult(Result(summary, dict(first.images), dict(first.extra)),
                       rows + [row for row, _ in ensembles],
                       [r.images for r in results] + [im for _, im in ensembles],
                       "fused" if members is not None else "serial")
