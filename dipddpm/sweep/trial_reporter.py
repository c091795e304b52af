"""The report callback a trial's loop calls: from the method's reports to Tune's.

Every report gets `iter` and the trial's `info` block; at most once a second a `tune.report`
carries the reports since the last one (`info.batch`), and at once at ASHA's rung milestones,
at checkpoints (every `checkpoint_every` iterations: the loop's whole state, and the current
output images) and at the end. The last iteration's report is held until the loop returns,
so the final result also carries the summary. See trainable.py for the whole story.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Any

from dipddpm.errors import DipddpmError

STATE_FILE = "state.pt"
# The most often a trial's reports go to Tune: each one pauses the loop for a round trip to the
# driver (measured ~7 ms on 2 CPU cores). Reports in between travel in the next one's
# `info.batch`, so every report still reaches the searcher and the Parquet metrics; ASHA rung
# milestones and checkpoints are always sent at once, so scheduling decisions are unchanged.
REPORT_EVERY_S = 1.0


class InjectedFault(RuntimeError):
    """Raised by the spec's `faults:` (fault injection for testing fault tolerance)."""


def checkpoint_due(it: int, last: int, every: int) -> bool:
    """A checkpoint is due at the first report `every` iterations past the last one (a study's
    sync points follow the same rule: study_run.py)."""
    return it - last >= every


def snapshot_images(loop_state: dict) -> dict[str, Any]:
    """The current output images held in a fitting loop's state (a study's: its first pair's;
    empty for other loops)."""
    if loop_state.get("pairs"):  # a chunked study: every pair's own loop state
        first = loop_state["pairs"][0]
        return snapshot_images(first) if isinstance(first, dict) else {}
    if isinstance(loop_state.get("loop"), dict):  # a fused study
        return snapshot_images(loop_state["loop"])
    out = {}
    for name, key in (("output", "shown"), ("output_sm", "o_sm")):
        img = loop_state.get(key)
        if getattr(img, "ndim", 0) == 4:  # (K,C,H,W): member 0
            out[name] = img[0]
    return out


def _as_text(v: Any) -> str:
    """A method's extra result value as text: JSON where it can be (stage counts), else str."""
    import json

    try:
        return json.dumps(v)
    except TypeError:
        return str(v)


