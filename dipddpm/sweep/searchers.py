"""Searchers by name (a spec's `searcher: {type: NAME, ...}`): what hands each new trial its
config. An entry says what the spec validator, `sweep show` and the runner need to know:

    make        (spec, sweep dir) -> SearchSetup: Tune's search algorithm, the param space
                Tune samples (empty: the searcher suggests), and the study file it keeps
    describe    spec -> its name in the console line (`optuna/tpe`)
    grid        it takes `grid:` domains, running every grid point num_samples times
    conditional it takes `when:` conditions (a define-by-run space)
    holds_params  it records each trial's params as it suggested them (a study): a Tune
                scheduler that changes a running trial's config cannot run beside it
    check       spec -> raises before Ray starts (a sampler package not installed)
    shown       the search domains as `sweep show` prints them
    restored, fresh, dropped, notes   its bookkeeping when Tune's state is restored, at a
                fresh start, when trials are dropped, and its console lines at the start

    optuna  Optuna's samplers (sweep/samplers.py), its study in the sweep dir (optuna_searcher.py)
    grid    Tune's basic variant generator: grids, and random draws of the other domains

The entry type is sweep/searcher_entry.py. The runner asks the entry; no module compares a
searcher's name (CONTRIBUTING.md, "How to add
a searcher").
"""

from __future__ import annotations

from typing import Any

from dipddpm.registry import Registry
from dipddpm.sweep import optuna_searcher as opt
from dipddpm.sweep.searcher_entry import Searcher, SearchSetup


def variant_generator(spec: Any, sweep: Any) -> SearchSetup:
    """Tune's basic variant generator over the spec's space (seeded)."""
    from ray.tune.search import BasicVariantGenerator

    from dipddpm.sweep.spec.space import tune_space

    return SearchSetup(BasicVariantGenerator(random_state=spec.searcher.seed,
                                             max_concurrent=spec.searcher.max_concurrent),
                       tune_space(spec.search))


SEARCHERS: Registry[Searcher] = Registry("searcher")
SEARCHERS.register("optuna")(Searcher(
    make=opt.make, describe=opt.describe, conditional=True, holds_params=True,
    check=opt.check_sampler, shown=opt.shown, restored=opt.restored, fresh=opt.fresh,
    dropped=opt.dropped, notes=opt.notes,
    help="Optuna's sampler (searcher.sampler), its study in the sweep dir (optuna.db)"))
SEARCHERS.register("grid")(Searcher(
    make=variant_generator, describe=lambda spec: "grid", grid=True,
    help="Tune's basic variant generator: every grid point num_samples times, other domains "
         "drawn at random"))


def searcher_of(spec: Any) -> Searcher:
    """The entry of the spec's searcher."""
    return SEARCHERS.get(spec.searcher.type)
