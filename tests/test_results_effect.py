"""Paired verdicts (`dipddpm results effect`): a known shift is recovered inside its CI, no
shift gives a CI around 0, one pair gives no CI, the CLI pairs the best configurations of two
groups of a real sweep by (image, seed), and bad filters are one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dipddpm.analysis.effect import paired
from dipddpm.cli import app

runner = CliRunner()


def side(values, images=None) -> pd.DataFrame:
    n = len(values)
    images = images or [f"img{i % 3}" for i in range(n)]
    return pd.DataFrame({"image": images, "replicate": [i // 3 for i in range(n)],
                         "value": values})


def test_a_known_shift_is_recovered_inside_its_ci():
    rng = np.random.default_rng(0)
    a = 25 + rng.normal(0, 1.5, 36)  # images differ a lot; the pairing removes that
    b = a + 0.5 + rng.normal(0, 0.3, 36)
    e = paired(side(list(a)), side(list(b)), "psnr", "A", "B")
    assert e.n == 36 and e.ci[0] < 0.5 < e.ci[1] and e.ci[0] > 0
    assert e.mean == pytest.approx(float(np.mean(b - a)))
    assert e.wins > 30 and e.wins + e.ties + e.losses == 36
    assert e.p_wilcoxon < 1e-4
    assert set(e.per_image) == {"img0", "img1", "img2"}
    assert e.per_image["img0"] == pytest.approx(float(np.mean((b - a)[0::3])))


def test_no_shift_ci_covers_zero():
    rng = np.random.default_rng(1)
    a = 25 + rng.normal(0, 1.5, 30)
    e = paired(side(list(a)), side(list(a + rng.normal(0, 0.3, 30))), "psnr", "A", "B")
    assert e.ci[0] < 0 < e.ci[1] and e.p_wilcoxon > 0.05


def test_one_pair_says_so():
    e = paired(side([25.0]), side([26.0]), "psnr", "A", "B")
    assert e.n == 1 and e.ci is None and e.mean == 1.0 and "no confidence interval" in e.note
    e = paired(side([25.0], ["x"]), side([26.0], ["y"]), "psnr", "A", "B")
    assert e.n == 0 and e.mean is None and "nothing to pair" in e.note


def test_cli_pairs_the_best_configurations_by_seed(results_sweep):
    r = runner.invoke(app, ["results", "effect", str(results_sweep), "--a", "stages=1",
                            "--b", "stages=4", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    trials = pd.read_parquet(results_sweep / "trials")
    done = trials[trials.status == "COMPLETED"]
    plain = done[done["config.stages"] == 1].set_index("seed")["psnr_gt_best"]
    guided = done[done["config.stages"] == 4]
    cols = ["config.scheduler", "config.beta_schedule"]
    best = guided.groupby(cols)["psnr_gt_best"].mean().idxmax()
    mine = guided.set_index(cols).loc[best].set_index("seed")["psnr_gt_best"]
    delta = (mine - plain).dropna()
    assert out["n_pairs"] == len(delta) == 2
    assert out["mean_delta"] == pytest.approx(float(delta.mean()))
    assert out["wins"] + out["ties"] + out["losses"] == 2 and len(out["ci95"]) == 2
    text = runner.invoke(app, ["results", "effect", str(results_sweep), "--a", "stages=1",
                               "--b", "stages=4"])
    assert text.exit_code == 0 and "95% bootstrap CI" in text.output, text.output


@pytest.mark.parametrize("args,words", [
    (["--a", "stages=7", "--b", "stages=4"], "--a stages=7: no COMPLETED trial"),
    (["--a", "stagez=1", "--b", "stages=4"], "unknown --a key 'stagez'"),
    (["--a", "stages"], "--a takes KEY=VALUE"),
    ([], "give --a and/or --b"),
    (["--a", "stages=1", "--b", "stages=4", "--metric", "nope"], "--metric nope"),
])
def test_bad_input_is_one_line(results_sweep, args, words):
    r = runner.invoke(app, ["results", "effect", str(results_sweep), *args])
    assert r.exit_code == 2, r.output
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_report_carries_the_paired_verdict(results_sweep, tmp_path):
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["results", "report", str(results_sweep), "--out", str(out),
                            "--a", "stages=1", "--b", "stages=4"])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "Paired verdict: B against A" in page and "95% bootstrap CI" in page
    assert "id=\"paired-effect\"" in page or "id='paired-effect'" in page
    bad = tmp_path / "bad.html"
    r = runner.invoke(app, ["results", "report", str(results_sweep), "--out", str(bad),
                            "--a", "stages=7", "--b", "stages=4"])
    assert r.exit_code == 2 and "no COMPLETED trial" in r.stderr and not bad.exists()
