"""`dipddpm sweep validate|show|run|resume|status`: YAML sweep specs on Ray Tune + Optuna + ASHA."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from dipddpm.cli.app import sweep_app
from dipddpm.cli.common import print_json, user_errors

SMOKE = typer.Option(False, "--smoke", help="Apply the spec's smoke: block (seconds on CPU).")
SETS = typer.Option(None, "--set", help="Override a spec key, dotted, value as YAML "
                    "(repeatable), e.g. --set problem.image=F16.png --set fixed.iters=500.")
JSON = typer.Option(False, "--json", help="Print one JSON object.")


def cluster_address(address: str | None) -> str | None:
    """--address, else $RAY_ADDRESS (set for the driver of a `ray job submit`), else None
    (the embedded local Ray); --address wins (local_ray.choose_address)."""
    from dipddpm.cluster.local_ray import choose_address

    return choose_address(address)


def echo_warnings(spec) -> None:
    """A spec's warnings (sound, but likely not what was meant), one line each on stderr."""
    for w in spec.warnings:
        typer.echo(f"warning: {w}", err=True)


def _summary(spec) -> dict:
    from dipddpm.sweep.spec.rung_rules import rule_for
    from dipddpm.sweep.spec.space import grid_size

    return {"name": spec.name, "method": spec.method, "preset": spec.preset,
            "metric": spec.metric, "mode": spec.mode, "num_samples": spec.num_samples,
            "trials": spec.trials,
            "searcher": spec.searcher.type, "sampler": spec.searcher.sampler,
            "scheduler": spec.scheduler.type, "max_t": spec.scheduler.value("max_t"),
            "grace_period": spec.scheduler.value("grace_period"),
            "rung_rule": rule_for(spec.method, spec.scheduler.rung_rule).name,
            "search": [d.key for d in spec.search], "grid_points": grid_size(spec.search),
            "storage": spec.storage, "resources": {"cpu": spec.resources.cpu,
                                                   "gpu": spec.resources.gpu}}


@sweep_app.command("validate", help="Check a sweep spec completely without starting Ray: keys, "
                   "domains, metric, scheduler, resources, problem (the image loads), the "
                   "smoke: block, sampler packages, that the storage is writable, that an "
                   "existing sweep directory holds the same spec and (no RAY_ADDRESS: the "
                   "sweep would run here) that a CPU trial's memory estimate fits this "
                   "machine's RAM. Writes nothing. Exit 2 on a problem.")
@user_errors
def validate(spec: Path = typer.Argument(..., help="YAML sweep spec, e.g. sweeps/quick.yaml."),
             smoke: bool = SMOKE, sets: list[str] | None = SETS,
             storage: str | None = typer.Option(None, "--storage", help="Results root to "
                                                "check (default: the spec's storage:)."),
             as_json: bool = JSON) -> None:
    from dipddpm.cluster.feasibility import check_this_machine
    from dipddpm.sweep.runner import prepare
    from dipddpm.sweep.spec import load_spec
    from dipddpm.tracking import preflight

    s = load_spec(spec, smoke=smoke, sets=sets, storage=storage)
    sweep = prepare(s)
    check_this_machine(s)
    preflight(s, sweep.uri)  # the tracking backends `sweep run` would use: installed, reachable
    if as_json:
        print_json({"ok": True, **_summary(s), "warnings": list(s.warnings)})
        return
    echo_warnings(s)
    typer.echo(f"ok: {s.name}: {s.method}, {_trials(s)}, {s.searcher.type} "
               f"searcher, {s.scheduler.type} scheduler, metric {s.metric} ({s.mode}), "
               f"search over {', '.join(d.key for d in s.search) or 'nothing'}")


def _trials(s) -> str:
    """'20 trials', or for a grid '8 trials (4 grid points x num_samples 2)'."""
    n = f"{s.trials} trial{'s' if s.trials != 1 else ''}"
    points = s.trials // s.num_samples
    return n if points == 1 else f"{n} ({points} grid points x num_samples {s.num_samples})"


def gpu_fraction(mib: float, gib: int) -> float | None:  # kept here for its importers
    from dipddpm.sweep.spec.estimate import gpu_fraction as fraction

    return fraction(mib, gib)


