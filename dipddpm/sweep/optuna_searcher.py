"""The Optuna searcher's entry parts (sweep/searchers.py): its study file in the sweep dir,
its sampler check, and its bookkeeping when Tune's state is restored, at a fresh start and
when trials are dropped. The search algorithm itself is sweep/search.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dipddpm.dataset.optuna_study import STUDY_FILE, storage_url
from dipddpm.errors import DipddpmError


def optuna_db(sweep: Any) -> tuple[str, Any]:
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


def make(spec: Any, sweep: Any):
    from dipddpm.sweep.search import TruthfulOptunaSearch
    from dipddpm.sweep.searcher_entry import SearchSetup

    db, publish = optuna_db(sweep)
    return SearchSetup(TruthfulOptunaSearch(spec, db), {}, db, publish)


def describe(spec: Any) -> str:
    return f"optuna/{spec.searcher.sampler}"


def check_sampler(spec: Any) -> None:
    """The spec's Optuna sampler can be built here: the package it needs is installed."""
    import importlib

    from dipddpm.sweep.samplers import SAMPLERS

    name = spec.searcher.sampler
    needs = SAMPLERS.get(name).requires
    if needs is None:
        return
    try:
        importlib.import_module(needs)
    except ImportError:
        raise DipddpmError(f"searcher.sampler {name} needs the `{needs}` package: pip install "
                           f"{needs}, or use sampler: tpe") from None


def shown(domains: tuple) -> dict[str, Any]:
    """The domains as Optuna distributions."""
    from dipddpm.sweep.spec.space import distributions

    return distributions(domains)


def restored(path: str, fs: Any, trials: int) -> None:
    """Tune's search counter set to the restored trial list (sweep/checkpoints.py)."""
    from dipddpm.sweep.checkpoints import align_search_counter

    align_search_counter(path, fs, trials)


def fresh(searcher: Any) -> None:
    searcher.close_orphans()  # a fresh start on an existing study: nothing is running


def dropped(spec: Any, sweep: Any, trial_ids: list[str]) -> None:
    """The dropped trials marked `dropped` in the study, and the study published."""
    from dipddpm.dataset.optuna_study import mark_dropped

    if not trial_ids:
        return
    db, publish = optuna_db(sweep)
    mark_dropped(db, spec.name, trial_ids)
    publish()


def notes(spec: Any, sweep: Any) -> list[str]:
    if sweep.local:
        return [f"study: optuna-dashboard {storage_url(f'{sweep.path}/{STUDY_FILE}')}"]
    return [f"study: {sweep.uri}/{STUDY_FILE} (published as trials are asked, checkpoint and "
            f"end; copy it, then optuna-dashboard sqlite:///...)"]
