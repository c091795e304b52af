"""Run or resume a sweep: spec -> Tuner(trainable, OptunaSearch-like searcher, ASHA) -> Parquet.

    run_sweep("sweeps/quick.yaml")           validate everything, then start Ray and run
    resume_sweep("results/quick")            continue a sweep whose driver died

Order of a run: validate the spec, resolve and check the storage, refuse an existing sweep
directory holding a different spec; take the sweep's driver lock (dataset/lock.py) and decide,
from what the directory holds, whether Tune starts afresh, restores its saved state or has
nothing to do (sweep/continuation.py: nothing lost or doubled); check the free space
(sweep/disk_space.py); only then start Ray, (on a cluster) check that every node reaches the
storage, write spec.resolved.yaml and the problem images, and run the Tuner.
Ray Tune's own files live in `<sweep dir>/tune/` (experiment state, trial checkpoints).
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dipddpm.dataset.storage import Location, check_writable, resolve
from dipddpm.errors import DipddpmError, first_line
from dipddpm.sweep.console import SweepConsole
from dipddpm.sweep.continuation import FINISHED, TUNE_DIR, Plan, Start
from dipddpm.sweep.optuna_searcher import (  # noqa: F401  (their home before sweep/searchers.py)
    check_sampler,
    optuna_db,
)
from dipddpm.sweep.spec import SweepSpec, load_spec, parse_spec

SPEC_FILE = "spec.resolved.yaml"


@dataclass
class SweepOutcome:
    path: str  # the sweep directory (local path or URI)
    rows: list[dict]  # the trials table
    spec: SweepSpec
    finished: bool = False  # it was finished already: nothing ran, nothing changed
    dropped: list[str] = field(default_factory=list)  # paths deleted (--drop-orphans)


def resolved_yaml(spec: SweepSpec) -> str:
    return yaml.safe_dump(spec.resolved_dict(), sort_keys=False)


def same_spec(stored_text: str, spec: SweepSpec) -> bool:
    """Whether a stored spec.resolved.yaml is this spec (where it is stored aside)."""
    stored = legacy_sections(yaml.safe_load(stored_text) or {})
    new = yaml.safe_load(resolved_yaml(spec))  # both as YAML reads them
    # where a sweep is stored, and where else it is recorded, is not what it runs
    where = ("storage", "storage_options", "tracking")
    return ({k: v for k, v in stored.items() if k not in where}
            == {k: v for k, v in new.items() if k not in where})


def legacy_sections(raw: dict) -> dict:
    """A spec.resolved.yaml as this version writes it: one written before each Tune scheduler
    had its own section holds ASHA's keys under every scheduler type; the keys the named
    scheduler's section does not have are dropped (they never applied to it)."""
    from dipddpm.trial_schedulers import TUNE_SCHEDULERS

    section = raw.get("scheduler")
    if not isinstance(section, dict) or section.get("type", "asha") not in TUNE_SCHEDULERS:
        return raw
    entry = TUNE_SCHEDULERS.get(section.get("type", "asha"))
    own = ("type", *entry.params)
    every = {p for _, e in TUNE_SCHEDULERS.items() for p in e.params}
    kept = {k: v for k, v in section.items() if k in own or k not in every}
    # a key the section gained since (race's keep): its default, as this version writes it
    added = {f.name: f.default for f in dataclasses.fields(entry.section)
             if f.name not in kept and f.default is not dataclasses.MISSING}
    return {**raw, "scheduler": {**kept, **added}}


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


def prepare(spec: SweepSpec, resume: bool = False) -> Location:
    """Check storage and an existing sweep dir; writes nothing. Returns the sweep dir."""
    from dipddpm.sweep.searchers import searcher_of

    searcher_of(spec).check(spec)
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


