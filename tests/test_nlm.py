"""NL-means, the second classical baseline (dipddpm/methods/nlm.py): it is scikit-image's
`denoise_nl_means` with the documented parameters for the problem's sigma, those parameters
follow sigma, the channel axis must agree with the image, and it runs from `dipddpm fit nlm`
and as a study's `baselines:` entry beside BM3D."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_nl_means
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.config import build
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods import FIT_METRICS, METHODS
from dipddpm.methods.nlm import nlm_params


def problem(grey: bool, sigma: float = 25):
    m = METHODS.get("nlm")
    spec = {"image": "skimage:camera" if grey else "skimage:astronaut", "size": 32,
            "sigma": sigma, "seed": 0, "grey": grey}
    return m, m.make_problem(spec, build(m.config_cls, {}))


def skimage_direct(y: torch.Tensor, sigma255: float, h_per_sigma: float) -> np.ndarray:
    """scikit-image called on the same array with the documented parameters written out:
    the NL-means gallery example's 5x5 patches, 13x13 window, h = 0.6 sigma (fast, sigma
    given)."""
    arr = y.double().permute(1, 2, 0).numpy()
    grey = arr.shape[2] == 1
    s = sigma255 / 255
    out = denoise_nl_means(arr[..., 0] if grey else arr, h=h_per_sigma * s, sigma=s,
                           patch_size=5, patch_distance=6, fast_mode=True,
                           channel_axis=None if grey else -1)
    return np.clip(out[..., None] if grey else out, 0, 1).astype(np.float32)


@pytest.mark.parametrize("grey", [True, False], ids=["grey", "colour"])
@pytest.mark.parametrize("sigma", [15, 25])
def test_nlm_is_skimage_with_the_documented_parameters_for_sigma(grey, sigma):
    m, p = problem(grey, sigma)
    res = m.run(build(m.config_cls, {}), p)
    want = skimage_direct(p.observed, sigma, 0.6)
    got = res.images["output"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert res.metrics["sigma_used"] == sigma


def test_parameters_follow_sigma():
    cfg = build(METHODS.get("nlm").config_cls, {})
    for sigma in (10, 25, 50):
        kw = nlm_params(sigma, cfg)
        assert kw["sigma"] == pytest.approx(sigma / 255)
        assert kw["h"] == pytest.approx(0.6 * sigma / 255)
        assert (kw["patch_size"], kw["patch_distance"], kw["fast_mode"]) == (5, 6, True)
    slow = build(METHODS.get("nlm").config_cls, {"fast_mode": False})
    assert nlm_params(25, slow)["h"] == pytest.approx(0.8 * 25 / 255)
    own = build(METHODS.get("nlm").config_cls, {"h_factor": 0.8})
    assert nlm_params(25, own)["h"] == pytest.approx(0.8 * 25 / 255)


def test_sigma_is_the_problem_s_unless_set():
    m, p = problem(True)
    low = m.run(build(m.config_cls, {"sigma": 5.0}), p)
    assert low.metrics["sigma_used"] == 5.0
    np.testing.assert_allclose(low.images["output"].permute(1, 2, 0).numpy(),
                               skimage_direct(p.observed, 5.0, 0.6), atol=1e-6)
    # told a fifth of the true noise, NL-means removes less of it
    assert low.metrics["psnr_gt_final"] < m.run(build(m.config_cls, {}), p).metrics[
        "psnr_gt_final"]


@pytest.mark.parametrize("grey", [True, False], ids=["grey", "colour"])
def test_nlm_beats_the_noisy_input_and_reports_fit_keys(grey):
    m, p = problem(grey)
    reports = []
    res = m.run(build(m.config_cls, {}), p, report=lambda it, mt, st: reports.append(mt))
    assert res.metrics["psnr_gt_final"] > res.metrics["psnr_noisy_input"] + 3
    assert res.images["output"].shape == p.observed.shape
    assert len(reports) == 1 and set(FIT_METRICS) <= set(reports[0])
    assert res.metrics["psnr_es"] == res.metrics["psnr_gt_best"] == res.metrics["psnr_gt_final"]


@pytest.mark.parametrize("values,words", [({"iters": 5}, "iters must be 1"),
                                          ({"sigma": -1}, "sigma must be > 0"),
                                          ({"h_factor": 0}, "h_factor must be > 0"),
                                          ({"patch_size": 0}, "patch_size"),
                                          ({"channel_axis": 0}, "channel_axis must be")])
def test_bad_config_is_one_line(values, words):
    with pytest.raises(ConfigError, match=words):
        build(METHODS.get("nlm").config_cls, values)


@pytest.mark.parametrize("grey,axis,words", [(True, -1, "is greyscale"),
                                             (False, None, "has 3 colour channels")])
def test_channel_axis_must_agree_with_the_image(grey, axis, words):
    m, p = problem(grey)
    cfg = build(m.config_cls, {"channel_axis": axis})
    with pytest.raises(DipddpmError, match=words):
        m.check_trial(cfg, p)
    with pytest.raises(DipddpmError, match=words):
        m.run(cfg, p)


def test_cli_fit_nlm_json():
    r = CliRunner().invoke(app, ["fit", "nlm", "--image", "skimage:camera", "--grey",
                                 "--size", "32", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.splitlines()[-1])
    assert out["method"] == "nlm" and out["psnr_gt_final"] > out["psnr_noisy_input"]
    assert out["config"]["patch_size"] == 5


def test_nlm_is_a_baseline_beside_bm3d():
    from dipddpm.sweep.baselines import BASELINES, baseline_rows, check_baselines
    from dipddpm.sweep.spec.validate import parse_spec

    assert METHODS.get(BASELINES.get("nlm").method).name == "nlm"
    problem_spec = {"images": ["skimage:camera", "skimage:coffee"], "replicates": 2,
                    "size": 32, "sigma": 25, "seed": 0}
    assert check_baselines(["bm3d", "nlm"], problem_spec) == ("bm3d", "nlm")
    spec = parse_spec({"name": "s", "method": "dip", "preset": "tiny", "problem": problem_spec,
                       "metric": "psnr_es", "fixed": {"iters": 4}, "num_samples": 1,
                       "scheduler": {"type": "none"},
                       "baselines": ["nlm"]}, load_problem=False)
    rows = baseline_rows(spec, "nlm")
    assert [(r["image"], r["replicate"]) for r in rows] == [
        ("skimage:camera", 0), ("skimage:camera", 1), ("skimage:coffee", 0),
        ("skimage:coffee", 1)]
    assert all(r["baseline"] == "nlm" and r["psnr_gt_final"] > r["psnr_noisy_input"]
               for r in rows)
    assert rows[0]["psnr_gt_final"] != rows[1]["psnr_gt_final"]  # two noise draws