def _space(s) -> dict:
    space = {}
    for d in s.search:
        entry = {"kind": d.kind}
        if d.kind in ("choice", "grid"):
            entry["values"] = list(d.values)
        else:
            entry.update(low=d.low, high=d.high)
            if d.kind == "int":
                entry.update(step=d.step, log=d.log)
        if d.when:
            entry["when"] = {k: list(v) for k, v in d.when}
        space[d.key] = entry
    return space


def _resolved(s) -> dict:
    """The spec as it runs, with the rung rule the method's default resolves to."""
    from dipddpm.sweep.spec.rung_rules import rule_for

    out = s.resolved_dict()
    if "rung_rule" in out["scheduler"]:  # a scheduler counting on a rung rule
        out["scheduler"] = {**out["scheduler"],
                            "rung_rule": rule_for(s.method, s.scheduler.rung_rule).name}
    return out


@sweep_app.command("show", help="Print the spec as it would run (after --smoke/--set), its "
                   "search space as Optuna distributions, the number of trials, the members "
                   "per trial, the expected memory per trial and the time per trial and for "
                   "the sweep (measured here: a few iterations of the base config). Works "
                   "without the spec's data (then memory and time are not estimated).")
@user_errors
def show(spec: Path = typer.Argument(..., help="YAML sweep spec."), smoke: bool = SMOKE,
         sets: list[str] | None = SETS, as_json: bool = JSON) -> None:
    from dipddpm.sweep.spec import load_spec
    from dipddpm.sweep.spec.estimate import time_estimate, trial_footprint

    s = load_spec(spec, smoke=smoke, sets=sets, load_problem=False)
    space = _space(s)
    footprint = trial_footprint(s)
    timing = time_estimate(s)
    if as_json:
        print_json({**_summary(s), "space": space, "resolved": _resolved(s), **footprint,
                    "time": timing, "warnings": list(s.warnings)})
        return
    echo_warnings(s)
    typer.echo(yaml.safe_dump(_resolved(s), sort_keys=False).rstrip())
    _echo_space(s, space)
    _echo_footprint(s, footprint)
    _echo_time(s, timing)


def _echo_space(s, space: dict) -> None:
    from dipddpm.sweep.searchers import searcher_of

    typer.echo(f"# search space ({searcher_of(s).describe(s)} searcher):")
    shown = searcher_of(s).shown(s.search)  # e.g. Optuna's distributions
    for key, entry in space.items():
        cond = f"   when {entry['when']}" if "when" in entry else ""
        typer.echo(f"#   {key}: {shown.get(key, entry)}{cond}")
    typer.echo(f"# {_trials(s)}; {s.scheduler.entry.describe(s.scheduler.options)}")


def _echo_footprint(s, footprint: dict) -> None:
    mib = footprint["memory_per_trial_mib"]
    typer.echo(f"# members per trial: {footprint['members_per_trial']}; expected memory per "
               f"trial: " + (f"{mib:.0f} MiB (estimate at the base config)" if mib is not None
                             else "not estimated (method without it, or its data not here)"))
    if footprint.get("gpu_fraction_per_trial"):
        fracs = ", ".join(f"{k}: {'too small' if v is None else v}"
                          for k, v in footprint["gpu_fraction_per_trial"].items())
        typer.echo(f"# resources.gpu a trial needs by that estimate, per GPU size: {fracs} "
                   f"(spec asks {s.resources.gpu})")
    if footprint["members_per_trial"] > 1:
        typer.echo(f"# a study: each trial fits {footprint['members_per_trial']} (image, "
                   f"replicate) pairs; its time and memory grow linearly with them")


def _echo_time(s, t: dict) -> None:
    from dipddpm.sweep.spec.estimate import fmt_seconds

    if "why" in t:
        typer.echo(f"# time: {t['why']}")
        return
    typer.echo(f"# time per trial: at most {fmt_seconds(t['trial_s'])} on this machine's "
               f"{t['device']} ({t['s_per_iter']:.3g} s/iteration measured with a report "
               f"each, x {t['iters_per_trial']} iterations, + {t['setup_s']:.1f} s set-up); "
               f"the sweep: at most {fmt_seconds(t['sweep_s'])} with {t['at_once']} trial(s) "
               f"at once (ASHA's early stops make it less)")


@sweep_app.command("run", help="Run a sweep: embedded local Ray (127.0.0.1 only) by default, an "
                   "existing cluster with --address. Writes <storage>/<name>/ (Parquet trials "
                   "and metrics, PNGs, optuna.db) and prints the winner.")
