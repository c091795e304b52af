"""Tune-level plug-ins are registry entries: Tune schedulers, Optuna samplers, plot kinds.
Each entry declares what it reads, and the dispatchers pass exactly that."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from dipddpm.errors import DipddpmError


def quick_spec(**over):
    from dipddpm.sweep.spec import parse_spec

    raw = yaml.safe_load(open("sweeps/quick.yaml"))
    raw.pop("smoke")
    return parse_spec({**raw, **over}, load_problem=False)


def test_the_spec_validator_accepts_exactly_the_registered_names():
    """The validator reads the registries: every registered name validates, another is
    refused with the registered names listed."""
    from dipddpm.errors import ConfigError
    from dipddpm.sweep.samplers import SAMPLERS
    from dipddpm.trial_schedulers import TUNE_SCHEDULERS

    for name in SAMPLERS.names():
        assert quick_spec(searcher={"type": "optuna", "sampler": name}).searcher.sampler == name
    # every Tune scheduler validates: tests/test_contract_tune_schedulers.py
    with pytest.raises(ConfigError, match=", ".join(SAMPLERS.names())):
        quick_spec(searcher={"type": "optuna", "sampler": "annealing"})
    with pytest.raises(ConfigError, match=", ".join(TUNE_SCHEDULERS.names())):
        quick_spec(scheduler={"type": "hyperband"})


@pytest.mark.parametrize("name, cls", [("tpe", "TPESampler"), ("cmaes", "CmaEsSampler"),
                                       ("gp", "GPSampler"), ("random", "RandomSampler")])
def test_every_sampler_is_built_from_its_entry_and_seeded(name, cls):
    import optuna

    from dipddpm.sweep.samplers import make_sampler

    spec = quick_spec(searcher={"type": "optuna", "sampler": name, "seed": 3})
    s = make_sampler(spec, trials_before=2)
    assert type(s) is getattr(optuna.samplers, cls)
    if name == "tpe":  # a quarter of the trials start at random (2..10), constant liar
        assert s._n_startup_trials == max(2, min(10, spec.num_samples // 4))
        assert s._constant_liar


def test_a_sampler_needing_a_missing_package_is_one_line_before_ray(monkeypatch):
    from dipddpm.sweep.optuna_searcher import check_sampler
    from dipddpm.sweep.samplers import SAMPLERS, Sampler, random

    SAMPLERS.register("toy")(Sampler(random, "test only", requires="dipddpm_no_such_pkg"))
    try:
        spec = quick_spec()
        spec = dataclasses.replace(spec, searcher=dataclasses.replace(spec.searcher,
                                                                      sampler="toy"))
        with pytest.raises(DipddpmError, match="needs the `dipddpm_no_such_pkg` package"):
            check_sampler(spec)
        check_sampler(quick_spec())  # tpe needs nothing more
    finally:
        SAMPLERS.unregister("toy")
    assert "toy" not in SAMPLERS


def test_tune_schedulers_are_built_from_their_entries():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from dipddpm.trial_schedulers import TUNE_SCHEDULERS, make_scheduler

    spec = quick_spec(scheduler={"type": "asha", "grace_period": 7, "reduction_factor": 4})
    asha = make_scheduler(spec)
    assert isinstance(asha, ASHAScheduler)
    assert asha._max_t == spec.scheduler.max_t and asha._reduction_factor == 4
    assert min(asha._brackets[0]._rungs)[0] == 7  # the first rung: the grace period
    for p in TUNE_SCHEDULERS.get("asha").params:
        assert hasattr(spec.scheduler, p)
    none = make_scheduler(quick_spec(scheduler={"type": "none"}))
    assert type(none) is FIFOScheduler


def test_plot_dispatch_passes_each_kind_what_it_declares(results_sweep):
    from dipddpm.analysis import load_sweep, plots

    seen = {}

    def toy(sweep, top, x):
        seen.update(top=top, x=x)
        return plots.new_figure(1, 1)

    plots.PLOT_KINDS.register("toy")(plots.PlotKind(toy, ("top", "x"), "test only", top=3))
    try:
        plots.plot(load_sweep(results_sweep), "toy", metric="psnr_gt_best", by=["x"])
        assert seen == {"top": 3, "x": "iters"}  # the entry's default top; no metric, by
    finally:
        plots.PLOT_KINDS.unregister("toy")
    with pytest.raises(DipddpmError, match="unknown plot kind 'toy'"):
        plots.plot(load_sweep(results_sweep), "toy")


def test_help_texts_name_every_registered_plug_in():
    from typer.testing import CliRunner

    from dipddpm.analysis.plots import PLOT_KINDS
    from dipddpm.cli import app

    out = CliRunner().invoke(app, ["results", "plot", "--help"], env={"COLUMNS": "300"}).output
    for name, kind in PLOT_KINDS.items():
        assert f"{name}: {kind.help}" in out
