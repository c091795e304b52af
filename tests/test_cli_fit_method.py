"""`dipddpm fit METHOD`: a command for every registered method, its options from the
method's config dataclass; the hand-written forms keep theirs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.methods import METHODS, Method, Result
from dipddpm.methods.noop import score


def invoke(*args):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_noop_gets_a_command_whose_options_are_its_config_fields():
    r = invoke("fit", "noop", "--iters", "4", "--x", "0.3", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["config"] == {"iters": 4, "x": 0.3, "report_every": 1, "sleep_s": 0.0}
    assert out["score_best"] == pytest.approx(score(0.3, 4))
    # --set works too; a field's own option wins over it
    r = invoke("fit", "noop", "--set", "x=0.9", "--set", "iters=2", "--x", "0.1", "--json")
    assert json.loads(r.output.strip().splitlines()[-1])["config"]["x"] == 0.1
    assert "--report-every" in invoke("fit", "noop", "--help").output


def test_bad_values_are_one_line_and_exit_2():
    r = invoke("fit", "noop", "--iters", "x")
    assert r.exit_code == 2 and "iters must be an integer, got 'x'" in r.output
    r = invoke("fit", "noop", "--save", "out.png")  # refused before the run: no such option
    assert r.exit_code == 2 and "No such option: --save" in r.output
    assert not Path("out.png").exists()


def test_the_hand_written_forms_keep_their_options():
    for name in ("guided-dip", "guided_dip"):  # a registry name resolves to its form
        out = invoke("fit", name, "--help").output
        assert "--image" in out and "--replicates" in out
    assert "--dataset" in invoke("fit", "ddpm", "--help").output
    assert "--checkpoint" in invoke("fit", "dip_prior_ddpm", "--help").output


@dataclass(frozen=True)
class ToyConfig:
    iters: int = 3
    gain: float = 2.0


def run_toy(cfg, problem=None, report=None, seed=0, resume=None, device=None) -> Result:
    for it in range(1, cfg.iters + 1):
        report(it, {"iter": it, "y": cfg.gain * it}, dict)
    return Result(metrics={"y_final": cfg.gain * cfg.iters, "problem": problem})


def test_a_method_registered_at_run_time_gets_its_command():
    METHODS.register("toy_gain")(Method(
        name="toy_gain", config_cls=ToyConfig, run=run_toy,
        make_problem=lambda spec, cfg: dict(spec), metrics=("iter", "y"), presets={}))
    try:
        assert "toy-gain" in invoke("fit", "--help").output
        r = invoke("fit", "toy-gain", "--gain", "0.5", "--problem", "k=3", "--json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.output.strip().splitlines()[-1])
        assert out["y_final"] == 1.5 and out["problem"] == {"k": 3}
    finally:
        METHODS.unregister("toy_gain")
    assert invoke("fit", "toy-gain", "--json").exit_code != 0
