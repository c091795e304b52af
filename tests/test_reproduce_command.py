"""Every trials row carries `reproduce`: a `dipddpm fit ...` command that re-runs exactly that
trial without Ray. Running it gives the trial's own numbers."""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.sweep.reproduce import command


def test_fit_methods_get_a_command_others_none():
    cfg = {"iters": 30, "noise_affine": (0.5, 0.5), "exp_c": None, "lr": 1e-05}
    cmd = command("guided_dip", "tiny", cfg, {"image": "a b.png", "size": 32, "seed": 4,
                                              "observation": "forward"}, seed=3)
    args = shlex.split(cmd)
    assert args[:3] == ["dipddpm", "fit", "guided-dip"] and "a b.png" in args
    assert args[args.index("--seed") + 1] == "3" and args[args.index("--noise-seed") + 1] == "4"
    assert "noise_affine=[0.5, 0.5]" in args and "exp_c=null" in args
    assert "observation=forward" in args
    assert command("ddpm", None, {}, {"dataset": "mnist"}, 0) is None


@pytest.mark.parametrize("stages", [1, 4], ids=["plain", "guided"])
def test_reproduce_gives_the_trial_s_numbers(results_sweep, stages):
    trials = pd.read_parquet(results_sweep / "trials")
    done = trials[(trials.status == "COMPLETED") & (trials["config.stages"] == stages)]
    row = done.sort_values("trial_id").iloc[-1]  # seed 1: trial and noise seeds differ
    args = shlex.split(row["reproduce"])[1:] + ["--json", "--device", "cpu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.splitlines()[-1])
    for key in ("psnr_gt_best", "psnr_gt_final", "psnr_best_iter", "ssim_gt_final"):
        assert out[key] == pytest.approx(row[key], rel=1e-9, abs=1e-12), key
