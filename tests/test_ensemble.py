"""Ensembles as an output rule (`output: ensemble`, methods/output_rules.py and
study_ensemble.py): the mean of a study's replicates' outputs, at each replicate's GT-free pick
and at its oracle best, in rows of its own that `results effect` pairs with single runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import torch
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS
from dipddpm.methods.output_rules import OUTPUTS, ensemble_metrics
from dipddpm.methods.study_pairs import build_pairs, pair_specs
from dipddpm.methods.study_run import run_study
from dipddpm.metrics import psnr

runner = CliRunner()
TINY = {"iters": 8, "report_every": 4, "width": 8, "depth": 2, "input_depth": 4,
        "es_window": 3, "es_patience": 4, "lr": 0.05}
STUDY = {"images": ["skimage:astronaut", "skimage:camera"], "replicates": 2, "size": 16,
         "sigma": 25, "seed": 0, "shared_noise": True}


def test_ensemble_metrics_are_those_of_the_mean_image():
    clean = torch.full((1, 8, 8), 0.5)
    a, b = torch.full((1, 8, 8), 0.4), torch.full((1, 8, 8), 0.7)  # mean 0.55: MSE 0.0025
    images = [{name: img for name in ("output", "output_sm", "output_es", "output_es_sm",
                                      "output_oracle", "output_oracle_sm")} for img in (a, b)]
    m = ensemble_metrics(images, clean, clean, OUTPUTS.get("ensemble"))
    assert m["psnr_output"] == pytest.approx(10 * torch.log10(torch.tensor(1 / 0.0025)).item())
    assert m["psnr_gt_best"] == m["psnr_es_sm"] == m["psnr_output"] and m["n_members"] == 2
    assert m["psnr_output"] > max(psnr(a, clean), psnr(b, clean))  # errors of opposite sign


def test_shared_noise_gives_the_replicates_one_observation():
    own = pair_specs({**STUDY, "shared_noise": False}, seed=5)
    shared = pair_specs(STUDY, seed=5)
    assert [p.problem["seed"] for p in own] == [0, 1, 0, 1]
    assert [p.problem["seed"] for p in shared] == [0, 0, 0, 0]
    assert [p.seed for p in shared] == [5, 6, 5, 6]  # the fits still differ
    with pytest.raises(ConfigError, match="shared_noise must be true or false"):
        pair_specs({**STUDY, "shared_noise": "yes"}, seed=0)


@pytest.fixture(scope="module")
def ensemble_study():
    method = METHODS.get("dip")
    cfg = build(method.config_cls, {**method.presets["tiny"], **TINY, "output": "ensemble"})
    pairs = build_pairs(method, STUDY, cfg, seed=0)
    return cfg, pairs, run_study(method, cfg, pairs, mode="fused")


def test_a_study_keeps_each_replicate_and_adds_an_ensemble_row_per_image(ensemble_study):
    cfg, pairs, study = ensemble_study
    assert study.mode == "fused"
    singles = [r for r in study.pairs if not r["ensemble"]]
    ens = [r for r in study.pairs if r["ensemble"]]
    assert len(singles) == 4 and len(ens) == 2 and len(study.images) == 6
    for row in ens:
        assert row["replicate"] == -1 and row["n_members"] == 2 and row["seed"] is None
        idx = [i for i, p in enumerate(pairs) if p.spec.image == row["image"]]
        clean = pairs[idx[0]].problem.clean
        for key, name in (("psnr_output", "output_es_sm"), ("psnr_es", "output_es"),
                          ("psnr_gt_best", "output_oracle"), ("psnr_gt_final", "output")):
            mean = torch.stack([study.images[i][name] for i in idx]).mean(0)
            assert row[key] == pytest.approx(psnr(mean, clean), abs=1e-9), key
        assert row["noise_seed"] == singles[idx[0]]["noise_seed"]
    for i, row in enumerate(singles):  # each replicate's oracle image is its psnr_gt_best
        assert psnr(study.images[i]["output_oracle"], pairs[i].problem.clean) == \
            pytest.approx(row["psnr_gt_best"], abs=1e-4)
        assert row["psnr_output"] == row["psnr_es_sm"]
    summary = study.result.metrics
    assert summary["ens_psnr_output"] == pytest.approx(sum(r["psnr_output"] for r in ens) / 2)


def _write_trial(sweep_dir, spec, tid: str, params: dict) -> None:
    """One study trial run in this process, written as the recorder writes it."""
    from dipddpm.dataset import parquet
    from dipddpm.sweep.rows import trial_row
    from dipddpm.sweep.trainable import trial_config

    method = METHODS.get(spec.method)
    cfg = trial_config(spec, params)
    pairs = build_pairs(method, dict(spec.problem), cfg, spec.trial_seed(params))
    study = run_study(method, cfg, pairs, mode="fused")
    now = datetime.now(timezone.utc)
    result = {"iter": cfg.iters, "info": {"budget": cfg.iters, "summary": study.result.metrics,
                                          "pairs": study.pairs}}
    row = trial_row(spec, tid, params, result, status="COMPLETED", error=None, retries=0,
                    started=now, ended=now, provenance={"git_sha": "0" * 40})
    parquet.write_trial_row(sweep_dir, row)
    parquet.write_pairs(sweep_dir, spec.name, tid, study.pairs)


def test_results_effect_compares_an_ensemble_with_a_single_run(tmp_path):
    """The ensemble rows of one trial against the single runs of another (and of itself),
    paired by observation: B - A per image is the ensemble minus the mean of A's replicates
    of that image."""
    import pandas as pd

    from dipddpm.sweep.spec import parse_spec

    spec = parse_spec({"name": "ens", "method": "dip", "preset": "tiny", "problem": STUDY,
                       "metric": "psnr_output", "fixed": TINY,
                       "search": {"output": {"grid": ["es_sm", "ensemble"]}},
                       "searcher": {"type": "grid"}, "scheduler": {"type": "none"},
                       "storage": str(tmp_path)})
    d = tmp_path / "ens"
    _write_trial(d, spec, "t0", {"output": "es_sm"})
    _write_trial(d, spec, "t1", {"output": "ensemble"})
    pairs = pd.read_parquet(d / "pairs")
    single = pairs[(pairs.trial_id == "t0")].groupby("image")["psnr_output"].mean()
    ens = pairs[(pairs.trial_id == "t1") & pairs.ensemble].set_index("image")["psnr_output"]
    r = runner.invoke(app, ["results", "effect", str(d), "--a", "output=es_sm", "--b",
                            "output=ensemble", "--b", "ensemble=true", "--metric",
                            "psnr_output", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["n_pairs"] == 2 and "observation" in out["note"]
    assert out["mean_delta"] == pytest.approx(float((ens - single).mean()))
    r = runner.invoke(app, ["results", "effect", str(d), "--a", "output=ensemble", "--b",
                            "output=ensemble", "--b", "ensemble=true", "--metric",
                            "psnr_output", "--json"])
    own = pairs[(pairs.trial_id == "t1") & ~pairs.ensemble].groupby("image")["psnr_output"]
    assert json.loads(r.output)["mean_delta"] == pytest.approx(float((ens - own.mean()).mean()))
    r = runner.invoke(app, ["results", "effect", str(d), "--a", "output=es_sm", "--b",
                            "output=es_sm", "--b", "ensemble=true", "--metric", "psnr_output"])
    assert r.exit_code == 2 and "no ensemble rows" in r.stderr


@pytest.mark.parametrize("problem,words", [
    ({**STUDY, "replicates": 1}, "problem.replicates is 1"),
    ({**STUDY, "shared_noise": False}, "shared_noise: true"),
])
def test_a_spec_with_an_ensemble_it_cannot_have_is_refused(problem, words):
    from dipddpm.sweep.spec import parse_spec

    with pytest.raises(ConfigError, match=words):
        parse_spec({"name": "e", "method": "dip", "preset": "tiny", "problem": problem,
                    "metric": "psnr_output", "fixed": {**TINY, "output": "ensemble"},
                    "scheduler": {"type": "none"}})


def test_fit_replicates_reports_their_ensemble():
    r = runner.invoke(app, ["fit", "dip", "--image", "skimage:astronaut", "--size", "16",
                            "--preset", "tiny", "--iters", "4", "--replicates", "2", "--set",
                            "output=ensemble", "--set", "depth=2", "--set", "width=8",
                            "--fusion", "fused", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ensemble"]["n_members"] == 2 and "psnr_gt_best" in out["ensemble"]
    assert out["psnr_output"] == out["psnr_es_sm"]


def test_an_ensemble_rows_reproduce_command_fits_its_replicates_at_once():
    from dipddpm.sweep.reproduce import pair_commands
    from dipddpm.sweep.spec import parse_spec

    spec = parse_spec({"name": "e", "method": "dip", "preset": "tiny", "problem": STUDY,
                       "metric": "psnr_output", "fixed": {**TINY, "output": "ensemble"},
                       "scheduler": {"type": "none"}})
    rows = [{"image": "skimage:camera", "replicate": 1},
            {"image": "skimage:camera", "replicate": -1, "ensemble": True, "n_members": 2}]
    one, ens = pair_commands(spec, {}, rows)
    assert "--seed 1" in one and "--replicates" not in one
    assert ens.endswith("--replicates 2") and "--seed 0" in ens and "output=ensemble" in ens
    assert "--noise-seed 0" in one and "--noise-seed 0" in ens  # one observation
