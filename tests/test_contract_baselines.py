"""The baseline contract (dipddpm/sweep/baselines.py), over every registered baseline: a study's
spec takes it by name, and it runs on every (image, replicate) pair of the study's own
observations, each row holding its method's declared summary keys (methods/keys.py). The toy
baseline registered in a test is tests/test_contributing.py's."""

from __future__ import annotations

import math

import pytest

from dipddpm.methods import METHODS
from dipddpm.sweep.baselines import BASELINES, baseline_rows


@pytest.mark.parametrize("name", BASELINES.names())
def test_every_baseline_runs_on_a_studys_pairs(name):
    from dipddpm.sweep.spec import parse_spec

    raw = {"name": "b", "method": "dip", "metric": "psnr_best", "preset": "tiny",
           "problem": {"images": ["skimage:camera"], "replicates": 2, "size": 32,
                       "sigma": 25}, "search": {"lr": {"grid": [0.01]}},
           "searcher": {"type": "grid"}, "scheduler": {"type": "none"}, "baselines": [name]}
    spec = parse_spec(raw, load_problem=False)
    assert spec.baselines == (name,)
    rows = baseline_rows(spec, name)
    assert [(r["baseline"], r["replicate"]) for r in rows] == [(name, 0), (name, 1)]
    keys = METHODS.get(BASELINES.get(name).method).summary
    for r in rows:
        assert set(keys) <= set(r)
        assert all(math.isfinite(r[k]) for k in keys if isinstance(r[k], float))
    assert rows[0]["noise_seed"] != rows[1]["noise_seed"] or rows[0]["seed"] != rows[1]["seed"]


# ---------------------------------------------------------------- a toy, registered here
@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_baseline_goes_through_validate_run_summarize_and_effect(ray_local, tmp_path):
    """A variant registered here (NL-means with a larger search window) is taken by a study's
    spec through `sweep validate`, one Ray run (the baseline runs on the driver, on the study's
    own observations) and `results summarize`, and `results effect --a baseline=NAME` pairs it
    with the trial on the same observations, with no other edit."""
    import json

    from contract_sweep import cli, through_everything

    from dipddpm.sweep.baselines import Baseline

    BASELINES.register("nlm_wide")(Baseline("nlm", {"patch_distance": 9}, "a test toy"))
    try:
        spec = {"name": "base-toy", "method": "dip", "preset": "tiny", "metric": "psnr_best",
                "problem": {"images": ["skimage:camera"], "replicates": 2, "size": 32,
                            "sigma": 25},
                "fixed": {"iters": 10, "report_every": 5}, "search": {"lr": {"grid": [0.01]}},
                "searcher": {"type": "grid"}, "scheduler": {"type": "none"},
                "num_samples": 1, "resources": {"cpu": 1},
                "storage": str(tmp_path / "results"),
                "baselines": ["nlm_wide"]}
        checked, outcome, summary = through_everything(tmp_path, spec)
        assert checked["ok"] and summary["counts"]["COMPLETED"] == 1
        verdict = json.loads(cli("results", "effect", str(outcome.path), "--a",
                                 "baseline=nlm_wide", "--metric", "psnr_gt_final", "--json"))
    finally:
        BASELINES.unregister("nlm_wide")
    assert "nlm_wide" not in BASELINES
    assert verdict["n_pairs"] == 2, verdict  # both replicates, paired with the trial's pairs
