"""The one module that opens a sweep's Optuna study (`<sweep dir>/optuna.db`, SQLite):
for the searcher (sweep/search.py), `sweep status` (sweep/status.py) and the importance plot
(analysis/plots.py). No Ray here; Optuna is imported when a study is opened.

A study of an earlier version may hold `duplicate_of` trials: a suggestion equal to an
earlier trial's, holding a copy of its outcome. Every reader counts them once (they ran
once), through `counted`. A trial whose results the user dropped (`sweep resume
--drop-orphans`: it ended after Tune's last saved state, and Tune runs its place again) is
marked `dropped` and not counted either.

A study is looked up by the sweep's recorded name (spec.resolved.yaml's `name`), not by its
directory's: a sweep copied or moved under another name keeps its study. A file holding one
study only is read whatever its name.
"""

from __future__ import annotations

import sqlite3
import tempfile
import warnings
from pathlib import Path
from typing import Any

from dipddpm.errors import DipddpmError, first_line

STUDY_FILE = "optuna.db"
DUPLICATE = "duplicate_of"  # user attribute of a trial copying an earlier trial's outcome
DROPPED = "dropped"  # user attribute of a trial whose results were dropped (--drop-orphans)


def storage_url(db_path: str | Path) -> str:
    return f"sqlite:///{db_path}"


def _quiet():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class _Connect:
    """Opens the study's SQLite file for SQLAlchemy with `PRAGMA synchronous=OFF` (see
    `study_storage`); a class, not a lambda, so the storage still pickles."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA synchronous=OFF")
        return conn


def study_storage(db_path: str | Path):
    """The Optuna storage of a sweep's study file, for its writer (the searcher).

    SQLite waits for the disk (fsync) at each commit by default, and Optuna commits every
    write on its own: a trial's ask, params, attributes, each intermediate value and its tell
    cost about 18 commits, 5-15 ms each on a shared virtual disk (measured: 0.14 s of driver
    wall time per trial, 13% of benchmarks/driver_scale.py's driver). With `synchronous=OFF`
    a commit is handed to the operating system without waiting: the file is whole after the
    driver is killed at any point (SQLite's rollback journal still undoes a cut-off
    transaction), which is what every other file of a sweep guarantees (written by rename,
    without fsync); after a power cut the last transactions may be lost or the file damaged,
    as those files may be. The journal stays in DELETE mode (one file, NFS-safe, copied
    whole by `runner.optuna_db`'s publish)."""
    optuna = _quiet()
    return optuna.storages.RDBStorage(storage_url(db_path),
                                      engine_kwargs={"creator": _Connect(str(db_path))})


def open_study(db_path: str | Path, name: str, direction: str, sampler: Any):
    """The sweep's study, created on first use, loaded after (the searcher's)."""
    optuna = _quiet()
    return optuna.create_study(storage=study_storage(db_path), study_name=name,
                               direction=direction, load_if_exists=True, sampler=sampler)


def counted(trials: list) -> list:
    """The trials that ran: copies of an earlier outcome (`duplicate_of`) and trials whose
    results were dropped (`dropped`) left out."""
    return [t for t in trials if DUPLICATE not in t.user_attrs and DROPPED not in t.user_attrs]


def mark_dropped(db_path: str | Path, name: str, ray_trial_ids: list[str]) -> int:
    """Mark the study's trials of these Tune trials `dropped` (their results were deleted and
    Tune runs their places again); returns how many were marked."""
    study = _load_named(storage_url(db_path), Path(db_path), name)
    ids = set(ray_trial_ids)
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("ray_trial_id") in ids:
            study._storage.set_trial_user_attr(
                t._trial_id, DROPPED, "ended after Tune's last saved state; results dropped "
                "by `sweep resume --drop-orphans`; Tune ran its place again")
            n += 1
    return n


def state_counts(db_path: str | Path, name: str) -> dict[str, int]:
    """Trials by state (COMPLETE, PRUNED, FAIL, RUNNING), each trial that ran once."""
    study = _load_named(storage_url(db_path), Path(db_path), name)
    counts: dict[str, int] = {}
    for t in counted(study.get_trials(deepcopy=False)):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def snapshot(db: Path, into: Path) -> Path:
    """A consistent copy of the study's SQLite file (read-only source; safe while it is
    written)."""
    dst = into / STUDY_FILE
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(dst)
        with out:
            src.backup(out)
        out.close()
    finally:
        src.close()
    return dst


def _load_named(storage: str, db: Path, name: str):
    """The study named `name`, or the only study the file holds."""
    optuna = _quiet()
    try:
        names = optuna.get_all_study_names(storage)
        found = name if name in names else (names[0] if len(names) == 1 else None)
        if found is None:
            raise DipddpmError(f"{db} holds studies {names}, none named {name!r}; "
                               "expected the study named after the sweep")
        return optuna.load_study(study_name=found, storage=storage)
    except DipddpmError:
        raise
    except Exception as e:  # sqlite / optuna storage errors: not a readable study
        raise DipddpmError(f"cannot read the Optuna study in {db}: {first_line(e)}; expected "
                           "an Optuna SQLite storage written by `dipddpm sweep run`") from None


def _evaluator(complete: list, params: set[str]):
    """PED-ANOVA, or fANOVA (scikit-learn installed) when every trial has every parameter
    with one distribution: fANOVA assesses only those."""
    optuna = _quiet()
    if set(optuna.search_space.intersection_search_space(complete)) == params:
        try:
            import sklearn  # noqa: F401  (fANOVA's random forest)

            return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
        except ImportError:
            pass
    return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"


def param_importances(db: Path, name: str) -> tuple[dict[str, float], str, int]:
    """Optuna importances of the searched parameters of the study in `db` (read from a
    snapshot): (importances, evaluator, COMPLETE trials used)."""
    optuna = _quiet()
    with tempfile.TemporaryDirectory() as tmp:
        study = _load_named(storage_url(snapshot(db, Path(tmp))), db, name)
        name = study.study_name
        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        complete = counted(finished)
        if len(complete) < len(finished):
            study = optuna.create_study(directions=study.directions)  # in memory
            study.add_trials(complete)
        params = {p for t in complete for p in t.params}
        if len(complete) < 2 or not params:
            raise DipddpmError(f"importance needs at least 2 COMPLETE trials with searched "
                               f"parameters in study {name!r}, got {len(complete)} "
                               f"trials and {len(params)} parameters")
        evaluator, label = _evaluator(complete, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
            except (ValueError, RuntimeError) as e:
                raise DipddpmError(f"Optuna could not compute importances for study "
                                   f"{name!r}: {first_line(e)}") from None
    return dict(imp), label, len(complete)
