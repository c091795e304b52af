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
output as `iters/output-<iter>.png` (the report's outputs over iterations). Reports, checkpoint
files and images are sent by a thread of the trial's own while its loop goes on
(trial_reporter.py: a checkpoint reaches Tune only once it is whole on storage).

A study trial (`problem.images:` and/or `problem.replicates:`, methods/study_pairs.py) fits its
configuration to every (image, replicate) pair in lockstep (methods/study_run.py): its reports
are the set's (means over the pairs; psnr_best the best of the mean curve) with each pair's
metrics in `pairs`, its checkpoints hold every pair, and its final result carries a row per pair
(`info.pairs`: the Parquet `pairs/` table) and each pair's output image.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dipddpm.sweep.spec import SweepSpec
from dipddpm.sweep.trial_reporter import (  # noqa: F401  (their home before the split)
    REPORT_EVERY_S,
    STATE_FILE,
    InjectedFault,
    TrialReporter,
    snapshot_images,
)


@dataclass(frozen=True)
class TrialParts:
    """What a trial needs of the registries, asked on the driver and handed to the trial's
    process with the trainable: that process looks nothing up by name, so an entry the
    driver has (one a plug-in or a test registered) is the one the trial uses."""

    method: Any  # the method's entry (methods/base.py Method)
    rule: Any  # the rung rule the scheduler counts on (sweep/spec/rung_rules.py)
    rungs: tuple[float, ...]  # where the scheduler judges a trial (its entry's rungs)
    checkpoint_at_rungs: bool  # it clones checkpoints taken there (PBT)
    backend: Any  # the storage backend of the sweep dir (dataset/storage_backends.py)
    plugins: tuple = ()  # entries registered outside dipddpm, pickled (sweep/plugins.py)

    @classmethod
    def of(cls, spec: SweepSpec, sweep_uri: str) -> TrialParts:
        from dipddpm.dataset.storage_backends import backend_for
        from dipddpm.methods import METHODS
        from dipddpm.sweep import plugins
        from dipddpm.sweep.spec.rung_rules import rule_for

        return cls(METHODS.get(spec.method), rule_for(spec.method, spec.scheduler.rung_rule),
                   tuple(milestones(spec)), spec.scheduler.entry.checkpoint_at_rungs,
                   backend_for(sweep_uri), plugins.pack())


def milestones(spec: SweepSpec) -> list[float]:
    """The iterations at which the spec's Tune scheduler judges a trial (its entry's rungs:
    ASHA's rungs, every bracket; PBT's perturbation points; none without early stopping)."""
    return spec.scheduler.entry.rungs(spec.scheduler.options)


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
    import os

    orig = os.environ.get("TUNE_ORIG_WORKING_DIR")
    if orig and os.path.isdir(orig):
        os.chdir(orig)


def config_values(spec: SweepSpec, params: dict[str, Any], method: Any = None
                  ) -> dict[str, Any]:
    """What a trial's config is built from: preset, then fixed:, then its (decoded) params
    (trial keys such as `seed` are not config fields). `method`: its entry (None: asked of
    the registry)."""
    from dipddpm.sweep.spec import TRIAL_KEYS

    base = spec.base_values if method is None else {**method.preset_values(spec.preset),
                                                    **spec.fixed}
    return {**base, **{k: v for k, v in params.items() if k not in TRIAL_KEYS}}


def trial_config(spec: SweepSpec, params: dict[str, Any], method: Any = None):
    """The method config of a trial (see `config_values`)."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    method = METHODS.get(spec.method) if method is None else method
    return build(method.config_cls, config_values(spec, params, method))


def _restart_point(trial_id: str) -> tuple[dict | None, int, int, str | None]:
    """(loop state, retries, iteration, the trial it was cloned from) of the checkpoint Tune
    restarts the trial from. Another trial's checkpoint is a clone (PBT's exploit: that
    trial's state under this trial's new config), not a retry of this one."""
    import torch
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None, 0, 0, None
    with ckpt.as_directory() as d:  # a restart (crash or driver resume) continues from here
        saved = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
    donor = saved.get("trial_id", trial_id)
    if donor != trial_id:
        return saved["loop"], 0, int(saved["iter"]), donor
    return saved["loop"], int(saved["retries"]) + 1, int(saved["iter"]), saved.get("cloned_from")


def run_trial(spec: SweepSpec, sweep_uri: str, config: dict[str, Any],
              parts: TrialParts | None = None) -> None:
    """Body of the Tune function trainable for one trial (`parts`: the entries it uses;
    None: asked of the registries here)."""
    import torch
    from ray import tune

    from dipddpm.cluster.devices import trial_device
    from dipddpm.dataset.storage import resolve
    from dipddpm.errors import DipddpmError
    from dipddpm.sweep import plugins
    from dipddpm.sweep.spec.space import decode

    parts = parts or TrialParts.of(spec, sweep_uri)
    for line in plugins.unpack(parts.plugins):  # a net, schedule, ... the driver registered
        print(f"warning: {line}", file=sys.stderr, flush=True)
    back_to_working_dir()
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    device = trial_device(spec.resources.gpu)
    params = decode(spec.search, config)
    trial_id = tune.get_context().get_trial_id()
    resume, retries, start, cloned_from = _restart_point(trial_id)
    info: dict[str, Any] = {"budget": None, "retries": retries, "resumed_from": start,
                            **host_info(device)}
    if cloned_from is not None:  # PBT: this trial runs another's state, its config changed
        info["cloned_from"] = cloned_from
    sweep = resolve(sweep_uri, spec.storage_options, backend=parts.backend)
    reporter = TrialReporter(spec, sweep, trial_id, info, start, retries,
                             [f for f in spec.faults if f.matches(params)], list(parts.rungs),
                             rule=parts.rule, checkpoint_rungs=parts.checkpoint_at_rungs)
    try:  # a config or problem that breaks a rule fails the same way on every retry
        _run(spec, params, reporter, resume, device, parts.method)
    except (FloatingPointError, DipddpmError) as e:
        reporter.fail(e)
    except BaseException:  # a crash (or Tune's stop): the sends before it are made first
        reporter.drain()
        raise
    finally:
        reporter.out.close()


def _run(spec: SweepSpec, params: dict[str, Any], reporter: TrialReporter, resume, device,
         method: Any):
    """Build the trial's config and problem, run the method's loop (a study: every pair),
    write the output images and send the final result."""
    from dipddpm.methods.study_pairs import build_pairs, is_study

    cfg = trial_config(spec, params, method)
    reporter.info["budget"] = int(getattr(cfg, method.iters_key))
    seed = spec.trial_seed(params)
    if not is_study(spec.problem):
        problem = method.make_problem(dict(spec.problem), cfg)
        res = method.run(cfg, problem, report=reporter, seed=seed, resume=resume,
                         device=device)
        reporter.write_images(res.images, reporter.info["budget"])  # output, output_sm
        reporter.finish(res.metrics, res.extra)
        return
    from dipddpm.methods.study_run import run_study

    pairs = build_pairs(method, dict(spec.problem), cfg, seed)
    block = spec.scheduler.entry.pair_block(spec.scheduler.options)
    if block is not None:  # racing over pairs: a block at a time, judged after each
        return _run_raced(spec, method, cfg, pairs, block, reporter, device)
    study = run_study(method, cfg, pairs, report=reporter, resume=resume, device=device,
                      sync_every=spec.checkpoint_every)
    from dipddpm.dataset import artifacts

    reporter.write_images(study.result.images, reporter.info["budget"])
    for i, (row, images) in enumerate(zip(study.pairs, study.images, strict=True)):
        name = f"pairs/{i:03d}-r{row['replicate']}-output"  # every pair's own output
        row["artifact_output"] = (artifacts.write_artifact(reporter.sweep, reporter.trial_id,
                                                         name, images["output"])
                                  if "output" in images else None)
    reporter.finish(study.result.metrics, study.result.extra, pairs=study.pairs,
                    fusion=study.mode)


def _pair_images(reporter: TrialReporter, rows: list[dict], images: list[dict],
                 first: int) -> None:
    """Each pair's own output (pairs/NNN-rR-output), NNN its place among the trial's pairs."""
    from dipddpm.dataset import artifacts

    for i, (row, im) in enumerate(zip(rows, images, strict=True), start=first):
        name = f"pairs/{i:03d}-r{row['replicate']}-output"
        row["artifact_output"] = (artifacts.write_artifact(reporter.sweep, reporter.trial_id,
                                                         name, im["output"])
                                  if "output" in im else None)


def _run_raced(spec: SweepSpec, method, cfg, pairs, block: int, reporter: TrialReporter,
               device) -> None:
    """A study raced over its pairs (trial_schedulers/race.py, methods/study_race.py): after
    each block one Tune result with the set over the pairs done (its curve in `info.batch`,
    every pair's in `pairs`), `info.race` (each pair's metric, in pair order, and the count)
    and `info.pairs` (their rows: a trial stopped here keeps them). The race scheduler may
    stop the trial at that result; the last block's result is the trial's final one."""
    from dipddpm.methods.study_race import run_blocks

    def on_block(done) -> None:
        new = done.results[-1]
        if len(done.results) == 1:
            reporter.write_images(new.result.images, reporter.info["budget"])
        _pair_images(reporter, new.pairs, new.images, done.done - len(new.pairs))
        reports, curve = done.set_reports()
        last = reporter._checked(reports[-1]["iter"], reports[-1])
        race = {"values": [float(p[spec.metric]) for p in last["pairs"]], "done": done.done,
                "of": done.total}
        reporter.batch = [dict(r) for r in reports[:-1]]
        reporter.info["race"] = race
        if done.done < done.total:
            # wait for Tune's answer, as at an ASHA rung: the race scheduler may stop the
            # trial here, before it fits another block
            reporter.send({**last, "info": {**reporter.info, "pairs": done.rows}}, wait=True)
            return
        reporter.last, reporter.held = last, []
        reporter.finish(done.summary(curve), new.result.extra, pairs=done.rows,
                        fusion=new.mode)

    run_blocks(method, cfg, pairs, block, on_block, device=device,
               sync_every=spec.checkpoint_every)


def make_trainable(spec: SweepSpec, sweep_uri: str):
    """A Tune trainable (with the spec's resources) running `run_trial` for every trial."""
    from ray import tune

    parts = TrialParts.of(spec, sweep_uri)  # asked here, on the driver

    def dipddpm_trial(config: dict) -> None:
        run_trial(spec, sweep_uri, config, parts)

    res = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(dipddpm_trial, res)
