"""BM3D, the classical baseline, as a registered method: it beats the noisy input on a small
built-in image, reports the keys a DIP fit reports, refuses bad config in one line, runs from
`dipddpm fit bm3d`, and runs as a sweep trial writing the same Parquet rows."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods import FIT_METRICS, METHODS

pytest.importorskip("bm3d")


def problem(grey: bool):
    m = METHODS.get("bm3d")
    spec = {"image": "skimage:camera" if grey else "skimage:astronaut", "size": 32,
            "sigma": 25, "seed": 0, "grey": grey}
    return m, m.make_problem(spec, build(m.config_cls, {}))


@pytest.mark.parametrize("grey", [True, False], ids=["bm3d", "cbm3d"])
def test_bm3d_beats_the_noisy_input_and_reports_fit_keys(grey):
    m, p = problem(grey)
    reports = []
    res = m.run(build(m.config_cls, {}), p, report=lambda it, mt, st: reports.append(mt))
    assert res.metrics["psnr_gt_final"] > res.metrics["psnr_noisy_input"] + 3
    assert res.images["output"].shape == p.observed.shape
    assert len(reports) == 1 and set(FIT_METRICS) <= set(reports[0])
    assert reports[0]["psnr_gt"] == pytest.approx(res.metrics["psnr_gt_final"])


def test_sigma_is_the_problem_s_unless_set():
    m, p = problem(True)
    low = m.run(build(m.config_cls, {"sigma": 5.0}), p)
    assert low.metrics["sigma_used"] == 5.0
    # told a quarter of the true noise, BM3D removes less of it
    assert low.metrics["psnr_gt_final"] < m.run(build(m.config_cls, {}), p).metrics[
        "psnr_gt_final"]


@pytest.mark.parametrize("values,words", [({"iters": 5}, "iters must be 1"),
                                          ({"sigma": -1}, "sigma must be > 0"),
                                          ({"profile": "fast"}, "profile")])
def test_bad_config_is_one_line(values, words):
    with pytest.raises(ConfigError, match=words):
        build(METHODS.get("bm3d").config_cls, values)


def test_cli_fit_bm3d_json():
    r = CliRunner().invoke(app, ["fit", "bm3d", "--image", "skimage:camera", "--grey",
                                 "--size", "32", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.splitlines()[-1])
    assert out["method"] == "bm3d" and out["psnr_gt_final"] > out["psnr_noisy_input"]


@pytest.mark.ray
@pytest.mark.slow
def test_bm3d_sweep_writes_trials_rows(ray_local, tmp_path):
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = {"name": "b", "method": "bm3d", "metric": "psnr_best",
            "problem": {"image": "skimage:camera", "size": 32, "sigma": 25, "grey": True},
            "search": {"profile": {"choice": ["np", "vn"]}},
            "searcher": {"type": "optuna", "max_concurrent": 2}, "scheduler": {"type": "none"},
            "num_samples": 2, "storage": str(tmp_path / "r")}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_sweep(path, console=SweepConsole("psnr_best", "max", quiet=True))
    trials = pd.read_parquet(f"{out.path}/trials")
    assert set(trials["status"]) == {"COMPLETED"}, trials[["status", "error"]]
    assert (trials["psnr_gt_best"] > trials["psnr_noisy_input"]).all()