def write_problem_images(spec: SweepSpec, sweep: Location) -> None:
    """artifacts/problem/clean.png and noisy.png (a study: its first pair's, and every pair's
    under problem/pairs/)."""
    from dipddpm.config import build
    from dipddpm.dataset.artifacts import png_bytes
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import is_study, startup_pairs

    method = METHODS.get(spec.method)
    cfg = build(method.config_cls, spec.base_values)
    pairs = startup_pairs(method, dict(spec.problem), cfg, spec.seed)
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

    from dipddpm.sweep.checkpoints import repair_missing_checkpoints, saved_trials

    where = tune_storage(tune_path)
    path, fs = where["storage_path"], where.get("storage_filesystem")
    if not tune.Tuner.can_restore(path, storage_filesystem=fs):  # the plan read it: gone since
        raise DipddpmError(f"{tune_path.uri}: Tune's saved state vanished while the driver "
                           f"started (another program removed it); see `dipddpm sweep status`")
    from dipddpm.sweep.searchers import searcher_of

    trials = saved_trials(path, fs)
    ctx.restored = {t.trial_id: t.status for t in trials}
    searcher_of(spec).restored(path, fs or tune_path.fs, len(trials))
    for tid in repair_missing_checkpoints(path, fs, trials):
        ctx.console.line(f"trial {tid}: the saved state names a checkpoint already replaced; "
                         f"it resumes from the one after it")
    return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                              restart_errored=False, storage_filesystem=fs)


def build_tuner(spec: SweepSpec, sweep: Location, console: SweepConsole, restore: bool):
    from ray import tune

    from dipddpm.sweep.disk_space import SpaceWatch
    from dipddpm.sweep.driver import DriverContext, set_current
    from dipddpm.sweep.recorder import Recorder
    from dipddpm.sweep.searchers import searcher_of
    from dipddpm.sweep.trainable import make_trainable
    from dipddpm.sweep.tune_results import TuneResultFiles
    from dipddpm.tracking import tracking_callbacks
    from dipddpm.trial_schedulers import make_scheduler

    trainable = make_trainable(spec, sweep.uri)
    tune_path = sweep.child(TUNE_DIR)
    search = searcher_of(spec).make(spec, sweep)
    searcher, publish = search.searcher, search.publish
    prov = provenance()
    # a restored Tuner unpickles the first driver's recorder and searcher: they take these
    ctx = DriverContext(console=console, provenance=prov, optuna_db=search.db, publish=publish,
                        sweep_uri=sweep.uri, watch=SpaceWatch(sweep))
    set_current(ctx)
    if restore:
        return restore_tuner(spec, tune_path, trainable, ctx), publish
    searcher_of(spec).fresh(searcher)
    scheduler = make_scheduler(spec)
    recorder = Recorder(spec, sweep.uri, prov, console, on_trial_end=publish)
    kept = spec.scheduler.entry.checkpoints_kept
    tuner = tune.Tuner(
        trainable, param_space=search.space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=spec.num_samples, max_concurrent_trials=spec.searcher.max_concurrent,
            time_budget_s=spec.time_budget_s, reuse_actors=True),
        run_config=tune.RunConfig(
            name=TUNE_DIR, **tune_storage(sweep), verbose=0,
            callbacks=[recorder, TuneResultFiles(), *tracking_callbacks(spec, sweep.uri)],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=kept), log_to_file=True))
    return tuner, publish


def check_cluster_storage(sweep: Location, console: SweepConsole, options=None) -> None:
    """The one call site of the multi-node storage check (dipddpm.cluster.doctor, issue 5)."""
    try:
        from dipddpm.cluster.doctor import check_storage_on_all_nodes
    except ImportError:
        console.line("[yellow]note[/]: storage reachability check of every node is not "
                     "available in this build; make sure all nodes see the storage")
        return
    check_storage_on_all_nodes(sweep.uri, options=options)


