"""Rung rules: the axis ASHA counts rungs on (total iterations, final-stage iterations, or
total iterations gated until the final stage), so staged trials are judged fairly."""

from __future__ import annotations

import pytest

from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS
from dipddpm.sweep.spec.rung_rules import RUNG_RULES, rule_for

TINY = {"width": 8, "depth": 2, "input_depth": 4, "report_every": 5, "iters": 40}


def test_iter_final_counts_iterations_in_the_final_stage():
    m = METHODS.get("guided_dip")
    cfg = build(m.config_cls, {**m.presets["tiny"], **TINY, "stages": 3,
                               "scheduler": "sharp_linear", "sharp_linear_x": 10})
    final_start = cfg.iters - cfg.counts()[-1]
    assert final_start == 20
    reports = []
    problem = m.make_problem({"image": "skimage:astronaut", "size": 32}, cfg)
    m.run(cfg, problem, report=lambda it, mm, st: reports.append(mm), device="cpu")
    assert [r["iter_final"] for r in reports] == [max(0, r["iter"] - 20) for r in reports]
    d = METHODS.get("dip")
    dcfg = build(d.config_cls, {**TINY, "iters": 10})
    plain = []
    d.run(dcfg, problem, report=lambda it, mm, st: plain.append(mm), device="cpu")
    assert [r["iter_final"] for r in plain] == [r["iter"] for r in plain]


def test_rule_times():
    assert [RUNG_RULES.get(n).time(50, 0) for n in ("total", "final", "gated")] == [50, 0, 0]
    assert [RUNG_RULES.get(n).time(50, 20) for n in ("total", "final", "gated")] == [50, 20, 50]
    assert rule_for("dip", None).name == "total"
    assert rule_for("guided_dip", None).name == METHODS.get("guided_dip").rung_rule == "final"
    assert rule_for("guided_dip", "gated").time_attr == "iter_gated"


def _spec(**scheduler):
    from dipddpm.sweep.spec import parse_spec

    return lambda method="guided_dip": parse_spec(
        {"name": "r", "method": method, "preset": "tiny" if method == "guided_dip" else None,
         "metric": "psnr_best" if method == "guided_dip" else "val_loss",
         "problem": {"image": "skimage:astronaut", "size": 32},
         "scheduler": {"type": "asha", "grace_period": 10, **scheduler}}, load_problem=False)


def test_rung_rule_is_validated():
    with pytest.raises(ConfigError, match="scheduler.rung_rule: unknown rung rule 'finl'"):
        _spec(rung_rule="finl")()
    with pytest.raises(ConfigError, match="no notion"):
        _spec(rung_rule="final")("ddpm")
    assert _spec(rung_rule="final")().scheduler.rung_rule == "final"


def test_validate_warns_when_asha_could_judge_no_trial_under_the_final_rule(tmp_path):
    """tiny: 4 stages, `uniform` (k(i) = round(1 + 3i/(N-1)), docs/methods.md), whose end stages
    get half the iterations: 400 -> 67, 133, 133, 67. With iters searched in {200, 400} the
    longest final stage is 67 iterations, and a grace_period above it leaves ASHA idle."""
    from typer.testing import CliRunner

    from dipddpm.cli import app
    from dipddpm.sweep.spec import parse_spec

    def spec(grace: int, rule: str | None = None):
        return parse_spec(
            {"name": "r", "method": "guided_dip", "preset": "tiny", "metric": "psnr_best",
             "problem": {"image": "skimage:astronaut", "size": 32},
             "search": {"iters": {"choice": [200, 400]}},
             "scheduler": {"type": "asha", "grace_period": grace, "rung_rule": rule}},
            load_problem=False)

    (w,) = spec(68).warnings
    assert "longest final stage in the search space is 67 iterations" in w
    assert "grace_period (68)" in w and "<= 67" in w
    assert spec(67).warnings == ()
    assert spec(68, "gated").warnings == () and spec(68, "total").warnings == ()
    path = tmp_path / "idle.yaml"
    path.write_text("name: idle\nmethod: guided_dip\npreset: tiny\nmetric: psnr_best\n"
                    "problem: {image: 'skimage:astronaut', size: 32}\n"
                    f"storage: {tmp_path / 'results'}\n"
                    "scheduler: {type: asha, grace_period: 60}\nnum_samples: 1\n")
    r = CliRunner().invoke(app, ["sweep", "validate", str(path)])
    assert r.exit_code == 0, r.output
    assert "warning: scheduler: under rung_rule final" in r.stderr
    assert "ok: idle" in r.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_final_rule_judges_staged_trials_only_in_their_final_stage(ray_local, tmp_path):
    import pandas as pd
    import yaml

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = {"name": "rungs", "method": "guided_dip", "preset": "tiny", "metric": "psnr_best",
            "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25},
            "fixed": {**TINY, "stages": 3, "scheduler": "sharp_linear", "sharp_linear_x": 10},
            "search": {"lr": {"grid": [0.03, 0.01, 0.001, 0.0003]}},
            "searcher": {"type": "grid", "max_concurrent": 2}, "num_samples": 1,
            "scheduler": {"type": "asha", "grace_period": 5, "reduction_factor": 2,
                          "rung_rule": "final"},
            "checkpoint_every": 1000, "storage": str(tmp_path / "results")}
    path = tmp_path / "rungs.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_sweep(path, console=SweepConsole("psnr_best", "max", quiet=True))
    t = pd.read_parquet(f"{out.path}/trials")
    assert len(t) == 4
    assert (t["status"] == "PRUNED").any(), "ASHA stopped nothing"
    # the final stage starts at iteration 20: no trial is judged (stopped) before 20 + 5
    assert (t["iters_done"] >= 25).all(), t[["status", "iters_done"]]
