"""`dipddpm sweep status DIR`: what a sweep directory holds so far (works while it runs).

The sweep is the one its spec.resolved.yaml records: its name (the Optuna study's) stays the
same wherever the directory was copied or moved.
"""

from __future__ import annotations

import os
import tempfile

from dipddpm.dataset.optuna_study import STUDY_FILE, state_counts
from dipddpm.dataset.storage import Location
from dipddpm.errors import DipddpmError
from dipddpm.sweep.runner import TUNE_DIR, load_sweep_spec, tune_storage
from dipddpm.sweep.spec import SweepSpec


def study_counts(db_path: str, name: str) -> dict[str, int]:
    """Optuna trials by state (COMPLETE, PRUNED, FAIL, RUNNING), not counting duplicates."""
    return state_counts(db_path, name)


def sweep_status(sweep_dir: str) -> dict:
    from ray import tune

    from dipddpm.cluster.local_ray import quiet_ray_logs
    from dipddpm.dataset.lifecycle import driver_state, read_driver
    from dipddpm.dataset.parquet import read_trials
    from dipddpm.sweep.rows import best_trial, status_counts

    spec, sweep = load_sweep_spec(sweep_dir, load_problem=False)  # counts only: no image needed
    rows = read_trials(sweep)
    best = best_trial(rows, spec)
    where = tune_storage(sweep.child(TUNE_DIR))
    quiet_ray_logs()
    try:
        study, study_error = published_study(sweep, spec.name), None
    except DipddpmError as e:  # the trials still answer
        study, study_error = None, str(e)
    return {"path": sweep.uri, "name": spec.name, "metric": spec.metric, "trials": len(rows),
            **status_counts(rows), "best": best, "study": study, "study_error": study_error,
            "state": driver_state(sweep),  # running, ended, stopped (killed) or unknown
            "stopped_because": (read_driver(sweep) or {}).get("reason"),
            "holder": lock_holder(sweep, spec),
            "scheduler": scheduler_summary(spec),
            "resumable": bool(tune.Tuner.can_restore(
                where["storage_path"], storage_filesystem=where.get("storage_filesystem")))}


def scheduler_summary(spec: SweepSpec) -> dict:
    """The sweep's Tune scheduler: its type, the fields its registry entry reads, and the rung
    rule it counts on, resolved (null in a spec means the method's default)."""
    from dipddpm.sweep.spec.rung_rules import rule_for

    section = spec.scheduler
    out = section.as_dict()
    if "rung_rule" in out:
        out["rung_rule"] = rule_for(spec.method, section.rung_rule).name
    return out


def lock_holder(sweep: Location, spec: SweepSpec) -> str | None:
    """Who holds the sweep's driver lock (None: no live holder)."""
    from dipddpm.dataset.lock import read_lock

    lock = read_lock(sweep, spec.storage_options)
    if lock is None or lock[0] is None or lock[1] is not None:
        return None
    return lock[0].describe()


def published_study(sweep: Location, name: str) -> dict[str, int] | None:
    """study_counts of the sweep's optuna.db (on remote storage: of a temporary copy of the
    one last published), None when there is none."""
    db = sweep.child(STUDY_FILE)
    if sweep.local:
        return study_counts(db.path, name) if os.path.isfile(db.path) else None
    if not db.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="dipddpm-study-") as tmp:
        local = os.path.join(tmp, STUDY_FILE)
        with db.fs.open_input_stream(db.path) as f, open(local, "wb") as out:
            out.write(f.read())
        return study_counts(local, name)
