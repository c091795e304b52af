"""`tracking: [tensorboard]`: every trial's reported metrics as TensorBoard scalars.

One event folder per trial, `<sweep>/tensorboard/<trial_id>/` (step = iteration), written with
tensorboardX; open them with `tensorboard --logdir <sweep>/tensorboard`. A trial's end adds a
text summary (status, error, final metrics). For a sweep on object storage the events are
written to a local folder and copied into the sweep's `tensorboard/` when the trial ends (one
upload per trial and file, whatever the sweep's length).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dipddpm.tracking.base import TRACKING, SweepContext, Tracker, TrialEnd

FOLDER = "tensorboard"


@dataclass(frozen=True)
class TensorboardOptions:
    # where the event folders go; null: <sweep>/tensorboard (a local copy for remote sweeps)
    logdir: str | None = None
    flush_s: int = 10  # seconds between flushes of a trial's event file to disk


class TensorboardSink:
    def __init__(self, options: TensorboardOptions, ctx: SweepContext) -> None:
        self.options, self.ctx = options, ctx
        self.upload = options.logdir is None and not ctx.local
        if options.logdir is not None:
            self.logdir = options.logdir
        elif ctx.local:
            self.logdir = os.path.join(ctx.sweep_uri, FOLDER)
        else:
            import tempfile

            self.logdir = tempfile.mkdtemp(prefix="dipddpm-tensorboard-")
        self.writers: dict[str, Any] = {}

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> int:
        from tensorboardX import SummaryWriter

        if trial_id not in self.writers:
            self.writers[trial_id] = SummaryWriter(
                logdir=os.path.join(self.logdir, trial_id), flush_secs=self.options.flush_s)
            text = "\n".join(f"    {k}: {v}" for k, v in params.items())
            self.writers[trial_id].add_text("config", text, 0)
        return 0

    def reported(self, trial_id: str, reports: list[tuple[int, dict[str, float]]]) -> None:
        w = self.writers[trial_id]
        for it, metrics in reports:
            for k, v in metrics.items():
                w.add_scalar(k, v, it)

    def checkpointed(self, trial_id: str, it: int, images: Mapping[str, bytes]) -> None:
        """Scalars only (images stay in the sweep's artifacts/)."""

    def trial_ended(self, end: TrialEnd) -> None:
        w = self.writers.pop(end.trial_id, None)
        if w is None:
            return
        lines = [f"    status: {end.status}", f"    iters_done: {end.iters_done}"]
        lines += [f"    error: {end.error}"] if end.error else []
        lines += [f"    {k}: {v}" for k, v in end.summary.items()]
        w.add_text("end", "\n".join(lines), end.iters_done)
        w.close()
        if self.upload:
            self._upload(end.trial_id)

    def _upload(self, trial_id: str) -> None:
        folder = os.path.join(self.logdir, trial_id)
        loc = self.ctx.location()
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                loc.child(FOLDER, trial_id, name).write_bytes(f.read())

    def close(self, verdict: Mapping[str, Any] | None, known: set[str]) -> None:
        for w in self.writers.values():
            w.flush()


TRACKING.register("tensorboard")(Tracker(
    options=TensorboardOptions, open=TensorboardSink, requires=("tensorboardX",),
    help="TensorBoard: scalars per trial in <sweep>/tensorboard (tensorboard --logdir)"))