@user_errors
def run(spec: Path = typer.Argument(..., help="YAML sweep spec, e.g. sweeps/quick.yaml."),
        smoke: bool = SMOKE,
        storage: str | None = typer.Option(None, "--storage", help="Results root: a local/NFS "
                                           "path, s3://bucket/prefix or gs://... (storage "
                                           "backends: {names:storage_backends}; default: the "
                                           "spec's storage:, else ./results)."),
        address: str | None = typer.Option(None, "--address", help="Existing Ray cluster: auto, "
                                           "host:port or ray://host:10001. Default: "
                                           "$RAY_ADDRESS when set (as in `ray job submit`), "
                                           "else an embedded local Ray."),
        num_samples: int | None = typer.Option(None, "--num-samples", help="Trials to run "
                                               "(overrides num_samples:)."),
        sets: list[str] | None = SETS,
        resume: bool = typer.Option(False, "--resume", help="Continue the existing sweep "
                                    "directory of this spec, even if the spec changed."),
        dashboard: bool = typer.Option(False, "--dashboard", help="Start Ray's dashboard on "
                                       "127.0.0.1 (embedded Ray only)."),
        as_json: bool = JSON) -> None:
    from dipddpm.api import run as run_sweep

    r = run_sweep(spec, smoke=smoke, storage=storage, address=address, resume=resume,
                  quiet=as_json, dashboard=dashboard, sets=sets, num_samples=num_samples,
                  on_warning=lambda w: typer.echo(f"warning: {w}", err=True))
    if as_json:
        print_json(r.outcome)


@sweep_app.command("resume", help="Continue a sweep whose driver stopped (killed, crashed, "
                   "node lost, disk full): no trial is lost or run twice; the Optuna study "
                   "continues. A finished sweep is left as it is. Refused while another driver "
                   "holds the sweep, and where Tune's saved state (tune/) is missing but "
                   "trials are left to run.")
@user_errors
def resume(sweep_dir: str = typer.Argument(..., help="The sweep directory, "
                                           "<storage>/<name>."),
           address: str | None = typer.Option(None, "--address", help="Existing Ray cluster "
                                              "(auto, host:port or ray://...); default "
                                              "$RAY_ADDRESS when set, else embedded."),
           drop_orphans: bool = typer.Option(False, "--drop-orphans", help="Delete the files "
                                             "of trials that ended after Tune's last saved "
                                             "state (a driver killed in between), each one "
                                             "listed, so Tune runs their places again. "
                                             "Without it such a resume is refused."),
           as_json: bool = JSON) -> None:
    from dipddpm.api import resume as resume_sweep

    r = resume_sweep(sweep_dir, address=address, drop_orphans=drop_orphans, quiet=as_json)
    if as_json:
        print_json(r.outcome)


@sweep_app.command("status", help="Trials so far of a sweep directory (also while it runs): "
                   "counts by status, the best trial, the Optuna study, the Tune scheduler, "
                   "whether it can resume, and whether its driver is running (and who holds "
                   "it), has ended or stopped (driver.json, driver.lock).")
@user_errors
def status(sweep_dir: str = typer.Argument(..., help="The sweep directory."),
           as_json: bool = JSON) -> None:
    from dipddpm.sweep.status import sweep_status

    st = sweep_status(sweep_dir)
    if as_json:
        print_json(st)
        return
    typer.echo(f"{st['path']}: {st['trials']} trials written (completed {st['completed']}, "
               f"pruned {st['pruned']}, failed {st['failed']}); "
               f"{'resumable' if st['resumable'] else 'not resumable'}; driver {st['state']}"
               + (f" ({st['holder']})" if st["holder"] else "")
               + (f": {st['stopped_because']}" if st["stopped_because"] else ""))
    sched = dict(st["scheduler"])
    typer.echo(f"scheduler {sched.pop('type')}"
               + (" (" + ", ".join(f"{k} {v}" for k, v in sched.items()) + ")" if sched else ""))
    if st["best"]:
        b = st["best"]
        shown = {k: v for k, v in b["params"].items() if v is not None}  # inactive: null
        typer.echo(f"best {b['trial_id']}: {st['metric']} {b['value']:.3f} ({b['status']}) "
                   + " ".join(f"{k}={v}" for k, v in shown.items()))
    if st["study"]:
        typer.echo("optuna study: " + ", ".join(f"{k.lower()} {v}"
                                                 for k, v in st["study"].items()))
    elif st["study_error"]:
        typer.echo(f"optuna study: unreadable ({st['study_error']})")
