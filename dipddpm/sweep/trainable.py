"""The one Ray Tune trainable: a thin adapter from any registered method to Tune.

It builds the trial's config (`preset` + `fixed:` + the searcher's params) and problem, then
calls the method's own loop with a report callback that

- forwards every report to Tune with `iter` (ASHA's time attribute, in iterations) and an
  `info` block (iteration budget, restarts, host) for the searcher and the recorder; at most
  once a second a `tune.report` carries the reports since the last one (`info.batch`), and
  at once at ASHA's rung milestones, checkpoints and the end;
- checks that the first report carries the spec's metric (ASHA silently ignores results
  without it) and that the metric is finite;
- every `checkpoint_every` iterations attaches a Tune checkpoint holding the loop's whole state
  (weights, optimizer, RNG, loop variables), so `FailureConfig(max_failures)` restarts a
  crashed trial from there; checkpoints are loaded with `torch.load(weights_only=True)`;
- holds back the report of the last iteration until the loop returns, so the final result also
  carries the method's summary metrics and the paths of the output images it wrote.

A trial whose metric goes non-finite, or whose config or problem breaks a rule only visible at
run time (a `DipddpmError`), ends with `info.error` set: retrying it would fail again, so it is
recorded as FAILED without burning Tune's retries. Any other exception goes to Tune, which
retries from the last checkpoint up to `max_failures` times.

Ray Tune starts each trial in its own log folder; the trial moves back to the folder the worker
started in (the job's working directory on a cluster, the driver's on the embedded Ray), so
relative paths in a spec (`problem.image`, `checkpoint`, `data_root`) mean what they mean on the
command line. Each checkpoint also writes the current output images, so a trial the scheduler
stops still has a picture (`artifact_iter` says from which iteration), and keeps a copy of the
output as `iters/output-<iter>.png` (the report's outputs over iterations).
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from dipddpm.sweep.spec import SweepSpec

STATE_FILE = "state.pt"
# The most often a trial's reports go to Tune: each one pauses the loop for a round trip to the
# driver (measured ~7 ms on 2 CPU cores). Reports in between travel in the next one's
# `info.batch`, so every report still reaches the searcher and the Parquet metrics; ASHA rung
# milestones and checkpoints are always sent at once, so scheduling decisions are unchanged.
REPORT_EVERY_S = 1.0


def milestones(spec: SweepSpec) -> list[float]:
    """The iterations at which ASHA looks at a trial (its rungs, every bracket)."""
    s = spec.scheduler
    if s.type != "asha":
        return []
    out = set()
    for b in range(s.brackets):
        rungs = int(math.log(s.max_t / s.grace_period) / math.log(s.reduction_factor) - b + 1)
        out.update(s.grace_period * s.reduction_factor ** (k + b) for k in range(rungs))
    return sorted(out)


class InjectedFault(RuntimeError):
    """Raised by the spec's `faults:` (fault injection for testing fault tolerance)."""


def host_info(device) -> dict[str, Any]:
    import ray
    import torch

    cuda = device.type == "cuda"
    gpu = torch.cuda.get_device_name(device) if cuda else None
    # the UUID tells two GPUs of the same model apart (trials packed on one GPU share it)
    uuid = str(torch.cuda.get_device_properties(device).uuid) if cuda else None
    return {"node_ip": ray.util.get_node_ip_address(), "hostname": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(), "gpu": gpu, "gpu_uuid": uuid}


def back_to_working_dir() -> None:
    """Undo Tune's change into the trial folder (see the module docstring)."""
    orig = os.environ.get("TUNE_ORIG_WORKING_DIR")
    if orig and os.path.isdir(orig):
        os.chdir(orig)


def snapshot_images(loop_state: dict) -> dict[str, Any]:
    """The current output images held in a fitting loop's state (empty for other loops)."""
    out = {}
    for name, key in (("output", "shown"), ("output_sm", "o_sm")):
        img = loop_state.get(key)
        if getattr(img, "ndim", 0) == 4:  # (1,C,H,W)
            out[name] = img[0]
    return out