def execute(spec: SweepSpec, sweep: Location, address: str | None, console: SweepConsole,
            plan: Plan, lock, dashboard: bool = False) -> SweepOutcome:
    """Run the Tuner `plan` says (fresh or restored) under `lock`; a full disk, or a stop the
    driver was asked for, ends it with one line (DipddpmError) and the sweep `stopped`."""
    from dipddpm.cluster.feasibility import check_cluster
    from dipddpm.cluster.local_ray import ray_session, set_state_period
    from dipddpm.dataset.lifecycle import mark_running, mark_stopped
    from dipddpm.sweep.disk_space import no_space, remove_cut_off, stopped_line
    from dipddpm.sweep.driver import current, set_current
    from dipddpm.tracking import preflight

    preflight(spec, sweep.uri)  # tracking backends: installed, reachable (before Ray)
    set_state_period(remote=not sweep.local)
    set_current(None)  # this driver's context is made with its Tuner (build_tuner)
    running, dropped = False, []
    try:
        with ray_session(address, dashboard) as on_cluster:
            check_cluster(spec, console)  # a trial no node can hold: one line, before any trial
            if on_cluster:  # every node must reach the storage before trials start
                check_cluster_storage(sweep, console, spec.storage_options)
            sweep.makedirs()
            lock.acquire()  # a new sweep directory: locked once it exists
            for note in lock.notes:
                console.line(note)
            mark_running(sweep)
            running = True
            dropped = drop_planned(spec, sweep, plan, console)
            fit_tuner(spec, sweep, address, console, plan)
    except Exception as e:
        stop = current().stop_reason if current() is not None else None
        if stop or no_space(e):
            reason = stop or stopped_line(sweep, f"no space left on the device of {sweep.uri}")
            remove_cut_off(sweep)  # which frees room for driver.json's last word, if any
            if running:
                mark_stopped(sweep, reason)
                remove_cut_off(sweep)  # (a full disk may have cut that one off too)
            raise DipddpmError(reason) from None
        if running:
            mark_stopped(sweep, f"{type(e).__name__}: {first_line(e)}")
        raise
    if current() is not None and current().stop_reason:  # Tune interrupted as asked
        mark_stopped(sweep, current().stop_reason)
        remove_cut_off(sweep)
        raise DipddpmError(current().stop_reason)
    return outcome(spec, sweep, console, dropped=dropped)


def fit_tuner(spec: SweepSpec, sweep: Location, address: str | None, console: SweepConsole,
              plan: Plan) -> None:
    """Build (or restore) the Tuner, run it, and end the sweep when every trial is done."""
    from dipddpm.dataset.parquet import harmonize
    from dipddpm.sweep.searchers import searcher_of

    run_baselines_once(spec, sweep, console)
    tuner, publish = build_tuner(spec, sweep, console, plan.start is Start.RESTORE)
    where = "cluster " + address if address else "embedded local Ray (127.0.0.1 only)"
    console.line(f"sweep [bold]{spec.name}[/]: {spec.method}, {spec.trials} trials, "
                 f"searcher {searcher_of(spec).describe(spec)}, scheduler "
                 f"{spec.scheduler.type} on {where}")
    for note in searcher_of(spec).notes(spec, sweep):
        console.line(note)
    tuner.fit()
    harmonize(sweep)  # a driver killed while adding a new column to the files left some
    publish()
    end_of_sweep(spec, sweep, console)


def run_baselines_once(spec: SweepSpec, sweep: Location, console: SweepConsole) -> None:
    """spec.resolved.yaml and the problem images (a new sweep), then the baselines (once)."""
    from dipddpm.methods.study_pairs import release_startup_pairs
    from dipddpm.sweep.baselines import run_baselines

    try:  # the three start-up steps share one build of the problem (`startup_pairs`)
        if not sweep.child(SPEC_FILE).exists():
            sweep.child(SPEC_FILE).write_text(resolved_yaml(spec))
            write_problem_images(spec, sweep)
        run_baselines(spec, sweep, console)  # on the study's observations, once
    finally:
        release_startup_pairs()


