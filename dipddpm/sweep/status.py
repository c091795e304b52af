"""`dipddpm sweep status DIR`: what a sweep directory holds so far (works while it runs)."""

from __future__ import annotations

import os

from dipddpm.sweep.runner import TUNE_DIR, load_sweep_spec
from dipddpm.sweep.storage import resolve


def study_counts(db_path: str, name: str) -> dict[str, int]:
    """Optuna trials by state (COMPLETE, PRUNED, FAIL, RUNNING), not counting duplicates."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db_path}")
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if "duplicate_of" in t.user_attrs:
            continue
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def sweep_status(sweep_dir: str) -> dict:
    from ray import tune

    from dipddpm.sweep.lifecycle import driver_state
    from dipddpm.sweep.results import read_trials
    from dipddpm.sweep.rows import best_trial, status_counts

    spec, sweep = load_sweep_spec(sweep_dir, load_problem=False)  # counts only: no image needed
    rows = read_trials(sweep)
    best = best_trial(rows, spec)
    db = os.path.join(sweep.path, "optuna.db")
    study = study_counts(db, spec.name) if sweep.local and os.path.isfile(db) else None
    return {"path": sweep.uri, "name": spec.name, "metric": spec.metric, "trials": len(rows),
            **status_counts(rows), "best": best, "study": study,
            "state": driver_state(sweep),  # running, ended, stopped (killed) or unknown
            "resumable": bool(tune.Tuner.can_restore(resolve(sweep.uri).child(TUNE_DIR).uri))}
