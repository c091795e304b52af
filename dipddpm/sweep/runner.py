"""Run or resume a sweep: spec -> Tuner(trainable, OptunaSearch-like searcher, ASHA) -> Parquet.

    run_sweep("sweeps/quick.yaml")           validate everything, then start Ray and run
    resume_sweep("results/quick")            continue a sweep whose driver died

Order of a run: validate the spec, resolve and check the storage, refuse an existing sweep
directory holding a different spec; only then start Ray, (on a cluster) check that every node
reaches the storage, write spec.resolved.yaml and the problem images, and run the Tuner.
Ray Tune's own files live in `<sweep dir>/tune/` (experiment state, trial checkpoints).
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from dipddpm.errors import DipddpmError
from dipddpm.sweep.console import SweepConsole
from dipddpm.sweep.spec import SweepSpec, load_spec, parse_spec
from dipddpm.sweep.storage import Location, check_writable, resolve
from dipddpm.sweep.study import STUDY_FILE, storage_url

SPEC_FILE = "spec.resolved.yaml"
TUNE_DIR = "tune"


@dataclass
class SweepOutcome:
    path: str  # the sweep directory (local path or URI)
    rows: list[dict]  # the trials table
    spec: SweepSpec


def resolved_yaml(spec: SweepSpec) -> str:
    return yaml.safe_dump(spec.resolved_dict(), sort_keys=False)


def same_spec(stored_text: str, spec: SweepSpec) -> bool:
    """Whether a stored spec.resolved.yaml is this spec (where it is stored aside)."""
    stored = yaml.safe_load(stored_text) or {}
    new = yaml.safe_load(resolved_yaml(spec))  # both as YAML reads them
    where = ("storage", "storage_options")  # where a sweep is stored is not what it runs
    return ({k: v for k, v in stored.items() if k not in where}
            == {k: v for k, v in new.items() if k not in where})


def provenance() -> dict[str, str]:
    import optuna
    import ray
    import torch

    import dipddpm

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(dipddpm.__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {"dipddpm_version": dipddpm.__version__, "torch_version": torch.__version__,
            "ray_version": ray.__version__, "optuna_version": optuna.__version__,
            "git_sha": sha or "unknown", "python_version": platform.python_version()}


def check_sampler(spec: SweepSpec) -> None:
    """The spec's Optuna sampler can be built here: the package it needs is installed."""
    import importlib

    from dipddpm.sweep.samplers import SAMPLERS

    if spec.searcher.type != "optuna":
        return
    name = spec.searcher.sampler
    needs = SAMPLERS.get(name).requires
    if needs is None:
        return
    try:
        importlib.import_module(needs)
    except ImportError:
        raise DipddpmError(f"searcher.sampler {name} needs the `{needs}` package: pip install "
                           f"{needs}, or use sampler: tpe") from None


def prepare(spec: SweepSpec, resume: bool = False) -> Location:
    """Check storage and an existing sweep dir; writes nothing. Returns the sweep dir."""
    check_sampler(spec)
    storage = resolve(spec.storage, spec.storage_options)
    check_writable(storage)
    sweep = storage.child(spec.name)
    spec_file = sweep.child(SPEC_FILE)
    if spec_file.exists() and not resume and not same_spec(spec_file.read_text(), spec):
        raise DipddpmError(
            f"{sweep.uri} already holds sweep {spec.name!r} with a different spec; continue "
            f"it with `dipddpm sweep resume {sweep.uri}` (or run --resume), or pick another "
            f"name:/--storage")
    return sweep


def optuna_db(sweep: Location) -> tuple[str, callable]:
    """The local SQLite path of the study, and a function publishing it to the sweep dir
    (a no-op when the sweep dir is local: the study is written in place)."""
    if sweep.local:
        return os.path.join(sweep.path, STUDY_FILE), lambda: None
    cache = Path.home() / ".cache" / "dipddpm" / sweep.path.strip("/").replace("/", "_")
    cache.mkdir(parents=True, exist_ok=True)
    local = cache / STUDY_FILE
    remote = sweep.child(STUDY_FILE)
    if remote.exists():  # the published study is the truth; a cached copy may be stale
        with remote.fs.open_input_stream(remote.path) as f:
            local.write_bytes(f.read())
    return str(local), lambda: remote.write_bytes(local.read_bytes())


