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
