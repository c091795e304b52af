"""The Python API (`dipddpm.load`, `run`, `fit`): the numbers `dipddpm results summarize` and
`results effect` print, its docstring examples run as doctests, and `import dipddpm` stays
light."""

from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli_json(*args: str) -> dict:
    from typer.testing import CliRunner

    from dipddpm.cli import app

    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def as_json(obj):
    """What `--json` prints of a value (NaN as null), to compare like with like."""
    from dipddpm.analysis.tables import records

    if hasattr(obj, "to_dict"):
        obj = records(obj)
    text = json.dumps(obj, allow_nan=True).replace("NaN", "null")
    return json.loads(text)


def test_load_gives_the_numbers_of_results_summarize_and_effect(results_sweep):
    import dipddpm

    results = dipddpm.load(results_sweep)
    assert len(results.trials) == 12 and results.name == "fixture"
    summary = cli_json("results", "summarize", str(results_sweep), "--top", "4")
    assert as_json(results.best(n=4)) == summary["top"]
    by = cli_json("results", "summarize", str(results_sweep), "--by", "stages")
    assert as_json(results.summary(by="stages").groups) == by["groups"]
    ranked = cli_json("results", "summarize", str(results_sweep), "--metric", "psnr_gt_final")
    assert as_json(results.best(n=10, by="psnr_gt_final")) == ranked["top"]

    cli = cli_json("results", "effect", str(results_sweep), "--a", "stages=1", "--b",
                   "stages=4")
    v = results.effect(a={"stages": 1}, b={"stages": 4})
    assert v.as_dict() == cli
    assert (v.mean, v.ci, v.wins, v.ties, v.losses, v.p, v.per_image, v.n) == (
        cli["mean_delta"], tuple(cli["ci95"]) if cli["ci95"] else None, cli["wins"],
        cli["ties"], cli["losses"], cli["p_wilcoxon"], cli["per_image_delta"], cli["n_pairs"])
    assert "B (stages=4) - A (stages=1)" in str(v)
    fig = v.plot()
    assert list(fig.data[0].x) == list(cli["per_image_delta"])

    # the long metrics table: every trial-level report, as the Parquet files hold them
    import pandas as pd

    raw = pd.read_parquet(results_sweep / "metrics")
    assert len(results.metrics) == int(raw["image"].isna().sum())
    assert results.pairs.empty and results.baselines.empty  # not a study


def test_load_errors_are_the_cli_errors(tmp_path):
    import dipddpm
    from dipddpm.errors import DipddpmError

    with pytest.raises(DipddpmError, match="does not exist"):
        dipddpm.load(tmp_path / "nowhere")


@pytest.mark.slow
def test_report_writes_the_html_page(results_sweep, tmp_path):
    import dipddpm

    path = dipddpm.load(results_sweep).report(tmp_path / "r.html", a={"stages": 1},
                                              b={"stages": 4})
    text = path.read_text()
    assert path == tmp_path / "r.html" and "paired-effect" in text and "t000" in text


def test_import_dipddpm_loads_no_heavy_package():
    code = ("import sys, dipddpm; heavy = [m for m in ('torch', 'ray', 'pandas', 'pyarrow', "
            "'mlflow', 'wandb') if m in sys.modules]; print(heavy); "
            "assert callable(dipddpm.load) and callable(dipddpm.fit)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def run_doctests(module, chdir: Path, monkeypatch, skip: tuple[str, ...] = ()) -> int:
    """Run a module's docstring examples (as `pytest --doctest-modules` would) in `chdir`;
    returns how many examples ran. Fails on the first failing example's report."""
    monkeypatch.chdir(chdir)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for test in finder.find(module):
        if test.name.rsplit(".", 1)[-1] in skip or not test.examples:
            continue
        out: list[str] = []
        result = runner.run(test, out=out.append)
        assert result.failed == 0, "".join(out)
        ran += result.attempted
    return ran


def test_api_docstring_examples_run(results_sweep, tmp_path, monkeypatch):
    """`results/quick` in the examples is, here, the fixture sweep (tests/results_data.py)."""
    import importlib

    fit, results, run = (importlib.import_module(f"dipddpm.api.{m}")
                         for m in ("fit_image", "results", "run_spec"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quick").symlink_to(results_sweep)
    ran = run_doctests(results, tmp_path, monkeypatch)
    ran += run_doctests(fit, tmp_path, monkeypatch)
    ran += run_doctests(run, tmp_path, monkeypatch, skip=("run",))
    ran += run_doctests(importlib.import_module("dipddpm.api.fit_request"), tmp_path,
                        monkeypatch)
    assert ran >= 15


@pytest.mark.slow
@pytest.mark.ray
def test_run_docstring_example_runs_a_smoke_sweep(ray_local, tmp_path, monkeypatch):
    import importlib

    (tmp_path / "sweeps").mkdir()
    shutil.copy(REPO / "sweeps" / "quick.yaml", tmp_path / "sweeps" / "quick.yaml")
    module = importlib.import_module("dipddpm.api.run_spec")
    assert run_doctests(module, tmp_path, monkeypatch) == 8  # as_sets 3, resume 2, run 3
    assert (tmp_path / "results" / "quick-smoke" / "trials").is_dir()


@pytest.mark.slow
@pytest.mark.ray
def test_run_takes_a_spec_mapping_and_overrides(ray_local, tmp_path):
    import dipddpm

    spec = {"name": "mapped", "method": "noop", "problem": {}, "metric": "score",
            "fixed": {"iters": 6, "report_every": 2}, "search": {"x": {"uniform": [0, 1]}},
            "scheduler": {"type": "none"}, "num_samples": 5}
    r = dipddpm.run(spec, storage=str(tmp_path), quiet=True, num_samples=1,  # per grid point
                    fixed={"iters": 4}, search={"x": {"grid": [0.1, 0.2]}},
                    searcher={"type": "grid"})
    assert r.name == "mapped" and len(r.trials) == 2
    assert sorted(r.trials["config.x"]) == [0.1, 0.2]
    assert (r.trials["iters_done"] == 4).all()
    assert (r.trials["config.report_every"] == 2).all()  # fixed: merged, not replaced