def write_problem_images(spec: SweepSpec, sweep: Location) -> None:
    """artifacts/problem/clean.png and noisy.png (a study: its first pair's, and every pair's
    under problem/pairs/)."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import build_pairs, is_study
    from dipddpm.sweep.results import png_bytes

    method = METHODS.get(spec.method)
    cfg = build(method.config_cls, spec.base_values)
    pairs = build_pairs(method, dict(spec.problem), cfg, spec.seed)
    study = is_study(spec.problem)
    for i, pair in enumerate(pairs):
        for name, attr in (("clean", "clean"), ("noisy", "observed")):
            img = getattr(pair.problem, attr, None)
            if img is None or getattr(img, "ndim", 0) != 3:
                continue
            if i == 0:
                sweep.child("artifacts", "problem", f"{name}.png").write_bytes(png_bytes(img))
            if study:
                sweep.child("artifacts", "problem", "pairs",
                            f"{i:03d}-r{pair.spec.replicate}-{name}.png").write_bytes(
                    png_bytes(img))


def tune_storage(loc: Location) -> dict:
    """Where Tune keeps its files: the path on our own filesystem for remote storage (the
    spec's endpoint and one-PUT writes apply to Tune's uploads too), the plain path locally."""
    if loc.local:
        return {"storage_path": loc.uri}
    return {"storage_path": loc.path, "storage_filesystem": loc.fs}


def restore_tuner(spec: SweepSpec, tune_path: Location, trainable, ctx):
    """Tune's Tuner.restore of the sweep, its saved state repaired first (None when there is
    none yet): every unfinished trial's checkpoint whole, the search counter matching the
    trial list, and the trials it restores told to the searcher (`ctx.restored`)."""
    from ray import tune

    from dipddpm.sweep.checkpoints import (
        align_search_counter,
        repair_missing_checkpoints,
        saved_trials,
    )

    where = tune_storage(tune_path)
    path, fs = where["storage_path"], where.get("storage_filesystem")
    if not tune.Tuner.can_restore(path, storage_filesystem=fs):
        return None
    trials = saved_trials(path, fs)
    ctx.restored = {t.trial_id: t.status for t in trials}
    if spec.searcher.type == "optuna":
        align_search_counter(path, fs or tune_path.fs, len(trials))
    for tid in repair_missing_checkpoints(path, fs, trials):
        ctx.console.line(f"trial {tid}: the saved state names a checkpoint already replaced; "
                         f"it resumes from the one after it")
    return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                              restart_errored=False, storage_filesystem=fs)


def build_tuner(spec: SweepSpec, sweep: Location, console: SweepConsole, restore: bool):
    from ray import tune

    from dipddpm.sweep.driver import DriverContext, set_current
    from dipddpm.sweep.recorder import Recorder
    from dipddpm.sweep.search import TruthfulOptunaSearch
    from dipddpm.sweep.space import tune_space
    from dipddpm.sweep.trainable import make_trainable
    from dipddpm.sweep.tune_schedulers import make_scheduler

    trainable = make_trainable(spec, sweep.uri)
    tune_path = sweep.child(TUNE_DIR)
    publish = lambda: None  # noqa: E731
    db = None
    if spec.searcher.type == "optuna":
        db, publish = optuna_db(sweep)
        searcher, space = TruthfulOptunaSearch(spec, db), {}
    else:
        from ray.tune.search import BasicVariantGenerator

        searcher = BasicVariantGenerator(random_state=spec.searcher.seed,
                                         max_concurrent=spec.searcher.max_concurrent)
        space = tune_space(spec.search)
    prov = provenance()
    # a restored Tuner unpickles the first driver's recorder and searcher: they take these
    ctx = DriverContext(console=console, provenance=prov, optuna_db=db, publish=publish)
    set_current(ctx)
    if restore:
        return restore_tuner(spec, tune_path, trainable, ctx), publish
    if spec.searcher.type == "optuna":
        searcher.close_orphans()  # a fresh start on an existing study: nothing is running
    scheduler = make_scheduler(spec.scheduler, spec.method)
    recorder = Recorder(spec, sweep.uri, prov, console, on_trial_end=publish)
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=spec.num_samples, max_concurrent_trials=spec.searcher.max_concurrent,
            time_budget_s=spec.time_budget_s, reuse_actors=True),
        run_config=tune.RunConfig(
            name=TUNE_DIR, **tune_storage(sweep), verbose=0, callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), log_to_file=True))
    return tuner, publish


def tune_trial_ids(grid) -> set[str] | None:
    """Ids of every trial in Tune's experiment (None if this Ray version hides them)."""
    try:
        return {t.trial_id for t in grid._experiment_analysis.trials}
    except AttributeError:
        return None


