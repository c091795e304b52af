"""One module opens Optuna studies (dipddpm/dataset/optuna_study.py): the searcher, `sweep status`
and the importance plot read through it, and analysis/ never imports optuna itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dipddpm"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_analysis_does_not_import_optuna():
    users = [p.name for p in (PKG / "analysis").glob("*.py") if "optuna" in _imports(p)]
    assert users == []


def _strings(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("module", ["sweep/search.py", "sweep/status.py", "analysis/plots.py"])
def test_the_readers_open_the_study_through_study_py(module):
    strings = _strings(PKG / module)
    assert not [v for v in strings if "sqlite:" in v or "duplicate_of" in v or v == "optuna.db"]
    text = (PKG / module).read_text()
    assert "load_study(" not in text and "dipddpm.dataset.optuna_study" in text


def test_state_counts_count_a_duplicate_once(tmp_path):
    import optuna

    from dipddpm.dataset.optuna_study import DUPLICATE, open_study, state_counts

    db = tmp_path / "optuna.db"
    study = open_study(db, "s", "maximize", optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    best = study.best_trial
    study.add_trial(optuna.trial.create_trial(params=best.params,
                                              distributions=best.distributions,
                                              value=best.value, user_attrs={DUPLICATE: 0}))
    study.enqueue_trial({"x": 0.5})
    study.ask()  # running
    assert state_counts(db, "s") == {"COMPLETE": 3, "RUNNING": 1}
    again = open_study(db, "s", "maximize", None)  # loads the same study
    assert len(again.trials) == 5
