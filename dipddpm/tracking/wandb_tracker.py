"""`tracking: [wandb]`: a Weights & Biases run per trial, grouped by sweep.

Each trial is a run (name and id from the trial id, `group` the sweep's name, `job_type`
trial) with its config as `config` (as its trials row holds it) and every report logged at its
iteration (`step`); its end sets the summary (status, error, final metrics) and finishes the
run (exit code 1 for a failed trial).

`mode: auto` (default) is online only where an API key is configured (`WANDB_API_KEY`, or a
`wandb login` entry in ~/.netrc) and `WANDB_MODE` is not set; otherwise offline
(`WANDB_MODE=offline`): runs are written to `<dir>/wandb/offline-run-*` and `wandb sync`
uploads them later, so a cluster without internet still records. `dir` defaults to the sweep
folder (a local cache folder for a sweep on object storage).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dipddpm.tracking.base import TRACKING, SweepContext, Tracker, TrialEnd

API_HOST = "api.wandb.ai"


@dataclass(frozen=True)
class WandbOptions:
    project: str = "dipddpm"  # the W&B project; runs are grouped by the sweep's name
    entity: str | None = None  # team or user; null: the API key's default
    # online | offline | auto (online only with an API key and no WANDB_MODE set)
    mode: Literal["auto", "online", "offline"] = "auto"
    dir: str | None = None  # where run folders go; null: the sweep folder (local sweeps)


def has_api_key() -> bool:
    """WANDB_API_KEY, or a ~/.netrc entry `wandb login` wrote; read locally, no request."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    try:
        return netrc.netrc().authenticators(API_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def run_mode(options: WandbOptions) -> str:
    if options.mode != "auto":
        return options.mode
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    return "online" if has_api_key() else "offline"


def run_dir(options: WandbOptions, ctx: SweepContext) -> str:
    if options.dir is not None:
        return options.dir
    if ctx.local:
        return os.path.abspath(ctx.sweep_uri)
    cache = os.path.join(os.path.expanduser("~"), ".cache", "dipddpm", "wandb")
    return os.path.join(cache, re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.sweep_uri))


class WandbSink:
    def __init__(self, options: WandbOptions, ctx: SweepContext) -> None:
        self.options, self.ctx = options, ctx
        self.mode, self.dir = run_mode(options), run_dir(options, ctx)
        os.makedirs(self.dir, exist_ok=True)
        self.runs: dict[str, Any] = {}

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> int:
        import wandb

        if trial_id in self.runs:
            return 0
        spec = self.ctx.spec
        self.runs[trial_id] = wandb.init(
            project=self.options.project, entity=self.options.entity, group=spec.name,
            job_type="trial", name=trial_id, id=f"{spec.name}-{trial_id}"[:128],
            config=dict(params), dir=self.dir, mode=self.mode, resume="allow",
            reinit="create_new", tags=[spec.method],
            settings=wandb.Settings(silent=True, console="off", save_code=False,
                                    disable_git=True, x_disable_stats=True,
                                    x_save_requirements=False))
        return 0

    def reported(self, trial_id: str, reports: list[tuple[int, dict[str, float]]]) -> None:
        run = self.runs[trial_id]
        for it, metrics in reports:
            run.log(dict(metrics), step=it)

    def checkpointed(self, trial_id: str, it: int, images: Mapping[str, bytes]) -> None:
        """Metrics only (images stay in the sweep's artifacts/)."""

    def trial_ended(self, end: TrialEnd) -> None:
        run = self.runs.pop(end.trial_id, None)
        if run is None:
            return
        run.summary.update({"status": end.status, "iters_done": end.iters_done,
                            **({"error": end.error} if end.error else {}),
                            **dict(end.summary)})
        run.finish(exit_code=1 if end.status == "FAILED" else 0)

    def close(self, verdict: Mapping[str, Any] | None, known: set[str]) -> None:
        for run in self.runs.values():
            run.finish()
        self.runs.clear()


TRACKING.register("wandb")(Tracker(
    options=WandbOptions, open=WandbSink, requires=("wandb",),
    help="Weights & Biases: a run per trial, grouped by sweep (offline without an API key)"))