def check_cluster_storage(sweep: Location, console: SweepConsole, options=None) -> None:
    """The one call site of the multi-node storage check (dipddpm.sweep.cluster, issue 5)."""
    try:
        from dipddpm.sweep.cluster import check_storage_on_all_nodes
    except ImportError:
        console.line("[yellow]note[/]: storage reachability check of every node is not "
                     "available in this build; make sure all nodes see the storage")
        return
    check_storage_on_all_nodes(sweep.uri, options=options)


def execute(spec: SweepSpec, sweep: Location, address: str | None, console: SweepConsole,
            restore: bool, dashboard: bool = False) -> SweepOutcome:
    from dipddpm.sweep.baselines import run_baselines
    from dipddpm.sweep.feasibility import check_cluster
    from dipddpm.sweep.lifecycle import mark_running
    from dipddpm.sweep.local_ray import ray_session, set_state_period
    from dipddpm.sweep.results import drop_unknown_trials, harmonize, read_trials

    set_state_period(remote=not sweep.local)
    with ray_session(address, dashboard) as on_cluster:
        check_cluster(spec, console)  # a trial no node can hold: one error, before any trial
        if on_cluster:  # every node must reach the storage before trials start
            check_cluster_storage(sweep, console, spec.storage_options)
        sweep.makedirs()
        mark_running(sweep)
        if not sweep.child(SPEC_FILE).exists():
            sweep.child(SPEC_FILE).write_text(resolved_yaml(spec))
            write_problem_images(spec, sweep)
        run_baselines(spec, sweep, console)  # on the study's observations, once
        tuner, publish = build_tuner(spec, sweep, console, restore)
        if tuner is None:  # nothing restorable yet: the driver died before Tune saved state
            tuner, publish = build_tuner(spec, sweep, console, restore=False)
        where = "cluster " + address if address else "embedded local Ray (127.0.0.1 only)"
        console.line(f"sweep [bold]{spec.name}[/]: {spec.method}, {spec.num_samples} trials, "
                     f"searcher {spec.searcher.type}"
                     + (f"/{spec.searcher.sampler}" if spec.searcher.type == "optuna" else "")
                     + f", scheduler {spec.scheduler.type} on {where}")
        if spec.searcher.type == "optuna" and sweep.local:
            db = storage_url(f"{sweep.path}/{STUDY_FILE}")
            console.line(f"study: optuna-dashboard {db}")
        elif spec.searcher.type == "optuna":
            console.line(f"study: {sweep.uri}/{STUDY_FILE} (published as trials are asked, "
                         f"checkpoint and end; copy it, then optuna-dashboard sqlite:///...)")
        grid = tuner.fit()
        known = tune_trial_ids(grid)
        if known is not None:
            dropped = drop_unknown_trials(sweep, known)
            if dropped:
                console.line(f"removed {len(dropped)} trial(s) started after Tune's last "
                             f"saved state before the driver stopped: {', '.join(dropped)}")
        harmonize(sweep)  # a driver killed while adding a new column to the files left some
        publish()
        end_of_sweep(spec, sweep, grid, console)
    rows = read_trials(sweep)
    params = [d.key for d in spec.search]
    console.final(rows, params, sweep.uri, spec.summary_by, active=row_active(spec))
    return SweepOutcome(path=sweep.uri, rows=rows, spec=spec)