def drop_planned(spec: SweepSpec, sweep: Location, plan: Plan,
                 console: SweepConsole) -> list[str]:
    """Delete what the plan drops, each path said: the files of trials that ended after Tune's
    last saved state (asked for: --drop-orphans; their Optuna trials are marked `dropped`), and
    the reports of trials that never ended and that nothing continues."""
    from dipddpm.dataset.parquet import drop_trials
    from dipddpm.sweep.searchers import searcher_of

    dropped = drop_trials(sweep, plan.orphans)
    for path in dropped:
        console.line(f"dropped {path} (--drop-orphans: its trial ended after Tune's last "
                     f"saved state; Tune runs its place again)")
    searcher_of(spec).dropped(spec, sweep, plan.orphans)
    for path in drop_trials(sweep, plan.dead):
        console.line(f"removed {path}: reports of a trial that never ended and that no "
                     f"restore continues")
    return dropped


def outcome(spec: SweepSpec, sweep: Location, console: SweepConsole, finished: bool = False,
            dropped: list[str] | None = None) -> SweepOutcome:
    from dipddpm.dataset.parquet import read_trials

    rows = read_trials(sweep)
    params = [d.key for d in spec.search]
    console.final(rows, params, sweep.uri, spec.summary_by, active=row_active(spec))
    if one_image_problem(spec):
        console.one_observation_note()
    return SweepOutcome(path=sweep.uri, rows=rows, spec=spec, finished=finished,
                        dropped=list(dropped or []))


def one_image_problem(spec: SweepSpec) -> bool:
    """A sweep of one image problem, one seed (not a study, nor a dataset)."""
    from dipddpm.methods.study_pairs import is_study

    return "dataset" not in spec.problem and not is_study(spec.problem)


def saved_ids(sweep: Location) -> tuple[set[str], set[str]] | None:
    """(finished, all) trial ids in Tune's saved state as a resume would read it; None when it
    cannot be read. Not the Tuner's own trial objects: a Tuner interrupted (Ctrl-C, a full
    disk) marks the trials it stopped TERMINATED in memory, but saved them unfinished."""
    from dipddpm.sweep.checkpoints import saved_trials

    where = tune_storage(sweep.child(TUNE_DIR))
    try:
        trials = saved_trials(where["storage_path"], where.get("storage_filesystem"))
    except Exception:
        return None
    return ({t.trial_id for t in trials if t.status in FINISHED},
            {t.trial_id for t in trials})


def end_of_sweep(spec: SweepSpec, sweep: Location, console: SweepConsole) -> None:
    """When every trial is finished (not a Tuner stopped by Ctrl-C or a full disk): compact
    the Parquet files (spec `compact:`, local storage) and mark the sweep ended
    (`lifecycle.driver_state`)."""
    from dipddpm.dataset.compaction import compact
    from dipddpm.dataset.lifecycle import mark_ended
    from dipddpm.sweep.driver import current

    ids = saved_ids(sweep)
    if ids is None or ids[0] != ids[1] or (current() and current().stop_reason):
        return  # trials left to run: `sweep resume` continues, and ends the sweep
    done = ids[0]
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
    return drive(spec, sweep, address, console, dashboard=dashboard)


def drive(spec: SweepSpec, sweep: Location, address: str | None, console: SweepConsole,
          dashboard: bool = False, drop_orphans: bool = False) -> SweepOutcome:
    """The one way a driver works on a sweep directory (`sweep run` and `sweep resume`): take
    its lock, decide what to do (sweep/continuation.py), check the space, run."""
    from dipddpm.dataset.lock import SweepLock
    from dipddpm.sweep.continuation import plan as plan_for
    from dipddpm.sweep.disk_space import check_space

    lock = SweepLock(sweep, spec.storage_options, on_lost=stop_driver)
    try:
        if sweep.exists():  # before reading it: no other driver changes it meanwhile
            lock.acquire()
        plan = plan_for(spec, sweep, drop_orphans)
        if plan.start is Start.FINISHED:
            console.line(plan.line)
            return outcome(spec, sweep, console, finished=True)
        check_space(sweep)
        return execute(spec, sweep, address, console, plan, lock, dashboard)
    finally:
        lock.release()


