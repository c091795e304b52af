"""DIP and guided DIP on the shared fitting loop, shrunk to 32x32 and tiny nets."""

import pytest
import torch

from dipddpm.config import build
from dipddpm.methods import METHODS
from dipddpm.methods.dip import DipConfig, run_dip
from dipddpm.methods.guided_dip import GuidedDipConfig, run_guided_dip

TINY = {"width": 16, "depth": 3, "input_depth": 8, "report_every": 10}


class Recorder:
    def __init__(self, keep_state_at=None):
        self.rows, self.keep_state_at, self.state = [], keep_state_at, None

    def __call__(self, it, metrics, state):
        self.rows.append(dict(metrics))
        if it == self.keep_state_at:
            self.state = state()


def test_dip_fit_beats_the_noisy_input(tiny_image_problem):
    cfg = build(DipConfig, {**TINY, "iters": 300, "lr": 0.02})
    res = run_dip(cfg, tiny_image_problem, seed=0)
    assert res.metrics["psnr_gt_best"] > res.metrics["psnr_noisy_input"] + 0.3
    assert res.images["output"].shape == tiny_image_problem.clean.shape


def test_reports_carry_the_documented_metrics(tiny_image_problem):
    rec = Recorder()
    run_dip(build(DipConfig, {**TINY, "iters": 25}), tiny_image_problem, report=rec)
    assert [r["iter"] for r in rec.rows] == [10, 20, 25]
    assert set(METHODS.get("dip").metrics) <= set(rec.rows[-1])
    assert rec.rows[-1]["psnr_best"] == max(rec.rows[-1]["psnr_best"], rec.rows[0]["psnr_gt"])


def test_same_seed_same_metrics_other_seed_differs(tiny_image_problem):
    cfg = build(DipConfig, {**TINY, "iters": 20})
    a = run_dip(cfg, tiny_image_problem, seed=1).metrics
    b = run_dip(cfg, tiny_image_problem, seed=1).metrics
    c = run_dip(cfg, tiny_image_problem, seed=2).metrics
    strip = lambda m: {k: v for k, v in m.items() if k != "wall_s"}  # noqa: E731
    assert strip(a) == strip(b) and strip(a) != strip(c)


@pytest.mark.parametrize("method, cfg", [
    ("dip", {**TINY, "iters": 40}),
    ("guided_dip", {**TINY, "iters": 40, "stages": 4, "reset_optimizer_each_stage": True,
                    "resample_input_each_stage": True}),
])
def test_resume_from_state_continues_identically(tiny_image_problem, method, cfg):
    m = METHODS.get(method)
    cfg = build(m.config_cls, cfg)
    full = Recorder(keep_state_at=20)
    whole = m.run(cfg, tiny_image_problem, report=full, seed=5)
    resumed_rec = Recorder()
    resumed = m.run(cfg, tiny_image_problem, report=resumed_rec, seed=5, resume=full.state)
    assert [r["iter"] for r in resumed_rec.rows] == [30, 40]
    assert resumed_rec.rows == full.rows[2:]
    assert resumed.metrics["psnr_gt_best"] == whole.metrics["psnr_gt_best"]


@pytest.mark.parametrize("mode", ["original", "clean"])
def test_backtracking_restores_after_a_collapse(tiny_image_problem, mode):
    cfg = build(DipConfig, {**TINY, "iters": 60, "lr": 0.5, "backtrack_mode": mode,
                            "backtrack_drop_db": 0.5})
    res = run_dip(cfg, tiny_image_problem)
    assert res.metrics["n_backtracks"] > 0
    off = run_dip(build(DipConfig, {**TINY, "iters": 60, "lr": 0.5, "backtracking": False}),
                  tiny_image_problem)
    assert off.metrics["n_backtracks"] == 0
    assert off.metrics["psnr_gt_final"] != res.metrics["psnr_gt_final"]