def finished_ids(grid) -> set[str] | None:
    """Ids of the trials Tune finished (TERMINATED or ERROR); None if this Ray hides them."""
    try:
        trials = grid._experiment_analysis.trials
    except AttributeError:
        return None
    return {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}


def end_of_sweep(spec: SweepSpec, sweep: Location, grid, console: SweepConsole) -> None:
    """When every trial is finished (not a Tuner stopped by Ctrl-C): compact the Parquet files
    (spec `compact:`, local storage) and mark the sweep ended (`lifecycle.driver_state`)."""
    from dipddpm.sweep.compaction import compact
    from dipddpm.sweep.lifecycle import mark_ended

    done, known = finished_ids(grid), tune_trial_ids(grid)
    if done is None or known is None or done != known:
        return  # trials left to run: `sweep resume` continues, and ends the sweep
    if spec.compact and sweep.local:
        c = compact(sweep.path, finished=done, known=True, force=True)
        if c.changed:
            console.line(f"compacted {c.files_before['trials'] + c.files_before['metrics']} "
                         f"Parquet files into {c.files_after['trials'] + c.files_after['metrics']}")
    mark_ended(sweep)


def row_active(spec: SweepSpec):
    """(trials row, key) -> whether the searched key applied to that trial (conditions)."""

    def active(row: dict, key: str) -> bool:
        d = spec.domain(key)
        return d is None or d.active({k: row.get(f"config.{k}") for k, _ in d.when})

    return active


def run_sweep(spec_path: str | Path, smoke: bool = False, storage: str | None = None,
              address: str | None = None, num_samples: int | None = None,
              sets: list[str] | None = None, resume: bool = False, dashboard: bool = False,
              console: SweepConsole | None = None) -> SweepOutcome:
    spec = load_spec(spec_path, smoke=smoke, sets=sets, num_samples=num_samples,
                     storage=storage)
    return run_spec(spec, address=address, resume=resume, dashboard=dashboard, console=console)


def run_spec(spec: SweepSpec, address: str | None = None, resume: bool = False,
             dashboard: bool = False, console: SweepConsole | None = None) -> SweepOutcome:
    """`run_sweep` for a spec already loaded (and validated) by `load_spec`."""
    sweep = prepare(spec, resume=resume)
    if resume and sweep.child(SPEC_FILE).exists():
        return resume_sweep(sweep.uri, address=address, console=console)
    console = console or SweepConsole(spec.metric, spec.mode)
    return execute(spec, sweep, address, console, restore=sweep.child(TUNE_DIR).exists(),
                   dashboard=dashboard)


def load_sweep_spec(sweep_dir: str, load_problem: bool = True) -> tuple[SweepSpec, Location]:
    """The spec a sweep ran with, read from its directory (storage = the directory's parent);
    `load_problem` false: without loading the problem (see `parse_spec`)."""
    sweep = resolve(sweep_dir)
    spec_file = sweep.child(SPEC_FILE)
    if not spec_file.exists():
        raise DipddpmError(f"{sweep.uri} is not a sweep directory (no {SPEC_FILE}); give "
                           f"<storage>/<sweep name> as written by `dipddpm sweep run`")
    raw = yaml.safe_load(spec_file.read_text())
    parent = sweep.uri.rstrip("/").rsplit("/", 1)[0] if "/" in sweep.uri else "."
    raw = {**raw, "storage": parent, "name": sweep.uri.rstrip("/").rsplit("/", 1)[-1]}
    spec = parse_spec(raw, load_problem=load_problem)
    if spec.storage_options:  # the sweep's own endpoint and region from now on
        sweep = resolve(sweep.uri, spec.storage_options)
    return spec, sweep


def resume_sweep(sweep_dir: str, address: str | None = None,
                 console: SweepConsole | None = None) -> SweepOutcome:
    """Continue a sweep whose driver stopped: Tune restores its trials (running ones from their
    last checkpoints), the searcher reloads the same Optuna study; no trial is lost or run
    twice, and rows already written are rewritten in place, never duplicated."""
    spec, sweep = load_sweep_spec(sweep_dir)
    console = console or SweepConsole(spec.metric, spec.mode)
    console.line(f"resuming {sweep.uri}")
    return execute(spec, sweep, address, console, restore=True)