def config_values(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """What a trial's config is built from: preset, then fixed:, then its (decoded) params
    (trial keys such as `seed` are not config fields)."""
    from dipddpm.sweep.spec import TRIAL_KEYS

    return {**spec.base_values, **{k: v for k, v in params.items() if k not in TRIAL_KEYS}}


def trial_config(spec: SweepSpec, params: dict[str, Any]):
    """The method config of a trial (see `config_values`)."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    return build(METHODS.get(spec.method).config_cls, config_values(spec, params))


def run_trial(spec: SweepSpec, sweep_uri: str, config: dict[str, Any]) -> None:
    """Body of the Tune function trainable for one trial."""
    import torch
    from ray import tune

    from dipddpm.errors import DipddpmError
    from dipddpm.methods import METHODS
    from dipddpm.sweep import results
    from dipddpm.sweep.devices import trial_device
    from dipddpm.sweep.space import decode
    from dipddpm.sweep.storage import resolve

    back_to_working_dir()
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    device = trial_device(spec.resources.gpu)
    trial_id = tune.get_context().get_trial_id()
    method = METHODS.get(spec.method)
    params = decode(spec.search, config)
    sweep = resolve(sweep_uri, spec.storage_options)

    resume, retries, start = None, 0, 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:  # a restart (crash or driver resume) continues from here
        with ckpt.as_directory() as d:
            saved = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
        resume, retries, start = saved["loop"], int(saved["retries"]) + 1, int(saved["iter"])
    faults = [f for f in spec.faults if f.matches(params)]
    info: dict[str, Any] = {"budget": None, "retries": retries, "resumed_from": start,
                            **host_info(device)}
    last: dict[str, Any] = {"iter": 0, spec.metric: math.nan}
    held: list[dict] = []  # the last iteration's result, reported with the summary
    last_ckpt = [start]  # iteration of the last checkpoint
    batch: list[dict] = []  # reports not yet sent to Tune (see REPORT_EVERY_S)
    rungs = [m for m in milestones(spec) if m > start]
    sent = [time.monotonic()]

    def send(result: dict, checkpoint=None) -> None:
        """Report to Tune with the reports held back since the last one; `info` is the
        trial's bookkeeping now unless the result brings its own."""
        result["info"] = {**result.get("info", info), "batch": list(batch)}
        batch.clear()
        sent[0] = time.monotonic()
        while rungs and result["iter"] >= rungs[0]:  # ASHA has seen this rung now
            rungs.pop(0)
        tune.report(result, checkpoint=checkpoint)

    def report(it: int, metrics: dict, state) -> None:
        m = {k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
             for k, v in metrics.items()}
        for f in faults:
            if it >= f.at_iter and f.kind == "raise" and retries < f.times:
                raise InjectedFault(f"injected fault at iteration {it} (attempt {retries + 1})")
            if it >= f.at_iter and f.kind == "nan":
                m[spec.metric] = math.nan
        if spec.metric not in m:
            raise DipddpmError(f"{spec.method} reported no {spec.metric!r} at iteration {it} "
                               f"(keys: {', '.join(m)}); pick a metric it reports")
        value = m[spec.metric]
        if value is None or not math.isfinite(value):
            raise FloatingPointError(f"{spec.metric} is {value} at iteration {it}")
        result = {**m, "iter": it}  # `info` is added when it is sent
        last.clear()
        last.update(result)
        if it >= info["budget"]:
            held.append(result)
            return
        if it - last_ckpt[0] >= spec.checkpoint_every:
            last_ckpt[0] = it
            loop_state = state()
            write_images(snapshot_images(loop_state), it, history=True)
            with tempfile.TemporaryDirectory(prefix="dipddpm-ckpt-") as d:
                torch.save({"loop": loop_state, "retries": retries, "iter": it},
                           os.path.join(d, STATE_FILE))
                send(result, tune.Checkpoint.from_directory(d))
        elif (rungs and it >= rungs[0]) or time.monotonic() - sent[0] >= REPORT_EVERY_S:
            send(result)
        else:
            batch.append(result)

    def write_images(images: dict, it: int, history: bool = False) -> None:
        arts = {name: results.write_artifact(sweep, trial_id, name, img)
                for name, img in images.items() if getattr(img, "ndim", 0) == 3}
        if history and "output" in arts:  # kept: the report's outputs over iterations
            results.write_history(sweep, trial_id, it, images["output"])
        if arts:
            info.update(artifacts=arts, artifact_iter=it)

    try:  # a config or problem that breaks a rule fails the same way on every retry
        cfg = trial_config(spec, params)
        info["budget"] = int(getattr(cfg, method.iters_key))
        problem = method.make_problem(dict(spec.problem), cfg)
        res = method.run(cfg, problem, report=report, seed=spec.trial_seed(params),
                         resume=resume, device=device)
    except (FloatingPointError, DipddpmError) as e:
        error = f"{type(e).__name__}: {e}".splitlines()[0]
        if batch and batch[-1]["iter"] == last.get("iter"):
            batch.pop()  # the last finite report is the failed result itself
        send({**last, "iter": int(last.get("iter", 0)), "info": {**info, "error": error}})
        return
    write_images(res.images, info["budget"])  # output, output_sm; samples for ddpm
    final = held[-1] if held else dict(last)
    final["info"] = {**info, "summary": dict(res.metrics),
                     "extra": {k: str(v) for k, v in res.extra.items()}}
    send(final)


def make_trainable(spec: SweepSpec, sweep_uri: str):
    """A Tune trainable (with the spec's resources) running `run_trial` for every trial."""
    from ray import tune

    def dipddpm_trial(config: dict) -> None:
        run_trial(spec, sweep_uri, config)

    res = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(dipddpm_trial, res)