def stop_driver(reason: str) -> None:
    """Ask the running driver to stop its Tuner (another driver took over its lock)."""
    from dipddpm.sweep.driver import current

    ctx = current()
    if ctx is not None:
        ctx.stop(reason)


def load_sweep_spec(sweep_dir: str, load_problem: bool = True) -> tuple[SweepSpec, Location]:
    """The spec a sweep ran with, read from its directory. Its name stays the one it ran
    under (the Optuna study's name and every row's `sweep`), wherever the directory is now;
    its storage is the directory's parent. `load_problem` false: without loading the problem
    (see `parse_spec`)."""
    sweep = resolve(sweep_dir)
    spec_file = sweep.child(SPEC_FILE)
    raw = legacy_sections(read_resolved(sweep, spec_file))
    parent = sweep.uri.rstrip("/").rsplit("/", 1)[0] if "/" in sweep.uri else "."
    raw = {**raw, "storage": parent}
    raw.setdefault("name", sweep.uri.rstrip("/").rsplit("/", 1)[-1])
    try:
        spec = parse_spec(raw, load_problem=load_problem)
    except DipddpmError as e:
        raise DipddpmError(f"{spec_file.uri}: {e}") from None
    if spec.storage_options:  # the sweep's own endpoint and region from now on
        sweep = resolve(sweep.uri, spec.storage_options)
    return spec, sweep


def read_resolved(sweep: Location, spec_file: Location) -> dict:
    """spec.resolved.yaml of a sweep directory as a mapping; a one-line error for anything
    that is not a sweep directory or not a readable spec."""
    from dipddpm.dataset.storage import is_remote

    what = sweep.fs.get_file_info(sweep.path).type.name if not is_remote(sweep.uri) else ""
    if what == "NotFound":
        raise DipddpmError(f"{sweep.uri}: no such directory; give <storage>/<sweep name> as "
                           f"written by `dipddpm sweep run`")
    if what == "File":
        raise DipddpmError(f"{sweep.uri} is a file, not a sweep directory; give "
                           f"<storage>/<sweep name> as written by `dipddpm sweep run`")
    if spec_file.fs.get_file_info(spec_file.path).type.name != "File":
        raise DipddpmError(f"{sweep.uri} is not a sweep directory (no {SPEC_FILE} file); give "
                           f"<storage>/<sweep name> as written by `dipddpm sweep run`")
    try:
        raw = yaml.safe_load(spec_file.read_text())
    except UnicodeDecodeError as e:
        raise DipddpmError(f"{spec_file.uri} is not UTF-8 text (byte {e.start}); it is not "
                           f"the spec `dipddpm sweep run` wrote") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DipddpmError(f"{spec_file.uri} is not valid YAML{where} "
                           f"({getattr(e, 'problem', None) or type(e).__name__}); it is not "
                           f"the spec `dipddpm sweep run` wrote") from None
    if not isinstance(raw, dict):
        raise DipddpmError(f"{spec_file.uri} holds a {type(raw).__name__}, not a spec mapping; "
                           f"it is not the spec `dipddpm sweep run` wrote")
    return raw


def resume_sweep(sweep_dir: str, address: str | None = None,
                 console: SweepConsole | None = None,
                 drop_orphans: bool = False) -> SweepOutcome:
    """Continue a sweep whose driver stopped: Tune restores its trials (running ones from their
    last checkpoints), the searcher reloads the same Optuna study; no trial is lost or run
    twice, and rows already written are rewritten in place, never duplicated. A finished sweep
    is left as it is; what cannot continue without loss or doubling is refused
    (sweep/continuation.py). `drop_orphans`: delete the trials that ended after Tune's last
    saved state, so Tune runs their places again."""
    spec, sweep = load_sweep_spec(sweep_dir)
    console = console or SweepConsole(spec.metric, spec.mode)
    console.line(f"resuming {sweep.uri}")
    return drive(spec, sweep, address, console, drop_orphans=drop_orphans)