def test_guided_dip_switches_targets_at_scheduled_iterations(tiny_image_problem):
    cfg = build(GuidedDipConfig, {**TINY, "iters": 40, "stages": 4, "report_every": 1,
                                  "scheduler": "uniform"})
    rec = Recorder()
    res = run_guided_dip(cfg, tiny_image_problem, report=rec)
    counts, ts = res.extra["stage_counts"], res.extra["stage_timesteps"]
    assert sum(counts) == 40 and ts == [749, 499, 249, 0]
    expected = [k for k, n in enumerate(counts, 1) for _ in range(n)]
    assert [r["stage"] for r in rec.rows] == expected
    assert [r["stage_t"] for r in rec.rows] == [ts[k - 1] for k in expected]
    # a noisier target means a larger loss: the first stage's loss is well above the last's
    assert rec.rows[0]["loss"] > 3 * rec.rows[-1]["loss"]


def test_stage_targets_follow_the_formula(tiny_image_problem):
    from dipddpm.methods.guided_dip import make_plan

    p = tiny_image_problem
    cfg = build(GuidedDipConfig, {**TINY, "iters": 10, "stages": 2, "t_max": 500, "t_min": 0,
                                  "t_drop_first": False, "stage_source": "x",
                                  "noise_affine": (0.5, 0.5), "beta_schedule": "linear"})
    plan = make_plan(cfg, p)
    g = torch.Generator().manual_seed(0)
    y1 = plan.stages[0].target(g)
    eps = torch.randn(p.clean.shape, generator=torch.Generator().manual_seed(0))
    abar = cfg.process().alphas_cumprod[500].item()
    assert torch.allclose(y1, abar ** 0.5 * p.clean + (1 - abar) ** 0.5 * (0.5 * eps + 0.5),
                          atol=1e-5)
    assert plan.stages[1].t == 0  # t = 0: the observation itself, used as is by the loop


def test_presets_build_and_size_errors(tiny_image_problem):
    for _name, m in (("dip", METHODS.get("dip")), ("guided_dip", METHODS.get("guided_dip"))):
        for preset in m.presets.values():
            build(m.config_cls, preset)
    from dipddpm.data.images import make_image_problem
    from dipddpm.errors import DipddpmError

    odd = make_image_problem("skimage:astronaut", size=36, multiple=4)
    with pytest.raises(DipddpmError, match="divisible by 16, got 36x36"):
        run_dip(build(DipConfig, {"iters": 1, "width": 8, "depth": 4}), odd)


def test_oracle_returns_the_best_output(tiny_image_problem):
    res = run_dip(build(DipConfig, {**TINY, "iters": 30, "oracle": True}), tiny_image_problem)
    from dipddpm.metrics import psnr

    best = res.images["output_best"]
    assert psnr(best, tiny_image_problem.clean) == pytest.approx(res.metrics["psnr_gt_best"],
                                                                 abs=1e-3)


def test_resume_from_the_final_state_returns_the_result(tiny_image_problem):
    cfg = build(DipConfig, {**TINY, "iters": 20})
    rec = Recorder(keep_state_at=20)
    whole = run_dip(cfg, tiny_image_problem, report=rec)
    again = run_dip(cfg, tiny_image_problem, resume=rec.state)
    assert again.metrics["psnr_gt_best"] == whole.metrics["psnr_gt_best"]
    assert again.metrics["psnr_gt_final"] == whole.metrics["psnr_gt_final"]


def test_uint8_psnr_flag_stays_close_to_float(tiny_image_problem):
    base = {**TINY, "iters": 20}
    a = run_dip(build(DipConfig, base), tiny_image_problem).metrics
    b = run_dip(build(DipConfig, {**base, "psnr_uint8": True}), tiny_image_problem).metrics
    assert a["psnr_gt_final"] != b["psnr_gt_final"]
    assert abs(a["psnr_gt_final"] - b["psnr_gt_final"]) < 0.5
