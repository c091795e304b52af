"""`dipddpm results plot`: every kind writes a real image; the Pareto and stage helpers."""

import struct

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dipddpm.analysis import load_sweep
from dipddpm.analysis.plots import (
    group_label,
    param_importances,
    pareto_front,
    stage_boundaries,
    trial_label,
)
from dipddpm.cli import app

runner = CliRunner()


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("kind, extra", [
    ("curves", []), ("curves", ["--by", "scheduler"]), ("stages", []),
    ("stages", ["--by", "scheduler", "--by", "beta_schedule"]), ("pareto", []),
    ("pareto", ["--x", "seconds", "--by", "beta_schedule"]), ("importance", []),
])
def test_every_kind_writes_a_png(sweep_dir, tmp_path, kind, extra):
    out = tmp_path / f"{kind}.png"
    r = runner.invoke(app, ["results", "plot", str(sweep_dir), "--kind", kind, "--out",
                            str(out), *extra])
    assert r.exit_code == 0, r.output
    w, h = png_size(out)
    assert w >= 400 and h >= 150
    assert f"{w}x{h} px" in r.stdout
    assert out.stat().st_size > 10_000


def test_svg_output(sweep_dir, tmp_path):
    out = tmp_path / "c.svg"
    r = runner.invoke(app, ["results", "plot", str(sweep_dir), "--kind", "curves", "--out",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().lstrip().startswith("<?xml")


def test_pareto_front_keeps_only_undominated_points():
    compute = np.array([10, 20, 20, 30, 40, 40])
    quality = np.array([1.0, 3.0, 2.0, 2.5, 4.0, 1.0])
    assert pareto_front(compute, quality, "max").tolist() == [0, 1, 4]
    assert pareto_front(compute, -quality, "min").tolist() == [0, 1, 4]


def test_stage_boundaries_sit_between_reports():
    stage = pd.DataFrame({"iter": [5, 10, 15, 20, 25], "value": [1, 1, 2, 4, 4]})
    assert stage_boundaries(stage) == [12.5, 17.5]


def test_importances_cover_the_searched_parameters(sweep_dir):
    imp, evaluator, n = param_importances(load_sweep(sweep_dir))
    assert set(imp) == {"scheduler", "beta_schedule"}
    assert sum(imp.values()) == pytest.approx(1.0)
    assert n == 8 and evaluator in ("fANOVA", "PED-ANOVA")


def test_importances_keep_conditional_parameters(tmp_path, monkeypatch):
    """`scheduler` exists only in trials with stages > 1: fANOVA (used when scikit-learn is
    installed) would drop it silently, so a conditional study never asks for fANOVA."""
    import sys
    import types
    from types import SimpleNamespace

    import optuna
    import optuna.importance  # noqa: F401  (loaded, so that the module itself is patched)

    def no_fanova(*a, **k):
        raise AssertionError("fANOVA asked for on a conditional study")

    monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))  # "installed"
    monkeypatch.setattr(sys.modules["optuna.importance"], "FanovaImportanceEvaluator", no_fanova)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="cond", direction="maximize",
                                storage=f"sqlite:///{db}",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(t):
        value = t.suggest_float("lr", 1e-3, 1e-1, log=True)
        if t.suggest_int("stages", 1, 4) > 1:
            value += {"uniform": 3.0, "log10": 0.0}[t.suggest_categorical(
                "scheduler", ["uniform", "log10"])]
        return value

    study.optimize(objective, n_trials=30)
    best = study.best_trial  # a suggestion equal to it: its copied outcome is not a new trial
    study.add_trial(optuna.trial.create_trial(
        params=best.params, distributions=best.distributions, value=best.value,
        user_attrs={"duplicate_of": best.number}))
    imp, evaluator, n = param_importances(SimpleNamespace(study_path=db, name="cond",
                                                          path=tmp_path))
    assert evaluator == "PED-ANOVA" and n == 30
    assert set(imp) == {"lr", "stages", "scheduler"} and imp["scheduler"] > 0


def test_trial_labels_name_the_keys_that_vary(sweep_dir):
    """key=value for what varies across the sweep's trials only; a key that did not apply to
    a trial (null) is left out."""
    s = load_sweep(sweep_dir)
    rows = s.trials.set_index("trial_id")
    label = trial_label(s, rows.loc["t000"].to_dict() | {"trial_id": "t000"})
    assert label == "t000 · iters=40, stages=4, beta_schedule=cosine, scheduler=uniform, seed=0"
    plain = trial_label(s, rows.loc["t011"].to_dict() | {"trial_id": "t011"})
    assert plain == "t011 · iters=30, stages=1, seed=1"


def test_group_labels_show_a_null_key_as_a_dash():
    assert group_label(["config.scheduler", "config.stages"], (None, 1)) == \
        "scheduler=—, stages=1"
    assert group_label(["config.t_drop_first"], True) == "t_drop_first=true"
