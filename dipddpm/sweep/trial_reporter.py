"""The report callback a trial's loop calls: from the method's reports to Tune's.

Every report gets `iter` and the trial's `info` block; at most once a second a `tune.report`
carries the reports since the last one (`info.batch`), and at once at ASHA's rung milestones,
at checkpoints (every `checkpoint_every` iterations: the loop's whole state, and the current
output images) and at the end. The last iteration's report is held until the loop returns,
so the final result also carries the summary. See trainable.py for the whole story.

Off the loop's path. A `tune.report` returns only when the driver has handled the result and
asks the trial for the next one (Tune's function trainables report synchronously): measured
60-90 ms a report on 2 busy cores, 75% of the time a DIP trial spent inside this callback
(benchmarks/tune_overhead.py; the checkpoint's serialisation, PNG encoding and files most of
the rest). So a trial's sends are made by a thread of its own (`Sender`), in order, one at a
time, while the loop goes on:

- a checkpoint: the loop takes the snapshot of its state (`state()`, copies that never alias
  the live tensors), the sender serialises it, writes it, encodes and writes the images and
  only then reports it with `tune.report(checkpoint=...)`, which puts it on the trial's storage
  before the result leaves the worker. A checkpoint reaches Tune only once it is whole on
  storage, and the driver sees results in the loop's order, as before;
- the loop runs ahead by at most one send: before it hands over the next one it waits for the
  previous one to be done (sends are a second apart, so it rarely waits). A trial the scheduler
  stops is stopped at that wait (Tune ends the send with SystemExit; the loop then raises it
  too, which ends the trial quietly): it computes at most up to its next send;
- at an ASHA rung milestone the loop waits for the driver's answer, as it always did: ASHA
  decides there whether the trial goes on;
- the final result, a failure, and any exception leaving the loop first wait for every send
  before it (a crash keeps the checkpoint it had handed over, as a synchronous send would).

An image is encoded once where it is kept twice (the output at a checkpoint: `output.png` and
its copy `iters/output-<iter>.png`).
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
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


class Sender:
    """A trial's sends to Tune, made in order by a thread of its own (the module docstring):
    `submit(job)` hands one over, `wait()` returns once every job handed over is done,
    `check()` raises in the loop what a send met (an error, or Tune's stop)."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.stopped = False  # Tune stopped the trial during a send (SystemExit)
        self.thread = threading.Thread(target=self._run, name="dipddpm-trial-sender",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                if self.error is None and not self.stopped:
                    job()
            except SystemExit:  # Tune's report ends a stopped trial so
                self.stopped = True
            except BaseException as e:  # raised in the loop by its next call (`check`)
                self.error = e
            finally:
                self.jobs.task_done()
        self.jobs.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self.jobs.put(job)

    def wait(self) -> None:
        self.jobs.join()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error
        if self.stopped:
            raise SystemExit(0)

    def close(self) -> None:
        """Let the thread end once the jobs handed over are done."""
        self.jobs.put(None)


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
        self.out = Sender()

    def send(self, result: dict, checkpoint: Callable[[], dict] | None = None,
             wait: bool = False) -> None:
        """Report to Tune, by the sender, with the reports held back since the last one;
        `info` is the trial's bookkeeping now unless the result brings its own.
        `checkpoint`: writes the checkpoint's files (in the sender) and returns its state,
        attached to this report. `wait`: return once Tune has answered."""
        result["info"] = {**result.get("info", self.info), "batch": list(self.batch)}
        self.batch.clear()
        self.sent = time.monotonic()
        at_rung = False
        while self.rungs and self.time >= self.rungs[0]:  # ASHA sees this rung now
            self.rungs.pop(0)
            at_rung = True
        self.out.wait()  # the previous send is done: the loop is at most one send ahead
        self.out.submit(lambda: _report(result, checkpoint))
        if wait or at_rung:
            self.out.wait()

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
        self.out.check()  # a send that failed, or Tune stopped the trial: end the loop here
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
        """Send `result` with a checkpoint of `loop_state` (a snapshot: the loop goes on
        while the sender writes it) and the current output images."""
        self.last_ckpt = it
        images = snapshot_images(loop_state)
        self.note_images(images, it)
        # the trial id tells a PBT clone (another trial's checkpoint) from a retry of its own
        save = {"loop": loop_state, "retries": self.retries, "iter": it,
                "trial_id": self.trial_id, "cloned_from": self.info.get("cloned_from")}

        def files() -> dict:
            self.store_images(images, it, history=True)
            return save

        self.send(result, files)

    def note_images(self, images: dict, it: int) -> dict[str, str]:
        """Name the output images of iteration `it` in the trial's info (their files are
        written by `store_images`)."""
        from dipddpm.dataset import artifacts

        arts = {name: artifacts.artifact_path(self.trial_id, name)
                for name, img in images.items() if getattr(img, "ndim", 0) == 3}
        if arts:
            self.info.update(artifacts={**self.info.get("artifacts", {}), **arts},
                             artifact_iter=it)
        return arts

    def store_images(self, images: dict, it: int, history: bool = False) -> None:
        """Write the output images (each encoded once); `history`: keep a copy of the output
        as `iters/output-<iter>.png` (the report's outputs over iterations)."""
        from dipddpm.dataset import artifacts

        for name, img in images.items():
            if getattr(img, "ndim", 0) != 3:
                continue
            png = artifacts.png_bytes(img)
            artifacts.write_png(self.sweep, self.trial_id, name, png)
            if history and name == "output":
                artifacts.write_png(self.sweep, self.trial_id,
                                    artifacts.history_name(it), png)

    def write_images(self, images: dict, it: int) -> dict[str, str]:
        """The final output images: named in the info and written now."""
        arts = self.note_images(images, it)
        self.store_images(images, it)
        return arts

    def fail(self, e: BaseException) -> None:
        """End the trial as FAILED with `info.error` (a rule error: retrying would fail)."""
        error = f"{type(e).__name__}: {e}".splitlines()[0]
        if self.batch and self.batch[-1]["iter"] == self.last.get("iter"):
            self.batch.pop()  # the last finite report is the failed result itself
        self.send({**self.last, "iter": int(self.last.get("iter", 0)),
                   "info": {**self.info, "error": error}}, wait=True)

    def finish(self, summary: dict, extra: dict, **more: Any) -> None:
        """The final result: the held last report with the summary (and `more` info)."""
        final = self.held[-1] if self.held else dict(self.last)
        final["info"] = {**self.info, "summary": dict(summary),
                         "extra": {k: _as_text(v) for k, v in extra.items()}, **more}
        self.send(final, wait=True)

    def drain(self) -> None:
        """Wait for every send handed over (before an exception leaves the trial)."""
        try:
            self.out.wait()
        finally:
            self.out.close()


def _report(result: dict, checkpoint: Callable[[], dict] | None) -> None:
    """One `tune.report` (in the sender): with a checkpoint, its state is written to a
    temporary folder first, which Tune copies to the trial's storage before the result
    leaves the worker."""
    from ray import tune

    if checkpoint is None:
        tune.report(result)
        return
    import torch

    state = checkpoint()
    with tempfile.TemporaryDirectory(prefix="dipddpm-ckpt-") as d:
        torch.save(state, os.path.join(d, STATE_FILE))
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
