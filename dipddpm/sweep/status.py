"""`dipddpm sweep status DIR`: what a sweep directory holds so far (works while it runs)."""

from __future__ import annotations

import os
import tempfile

from dipddpm.sweep.runner import TUNE_DIR, load_sweep_spec, tune_storage
from dipddpm.sweep.storage import Location
from dipddpm.sweep.study import STUDY_FILE, state_counts


def study_counts(db_path: str, name: str) -> dict[str, int]:
    """Optuna trials by state (COMPLETE, PRUNED, FAIL, RUNNING), not counting duplicates."""
    return state_counts(db_path, name)


def sweep_status(sweep_dir: str) -> dict:
    from ray import tune

    from dipddpm.sweep.lifecycle import driver_state
    from dipddpm.sweep.results import read_trials
    from dipddpm.sweep.rows import best_trial, status_counts

    spec, sweep = load_sweep_spec(sweep_dir, load_problem=False)  # counts only: no image needed
    rows = read_trials(sweep)
    best = best_trial(rows, spec)
    where = tune_storage(sweep.child(TUNE_DIR))
    return {"path": sweep.uri, "name": spec.name, "metric": spec.metric, "trials": len(rows),
            **status_counts(rows), "best": best, "study": published_study(sweep, spec.name),
            "state": driver_state(sweep),  # running, ended, stopped (killed) or unknown
            "resumable": bool(tune.Tuner.can_restore(
                where["storage_path"], storage_filesystem=where.get("storage_filesystem")))}


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