class TrialReporter:
    """Holds a trial's reporting state (what was sent, held back and checkpointed)."""

    def __init__(self, spec, sweep, trial_id: str, info: dict, start: int, retries: int,
                 faults: list, rungs: list[float], rule=None, checkpoint_rungs: bool = False
                 ) -> None:
        from dipddpm.sweep.spec.rung_rules import rule_for

        self.spec, self.sweep, self.trial_id, self.info = spec, sweep, trial_id, info
        # the scheduler's time axis (None: asked of the registries)
        self.rule = rule or rule_for(spec.method, spec.scheduler.rung_rule)
        self.retries, self.faults = retries, faults
        self.last: dict[str, Any] = {"iter": 0, spec.metric: math.nan}
        self.held: list[dict] = []  # the last iteration's result, reported with the summary
        self.last_ckpt = start  # iteration of the last checkpoint
        self.batch: list[dict] = []  # reports not yet sent to Tune (see REPORT_EVERY_S)
        # milestones on the rule's axis not yet sent (a restart has passed those up to its
        # start: when the axis is iterations, they are not sent again)
        self.rungs = [r for r in rungs if self.rule.needs is not None or r > start]
        # the scheduler clones a trial's state at its rungs (PBT): a checkpoint at each
        self.checkpoint_rungs = checkpoint_rungs
        self.time = 0  # the rule's time of the last report
        self.sent = time.monotonic()

    def send(self, result: dict, checkpoint=None) -> None:
        """Report to Tune with the reports held back since the last one; `info` is the
        trial's bookkeeping now unless the result brings its own."""
        from ray import tune

        result["info"] = {**result.get("info", self.info), "batch": list(self.batch)}
        self.batch.clear()
        self.sent = time.monotonic()
        while self.rungs and self.time >= self.rungs[0]:  # ASHA has seen this rung now
            self.rungs.pop(0)
        tune.report(result, checkpoint=checkpoint)

    def _checked(self, it: int, metrics: dict) -> dict:
        m = {k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
             for k, v in metrics.items()}
        for f in self.faults:
            if it >= f.at_iter and f.kind == "raise" and self.retries < f.times:
                raise InjectedFault(f"injected fault at iteration {it} "
                                    f"(attempt {self.retries + 1})")
            if it >= f.at_iter and f.kind == "nan":
                m[self.spec.metric] = math.nan
        metric = self.spec.metric
        if metric not in m:
            raise DipddpmError(f"{self.spec.method} reported no {metric!r} at iteration {it} "
                               f"(keys: {', '.join(m)}); pick a metric it reports")
        value = m[metric]
        if value is None or not math.isfinite(value):
            raise FloatingPointError(f"{metric} is {value} at iteration {it}")
        return m

    def __call__(self, it: int, metrics: dict, state) -> None:
        result = {**self._checked(it, metrics), "iter": it}  # `info` is added when sent
        self.time = self.rule.time(it, result.get("iter_final"))
        if self.rule.time_attr not in result:  # iter_gated: reported for the gated rule
            result[self.rule.time_attr] = float(self.time)
        self.last = dict(result)
        at_rung = bool(self.rungs) and self.time >= self.rungs[0]
        if it >= self.info["budget"]:
            self.held.append(result)
        elif checkpoint_due(it, self.last_ckpt, self.spec.checkpoint_every) or \
                (at_rung and self.checkpoint_rungs):
            self.checkpoint(it, result, state())
        elif at_rung or time.monotonic() - self.sent >= REPORT_EVERY_S:
            self.send(result)
        else:
            self.batch.append(result)

    def checkpoint(self, it: int, result: dict, loop_state: dict) -> None:
        import torch
        from ray import tune

        self.last_ckpt = it
        self.write_images(snapshot_images(loop_state), it, history=True)
        with tempfile.TemporaryDirectory(prefix="dipddpm-ckpt-") as d:
            torch.save({"loop": loop_state, "retries": self.retries, "iter": it,
                        "trial_id": self.trial_id, "cloned_from": self.info.get("cloned_from")},
                       os.path.join(d, STATE_FILE))
            self.send(result, tune.Checkpoint.from_directory(d))

    def write_images(self, images: dict, it: int, history: bool = False) -> dict[str, str]:
        from dipddpm.dataset import artifacts

        arts = {name: artifacts.write_artifact(self.sweep, self.trial_id, name, img)
                for name, img in images.items() if getattr(img, "ndim", 0) == 3}
        if history and "output" in arts:  # kept: the report's outputs over iterations
            artifacts.write_history(self.sweep, self.trial_id, it, images["output"])
        if arts:
            self.info.update(artifacts={**self.info.get("artifacts", {}), **arts},
                             artifact_iter=it)
        return arts

    def fail(self, e: BaseException) -> None:
        """End the trial as FAILED with `info.error` (a rule error: retrying would fail)."""
        error = f"{type(e).__name__}: {e}".splitlines()[0]
        if self.batch and self.batch[-1]["iter"] == self.last.get("iter"):
            self.batch.pop()  # the last finite report is the failed result itself
        self.send({**self.last, "iter": int(self.last.get("iter", 0)),
                   "info": {**self.info, "error": error}})

    def finish(self, summary: dict, extra: dict, **more: Any) -> None:
        """The final result: the held last report with the summary (and `more` info)."""
        final = self.held[-1] if self.held else dict(self.last)
        final["info"] = {**self.info, "summary": dict(summary),
                         "extra": {k: _as_text(v) for k, v in extra.items()}, **more}
        self.send(final)
