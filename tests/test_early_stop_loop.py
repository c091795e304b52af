"""The early-stopping rule inside the fitting loop: its pick is the output of iteration
iter_es (psnr_es equals that iteration's psnr_gt), `es_rule: none` picks the last output, the
summary and `fit --json` carry iter_es / psnr_es / es_gap_db, and psnr_es is a sweep objective
for the DIP family only."""

from __future__ import annotations

import pytest

from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS
from dipddpm.sweep.spec import parse_spec

TINY = {"width": 8, "depth": 3, "input_depth": 4, "report_every": 1, "iters": 60}


def run(problem, **over):
    m = METHODS.get("dip")
    cfg = build(m.config_cls, {**TINY, **over})
    reports = []
    res = m.run(cfg, problem, report=lambda it, mt, st: reports.append(dict(mt)), seed=0,
                device="cpu")
    return res, reports


@pytest.mark.parametrize("rule", ["wmv", "emv"])
def test_the_pick_is_the_output_of_iter_es(tiny_image_problem, rule):
    res, reports = run(tiny_image_problem, es_rule=rule, es_window=10, es_patience=15)
    by_iter = {r["iter"]: r for r in reports}
    it = res.metrics["iter_es"]
    assert 10 <= it <= 60
    assert res.metrics["psnr_es"] == pytest.approx(by_iter[it]["psnr_gt"], abs=1e-4)
    assert res.metrics["es_gap_db"] == pytest.approx(
        res.metrics["psnr_gt_best"] - res.metrics["psnr_es"])
    assert reports[-1]["iter_es"] == it and reports[-1]["psnr_es"] == pytest.approx(
        res.metrics["psnr_es"])


def test_no_rule_and_too_short_pick_the_last_output(tiny_image_problem):
    for over in ({"es_rule": "none"}, {"es_window": 100}):  # 60 iterations < the window
        res, _ = run(tiny_image_problem, **over)
        assert res.metrics["iter_es"] == 60
        assert res.metrics["psnr_es"] == pytest.approx(res.metrics["psnr_gt_final"], abs=1e-4)


def test_the_rule_does_not_change_the_fit(tiny_image_problem):
    a, _ = run(tiny_image_problem, es_rule="none")
    b, _ = run(tiny_image_problem, es_rule="wmv", es_window=10)
    assert a.metrics["psnr_gt_final"] == b.metrics["psnr_gt_final"]


def test_psnr_es_objective_for_the_dip_family_only():
    spec = {"name": "t", "method": "dip", "preset": "tiny", "metric": "psnr_es",
            "problem": {"image": "skimage:astronaut", "size": 32},
            "fixed": {"iters": 20, "width": 8, "depth": 3, "input_depth": 4},
            "scheduler": {"type": "none"}}
    assert parse_spec(spec).metric == "psnr_es"
    bad = {**spec, "method": "ddpm", "preset": None, "fixed": {},
           "problem": {"dataset": "skimage-patches", "size": 16}}
    with pytest.raises(ConfigError, match="'psnr_es' is not reported by ddpm"):
        parse_spec(bad)


def test_a_staged_fit_picks_its_early_stop_in_the_final_stage():
    """Earlier stages fit noisy targets by design: the GT-free rule watches the final one."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    m = METHODS.get("guided_dip")
    cfg = build(m.config_cls, {**m.presets["tiny"], "width": 8, "depth": 2, "input_depth": 4,
                               "iters": 60, "stages": 3, "scheduler": "uniform",
                               "report_every": 5, "es_window": 4, "es_patience": 1000})
    final_start = cfg.iters - cfg.counts()[-1]
    problem = m.make_problem({"image": "skimage:astronaut", "size": 32}, cfg)
    reports = []
    res = m.run(cfg, problem, report=lambda it, mm, st: reports.append(mm), device="cpu")
    assert 0 < final_start < cfg.iters
    assert res.metrics["iter_es"] > final_start
    assert all(r["iter_es"] == r["iter"] for r in reports if r["iter"] <= final_start)
