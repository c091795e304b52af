"""Studies: a trial fits one configuration to every (image, replicate) pair of its problem."""

from __future__ import annotations

import math

import pytest

from dipddpm.config import build
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.methods import METHODS
from dipddpm.methods.study_pairs import build_pairs, is_study, pair_specs
from dipddpm.methods.study_run import run_study

TINY = {"iters": 20, "width": 8, "depth": 2, "input_depth": 4, "report_every": 5,
        "es_window": 4, "es_patience": 10}
SET = {"images": ["skimage:astronaut", "skimage:coffee"], "replicates": 2, "size": 32,
       "sigma": 25}


def _dip(**over):
    m = METHODS.get("dip")
    return m, build(m.config_cls, {**TINY, **over})


def _run(problem, mode="auto", sync_every=10, seed=3, resume=None, method="dip"):
    m = METHODS.get(method)
    cfg = build(m.config_cls, TINY if method != "bm3d" else {})
    reports = []

    def report(it, metrics, state):
        reports.append((it, metrics, state))

    pairs = build_pairs(m, problem, cfg, seed)
    out = run_study(m, cfg, pairs, report, resume=resume, device="cpu", sync_every=sync_every,
                    mode=mode)
    return out, reports


def test_pairs_draw_their_own_observation_and_seed():
    specs = pair_specs(SET, seed=7)
    assert [(p.image, p.replicate) for p in specs] == [
        ("skimage:astronaut", 0), ("skimage:astronaut", 1), ("skimage:coffee", 0),
        ("skimage:coffee", 1)]
    assert [p.seed for p in specs] == [7, 8, 7, 8]
    assert [p.problem["seed"] for p in specs] == [0, 1, 0, 1]
    assert "images" not in specs[0].problem and "replicates" not in specs[0].problem
    assert is_study(SET) and not is_study({"image": "skimage:astronaut"})
    assert is_study({"image": "skimage:astronaut", "replicates": 2})


@pytest.mark.parametrize("mode", ["serial", "fused"])
def test_set_metrics_are_the_means_of_the_pairs(mode):
    out, reports = _run(SET, mode=mode)
    assert out.mode == mode
    assert len(out.pairs) == 4
    it, m, _ = reports[-1]
    assert it == 20 and len(m["pairs"]) == 4
    for key in ("psnr_gt", "loss", "psnr_es", "ssim_gt"):
        assert m[key] == pytest.approx(sum(p[key] for p in m["pairs"]) / 4)
    assert m["psnr_best_pairmean"] == pytest.approx(sum(p["psnr_best"] for p in m["pairs"]) / 4)
    curve = [r[1]["psnr_gt"] for r in reports]
    assert m["psnr_best"] == pytest.approx(max(curve))
    assert m["psnr_best_iter"] == reports[curve.index(max(curve))][0]
    s = out.result.metrics
    assert s["n_pairs"] == 4
    assert s["psnr_gt_final"] == pytest.approx(sum(p["psnr_gt_final"] for p in out.pairs) / 4)
    assert s["psnr_gt_best"] == pytest.approx(max(curve))
    assert s["psnr_gt_best_pairmean"] == pytest.approx(
        sum(p["psnr_gt_best"] for p in out.pairs) / 4)
    # the pairs differ: their own observations and nets
    assert len({round(p["psnr_gt_final"], 6) for p in out.pairs}) == 4


def test_fused_and_serial_studies_agree():
    """In float64 (float32's rounding differences of grouped convolutions are chaotic in a DIP
    fit: tests/test_fusion.py) the fused pairs give the serial pairs' numbers."""
    import dataclasses

    import torch

    m, cfg = _dip()
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pairs = build_pairs(m, SET, cfg, 3)
        for p in pairs:
            p.problem = dataclasses.replace(p.problem, observed=p.problem.observed.double(),
                                            clean=p.problem.clean.double())
        fused = run_study(m, cfg, pairs, device="cpu", mode="fused")
        serial = run_study(m, cfg, pairs, device="cpu", mode="serial", sync_every=10)
    finally:
        torch.set_default_dtype(before)
    assert (fused.mode, serial.mode) == ("fused", "serial")
    for a, b in zip(fused.pairs, serial.pairs, strict=True):
        for k in ("psnr_gt_final", "psnr_gt_best", "psnr_es", "ssim_gt_final"):
            assert a[k] == pytest.approx(b[k], abs=1e-9), k


def test_a_set_of_one_is_the_plain_trial():
    m, cfg = _dip()
    plain = []
    problem = m.make_problem({"image": "skimage:astronaut", "size": 32, "seed": 0}, cfg)
    res = m.run(cfg, problem, report=lambda it, mm, st: plain.append(dict(mm)), seed=3,
                device="cpu")
    out, reports = _run({"images": ["skimage:astronaut"], "size": 32})
    assert [{k: v for k, v in r[1].items() if k not in ("pairs", "psnr_best_pairmean")}
            for r in reports] == plain
    same = {k: v for k, v in out.result.metrics.items() if k in res.metrics and k != "wall_s"}
    assert same == {k: v for k, v in res.metrics.items() if k != "wall_s"}


@pytest.mark.parametrize("mode", ["serial", "fused"])
def test_resume_of_a_study_equals_uninterrupted(mode):
    whole, _ = _run(SET, mode=mode, sync_every=10)
    states = []

    class Stop(Exception):
        pass

    m = METHODS.get("dip")
    cfg = build(m.config_cls, TINY)
    pairs = build_pairs(m, SET, cfg, 3)

    def report(it, metrics, state):
        if it == 10:
            states.append(state())
            raise Stop

    with pytest.raises(Stop):
        run_study(m, cfg, pairs, report, device="cpu", sync_every=10, mode=mode)
    resumed, reports = _run(SET, mode=mode, sync_every=10, resume=states[0])
    assert reports[0][0] == 15
    for a, b in zip(whole.pairs, resumed.pairs, strict=True):
        assert a["psnr_gt_final"] == pytest.approx(b["psnr_gt_final"], abs=1e-6)
    assert whole.result.metrics["psnr_gt_best"] == pytest.approx(
        resumed.result.metrics["psnr_gt_best"], abs=1e-6)


def test_state_between_sync_points_is_refused():
    _, reports = _run(SET, mode="serial", sync_every=10)
    by_iter = {it: st for it, _, st in reports}
    assert by_iter[10]()["mode"] == "chunked"
    with pytest.raises(DipddpmError, match="sync points"):
        by_iter[5]()


def test_bm3d_study_runs_every_pair():
    out, reports = _run({"images": ["skimage:astronaut"], "replicates": 2, "size": 32},
                        method="bm3d")
    assert len(out.pairs) == 2 and len(reports) == 1
    assert all(p["psnr_gt_final"] > p["psnr_noisy_input"] for p in out.pairs)


@pytest.mark.parametrize("problem, match", [
    ({"images": [], "size": 32}, "non-empty"),
    ({"images": ["skimage:astronaut", "skimage:astronaut"]}, "twice"),
    ({"images": ["skimage-set:nope"]}, "unknown set"),
    ({"images": ["/nonexistent/*.png"]}, "matches no file"),
    ({"image": "skimage:astronaut", "replicates": 0}, "replicates"),
    ({"image": "skimage:astronaut", "replicates": 1.5}, "replicates"),
    ({"image": "skimage:astronaut", "images": ["skimage:coffee"]}, "both"),
])
def test_bad_sets_are_one_line(problem, match):
    with pytest.raises(ConfigError, match=match):
        pair_specs(problem, 0)


def test_an_unreadable_image_in_a_set_is_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    m, cfg = _dip()
    with pytest.raises(DipddpmError, match=f"image {bad}"):
        build_pairs(m, {"images": ["skimage:astronaut", str(bad)], "size": 32}, cfg, 0)


def test_folder_and_named_sets_expand(tmp_path):
    from dipddpm.data.image_sets import SKIMAGE_SETS, expand_images
    from dipddpm.data.images import load_image, save_image

    for name in ("b.png", "a.png"):
        save_image(load_image("skimage:camera")[:, :32, :32], tmp_path / name)
    assert expand_images(str(tmp_path)) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert expand_images([str(tmp_path / "*.png")]) == expand_images(str(tmp_path))
    photos = expand_images("skimage-set:photos")
    assert photos == list(SKIMAGE_SETS["photos"]) and len(photos) >= 3
    assert all(load_image(p).shape[0] == 3 for p in photos)  # colour photos, offline
    assert math.isfinite(len(photos))


def test_sweep_show_gives_a_study_s_members_memory_and_gpu_fraction():
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from dipddpm.cli import app
    from dipddpm.cli.sweep import gpu_fraction

    spec = Path(__file__).resolve().parents[1] / "sweeps" / "study_guided_vs_dip.yaml"
    r = CliRunner().invoke(app, ["sweep", "show", str(spec), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["members_per_trial"] == 6 and out["memory_per_trial_mib"] > 0
    assert gpu_fraction(8 * 1024, 80) == 0.15  # 8 GiB + 10% of 80 GiB, up to a twentieth
    assert gpu_fraction(100 * 1024, 80) is None


@pytest.mark.parametrize("name", ["quick", "study_guided_vs_dip", "dip_cset9"])
def test_a_spec_is_the_same_as_its_resolved_file(name):
    """Run twice into one folder: the stored spec.resolved.yaml must match the spec."""
    from pathlib import Path

    from dipddpm.sweep.runner import resolved_yaml, same_spec
    from dipddpm.sweep.spec import load_spec

    s = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / f"{name}.yaml", smoke=True)
    assert same_spec(resolved_yaml(s), s)


def test_set_summary_rows_are_consistent_and_one_pair_reports_state_every_time():
    out, reports = _run(SET, mode="serial")
    s = out.result.metrics
    assert s["es_gap_db"] == pytest.approx(s["psnr_gt_best"] - s["psnr_es"])
    assert s["es_gap_db_pairmean"] == pytest.approx(
        sum(p["es_gap_db"] for p in out.pairs) / 4)
    one, reports = _run({"images": ["skimage:astronaut"], "size": 32})
    assert all(st()["mode"] == "single" for _, _, st in reports[:-1])
