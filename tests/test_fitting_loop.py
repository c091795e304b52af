"""The fitting loop's rules (docs/methods.md: DIP; Staged and guided DIP), seen from outside
the loop.

The net the loop builds (`fitting.build_for_problem`) is spied on with hooks: each forward's
input z_j, weights and output o_j, and each backward's gradients. Every expectation is then
computed here from those records and the formulas, and compared with what `fit` reports and
returns. Nothing reads the loop's local variables or its checkpoint layout.
"""

import copy
import dataclasses
import math
import time

import pytest
import torch
import torch.nn.functional as F

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.early_stop import ES_RULES, EsParams
from dipddpm.errors import DipddpmError
from dipddpm.methods import fitting
from dipddpm.methods.device import pick_device
from dipddpm.methods.dip import DipConfig, dip_plan, run_dip
from dipddpm.methods.fitting import Member, Stage, StagePlan, _copy_members, fit, fit_members
from dipddpm.methods.guided_dip import GuidedDipConfig, run_guided_dip
from dipddpm.metrics import psnr, ssim
from dipddpm.nn import build_net, min_size, size_multiple
from dipddpm.nn.sizes import build_for_problem

SMALL = {"net": "skip", "width": 8, "depth": 2, "input_depth": 8, "report_every": 1}


class Spy:
    def __init__(self):
        self.inputs, self.weights, self.outputs, self.grads = [], [], [], []
        self.nets = []

    def attach(self, net: torch.nn.Module) -> None:
        self.nets.append(net)
        params = list(net.parameters())

        def pre(module, args):
            if module.training:  # the loop's forward (an eval-mode one is for metrics only)
                self.inputs.append(args[0].detach().clone())
                self.weights.append([p.detach().clone() for p in params])

        def post(module, args, out):
            if module.training:
                self.outputs.append(out.detach().clone())

        net.register_forward_pre_hook(pre)
        net.register_forward_hook(post)
        for i, p in enumerate(params):
            p.register_hook(lambda g, i=i: self._grad(i, g))

    def _grad(self, i: int, g: torch.Tensor) -> None:
        if not self.grads or i in self.grads[-1]:  # a new backward (hooks run in any order)
            self.grads.append({})
        self.grads[-1][i] = g.detach().clone()


@pytest.fixture
def spy(monkeypatch):
    s = Spy()
    build_net = fitting.build_for_problem

    def spied(cfg, channels, problem):
        net = build_net(cfg, channels, problem)
        s.attach(net)
        return net

    monkeypatch.setattr(fitting, "build_for_problem", spied)
    return s


@pytest.fixture(scope="module")
def problem():
    return make_image_problem("skimage:camera", size=16, sigma=25, seed=0, grey=True)


def psnr_of(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(F.mse_loss(a.clamp(0, 1).double(), b.double()).item())


class Reports(list):
    def __call__(self, it, metrics, state):
        self.append(dict(metrics))


def test_smoothing_is_099_001_starting_at_the_first_output(spy, problem):
    rec = Reports()
    res = run_dip(build(DipConfig, {**SMALL, "iters": 25}), problem, report=rec)
    o = [out[0] for out in spy.outputs]
    assert len(o) == 25
    sm = o[0].clone()
    for j in range(25):
        if j:
            sm = 0.99 * sm + 0.01 * o[j]
        assert rec[j]["psnr_gt_sm"] == pytest.approx(psnr_of(sm, problem.clean), abs=1e-4)
        assert rec[j]["psnr_gt"] == pytest.approx(psnr_of(o[j], problem.clean), abs=1e-4)
    assert torch.allclose(res.images["output_sm"], sm.clamp(0, 1), atol=1e-6)
    assert torch.allclose(res.images["output"], o[-1].clamp(0, 1), atol=1e-6)
    # the smoothed output lags: it is not the last output, and not the plain mean
    assert not torch.allclose(sm, o[-1], atol=1e-3)
    assert not torch.allclose(sm, torch.stack(o).mean(0), atol=1e-3)


def test_no_smoothing_shows_each_output(spy, problem):
    res = run_dip(build(DipConfig, {**SMALL, "iters": 5, "smoothing": 0.0}), problem)
    assert torch.allclose(res.images["output_sm"], spy.outputs[-1][0].clamp(0, 1))


@pytest.mark.parametrize("scale", [0.1, 0.5])
def test_input_is_uniform_on_0_to_scale_and_fixed(spy, problem, scale):
    run_dip(build(DipConfig, {**SMALL, "iters": 4, "input_scale": scale, "reg_noise_std": 0.0}),
            problem)
    z = spy.inputs[0]
    assert z.shape == (1, 8, 16, 16)
    assert all(torch.equal(zj, z) for zj in spy.inputs)  # no reg-noise: z itself, every time
    assert z.min() >= 0 and z.max() < scale and z.max() > 0.98 * scale
    n = z.numel()  # U(0, s): mean s/2, variance s^2/12
    assert abs(z.mean().item() - scale / 2) < 4 * scale / math.sqrt(12 * n)
    assert z.var().item() == pytest.approx(scale ** 2 / 12, rel=0.12)


def test_input_scale_only_scales(spy, problem):
    cfg = {**SMALL, "iters": 1, "reg_noise_std": 0.0}
    run_dip(build(DipConfig, {**cfg, "input_scale": 0.1}), problem, seed=3)
    run_dip(build(DipConfig, {**cfg, "input_scale": 0.4}), problem, seed=3)
    assert torch.allclose(spy.inputs[1], 4 * spy.inputs[0], atol=1e-7)


def test_normal_input(spy, problem):
    run_dip(build(DipConfig, {**SMALL, "iters": 1, "input_noise": "normal", "input_scale": 2.0,
                              "reg_noise_std": 0.0}), problem)
    z = spy.inputs[0]
    assert z.min() < 0 and z.std().item() == pytest.approx(2.0, rel=0.1)


def test_reg_noise_is_fresh_each_iteration_around_a_fixed_z(spy, problem):
    """z_j = z + s n_j with n_j ~ N(0, I) fresh: consecutive differences d_j = s (n_{j+1} - n_j)
    have std s sqrt(2) and neighbours correlate at -1/2 (a fixed z, not a random walk, not a
    new z, not one n reused)."""
    s = 1 / 30
    run_dip(build(DipConfig, {**SMALL, "iters": 12}), problem)
    d = [(b - a).flatten() for a, b in zip(spy.inputs[:-1], spy.inputs[1:], strict=True)]
    stds = torch.stack([v.std() for v in d])
    assert torch.allclose(stds, torch.full_like(stds, s * math.sqrt(2)), rtol=0.08)
    corr = [torch.corrcoef(torch.stack([a, b]))[0, 1].item() for a, b in zip(d[:-1], d[1:],
                                                                          strict=True)]
    assert all(abs(c + 0.5) < 0.08 for c in corr), corr
    run_dip(build(DipConfig, {**SMALL, "iters": 12, "reg_noise_std": 0.0}), problem)
    z = spy.inputs[-1]  # the same seed gives the same z: the noise is z_j - z
    noise = torch.stack([zj - z for zj in spy.inputs[:12]])
    assert noise.std().item() == pytest.approx(s, rel=0.05) and abs(noise.mean()) < s / 20


def adam_step(p, g, state, lr, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.Adam's update of one tensor (weights only, no weight decay)."""
    m, v, t = state
    t += 1
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    denom = v.sqrt() / math.sqrt(1 - betas[1] ** t) + eps
    return p - lr / (1 - betas[0] ** t) * m / denom, (m, v, t)


def replay(spy, cfg, y):
    """Backtracking (docs/methods.md, DIP) replayed from the records: the expected weights
    after each iteration j (the next forward's), the saved weights j restored (None: no
    backtrack), and the count."""
    state = [(torch.zeros_like(w), torch.zeros_like(w), 0) for w in spy.weights[0]]
    saved, saved_state, last_psnr, n_back = None, None, -math.inf, 0
    expected = []
    for j, (w, g) in enumerate(zip(spy.weights, spy.grads, strict=True)):
        base, step, back = w, True, False
        if j % cfg.backtrack_every:
            p = psnr_of(spy.outputs[j][0], y)
            if p - last_psnr < -cfg.backtrack_drop_db and saved is not None:
                base, n_back, back = saved, n_back + 1, True
                if cfg.backtrack_mode == "clean":  # skip the step, restore Adam's state
                    state, step = list(saved_state), False
            else:
                saved, saved_state, last_psnr = w, list(state), p
        if step:  # 'original': the gradient computed at the collapsed weights is applied
            new = [adam_step(base[i], g[i], state[i], cfg.lr) for i in range(len(w))]
            base, state = [b for b, _ in new], [s for _, s in new]
        expected.append((j, base, saved if back else None))
    return expected, n_back


@pytest.mark.parametrize("mode", ["original", "clean"])
def test_backtracking_restores_the_last_saved_weights(spy, problem, mode):
    cfg = build(DipConfig, {**SMALL, "iters": 40, "lr": 0.3, "backtrack_drop_db": 0.5,
                            "backtrack_mode": mode})
    res = run_dip(cfg, problem)
    expected, n_back = replay(spy, cfg, problem.observed)
    assert n_back >= 3 and res.metrics["n_backtracks"] == n_back
    checked = 0
    for j, want, restored in expected[:-1]:  # the last iteration's weights are never used
        got = spy.weights[j + 1]
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (mode, j)
        if restored is not None:  # 'clean': the saved weights bit for bit; 'original': a step
            exact = all(torch.equal(a, b) for a, b in zip(got, restored, strict=True))
            assert exact == (mode == "clean"), (mode, j)
            checked += 1
    assert checked >= 2


def test_original_and_clean_backtracking_differ_only_after_a_backtrack(spy, problem):
    base = {**SMALL, "iters": 40, "lr": 0.3, "backtrack_drop_db": 0.5}
    run_dip(build(DipConfig, {**base, "backtrack_mode": "original"}), problem)
    run_dip(build(DipConfig, {**base, "backtrack_mode": "clean"}), problem)
    a, b = spy.weights[:40], spy.weights[40:]
    same = [all(torch.equal(u, v) for u, v in zip(wa, wb, strict=True))
            for wa, wb in zip(a, b, strict=True)]
    first = same.index(False)
    assert first > 1 and all(same[:first])


def test_no_check_and_no_save_at_multiples_of_backtrack_every(spy, problem):
    """j % every == 0 is neither checked nor saved: with every = 1 nothing ever backtracks."""
    cfg = {**SMALL, "iters": 40, "lr": 0.3, "backtrack_drop_db": 0.5}
    res = run_dip(build(DipConfig, {**cfg, "backtrack_every": 1}), problem)
    off = run_dip(build(DipConfig, {**cfg, "backtracking": False}), problem)
    assert res.metrics["n_backtracks"] == 0
    assert res.metrics["psnr_gt_final"] == off.metrics["psnr_gt_final"]


def test_a_t0_stage_fits_y(spy, problem):
    """Stage t > 0 fits its drawn target; a t = 0 stage fits the observation y itself (not its
    target callback, and not the clean x even when the stages are drawn from x)."""
    drawn = torch.full_like(problem.observed, 0.25)
    plan = StagePlan([Stage(t=7, iters=4, target=lambda g: drawn),
                      Stage(t=0, iters=4, target=lambda g: problem.clean)])
    rec = Reports()
    fit(build(DipConfig, {**SMALL, "iters": 8}), problem, plan, report=rec)
    for j, row in enumerate(rec):
        target = drawn if j < 4 else problem.observed
        want = F.mse_loss(spy.outputs[j][0], target).item()
        assert row["loss"] == pytest.approx(want, rel=1e-5)
        assert row["stage_t"] == (7 if j < 4 else 0)
    rec = Reports()
    run_guided_dip(build(GuidedDipConfig, {**SMALL, "iters": 8, "stages": 2, "t_max": 300,
                                           "t_min": 0, "t_drop_first": False,
                                           "stage_source": "x"}), problem, report=rec)
    last = spy.outputs[-1][0]
    assert rec[-1]["stage_t"] == 0
    assert rec[-1]["loss"] == pytest.approx(F.mse_loss(last, problem.observed).item(), rel=1e-5)
    assert rec[-1]["loss"] != pytest.approx(F.mse_loss(last, problem.clean).item(), rel=1e-3)


def test_metrics_clip_out_of_range_outputs(spy, problem):
    """Without a sigmoid the outputs leave [0, 1]; the loop's PSNRs and SSIM clip them."""
    rec = Reports()
    run_dip(build(DipConfig, {**SMALL, "iters": 3, "net_sigmoid": False}), problem, report=rec)
    o = spy.outputs[-1][0]
    assert o.min() < 0 or o.max() > 1
    assert rec[-1]["psnr_gt"] == pytest.approx(psnr_of(o, problem.clean), abs=1e-4)
    assert rec[-1]["psnr_noisy"] == pytest.approx(psnr_of(o, problem.observed), abs=1e-4)
    assert rec[-1]["ssim_gt"] == pytest.approx(ssim(o.clamp(0, 1), problem.clean), abs=1e-6)
    unclipped = -10 * math.log10(F.mse_loss(o, problem.clean).item())
    assert abs(rec[-1]["psnr_gt"] - unclipped) > 0.01


def test_uint8_psnr_truncates_output_and_references(spy, problem):
    rec = Reports()
    run_dip(build(DipConfig, {**SMALL, "iters": 3, "psnr_uint8": True}), problem, report=rec)
    q = lambda v: torch.floor(v.clamp(0, 1).double() * 255) / 255  # noqa: E731
    for j, row in enumerate(rec):
        o = spy.outputs[j][0]
        for key, ref in (("psnr_gt", problem.clean), ("psnr_noisy", problem.observed)):
            want = -10 * math.log10(F.mse_loss(q(o), q(ref)).item())
            assert row[key] == pytest.approx(want, abs=1e-4), key


def test_z_and_reg_noise_are_draws_of_the_members_own_generator(spy, problem):
    """z = U(0, 1) scale from a generator seeded with the fit's seed (not torch's global RNG),
    then one fresh N(0, I) draw of that generator per iteration: z_j = z + s n_j exactly."""
    cfg = build(DipConfig, {**SMALL, "iters": 3})
    run_dip(cfg, problem, seed=5)
    g = torch.Generator().manual_seed(5)
    z = torch.rand((1, 8, 16, 16), generator=g) * cfg.input_scale
    for j in range(3):
        n = torch.randn((1, 8, 16, 16), generator=g)
        assert torch.allclose(spy.inputs[j], z + cfg.reg_noise_std * n, atol=1e-7), j
    assert cfg.reg_noise_std > 0


class Draws:
    """Stage targets drawn from the member's generator, each draw recorded."""

    def __init__(self, shape):
        self.shape, self.drawn = shape, []

    def __call__(self, g: torch.Generator) -> torch.Tensor:
        self.drawn.append(0.5 + 0.1 * torch.randn(self.shape, generator=g))
        return self.drawn[-1]


@pytest.mark.parametrize("fresh", [False, True])
def test_stage_starts_draw_once_and_renew_adam_and_z_only_when_asked(spy, problem, fresh):
    """Stages of 1, 3 and 2 iterations. The generator's draws, in order: z, then each t > 0
    stage's target once at its first iteration, then (asked for) a new z after it. Without
    reg-noise nothing else draws. A new Adam makes the first step of stage 2 a first Adam
    step from its weights; otherwise Adam's moments carry on."""
    draws = Draws(problem.observed.shape)
    plan = StagePlan([Stage(5, 1, draws), Stage(3, 3, draws), Stage(0, 2, draws)],
                     reset_optimizer_each_stage=fresh, resample_input_each_stage=fresh)
    cfg = build(DipConfig, {**SMALL, "iters": 6, "reg_noise_std": 0.0, "smoothing": 0.0,
                            "backtracking": False, "lr": 0.01})
    rec = Reports()
    fit(cfg, problem, plan, report=rec, seed=2)
    assert len(draws.drawn) == 2  # the t = 0 stage fits y; no stage draws twice
    assert [r["iter_final"] for r in rec] == [0, 0, 0, 0, 1, 2]  # the final stage from it 5
    assert [r["stage"] for r in rec] == [1, 2, 2, 2, 3, 3]
    g = torch.Generator().manual_seed(2)
    z0 = torch.rand((1, 8, 16, 16), generator=g) * cfg.input_scale
    t1 = 0.5 + 0.1 * torch.randn(problem.observed.shape, generator=g)
    t2 = 0.5 + 0.1 * torch.randn(problem.observed.shape, generator=g)
    z1 = torch.rand((1, 8, 16, 16), generator=g) * cfg.input_scale if fresh else z0
    z2 = torch.rand((1, 8, 16, 16), generator=g) * cfg.input_scale if fresh else z0
    assert torch.equal(draws.drawn[0], t1) and torch.equal(draws.drawn[1], t2)
    for j, target in enumerate([t1, t2, t2, t2, problem.observed, problem.observed]):
        assert torch.equal(spy.inputs[j], [z0, z1, z1, z1, z2, z2][j]), j
        want = F.mse_loss(spy.outputs[j][0], target).item()
        assert rec[j]["loss"] == pytest.approx(want, rel=1e-5), j
    state = [(torch.zeros_like(w), torch.zeros_like(w), 0) for w in spy.weights[0]]
    carried = [adam_step(w, spy.grads[0][i], state[i], cfg.lr)[1]
               for i, w in enumerate(spy.weights[0])]  # Adam's moments after stage 1's step
    prior = state if fresh else carried  # Adam's moments at stage 2's first step
    for i, w in enumerate(spy.weights[1]):
        want, _ = adam_step(w, spy.grads[1][i], prior[i], cfg.lr)
        assert torch.allclose(spy.weights[2][i], want, atol=1e-6, rtol=1e-5), (fresh, i)


def test_fused_members_report_each_members_own_loss(problem):
    """Two members of one fused net: each reported loss is that member's MSE to its own
    observation, as its own fit reports it (not a mix of both)."""
    other = make_image_problem("skimage:camera", size=16, sigma=50, seed=3, grey=True)
    cfg = build(DipConfig, {**SMALL, "iters": 2})
    fused = []
    fit_members(cfg, [Member(problem, dip_plan(cfg, problem), 0),
                      Member(other, dip_plan(cfg, other), 1)],
                lambda it, ms, state: fused.append([m["loss"] for m in ms]))
    for i, (p, seed) in enumerate(((problem, 0), (other, 1))):
        solo = Reports()
        fit(cfg, p, dip_plan(cfg, p), report=solo, seed=seed)
        assert [row[i] for row in fused] == pytest.approx([r["loss"] for r in solo], rel=1e-4)
    assert fused[0][0] != pytest.approx(fused[0][1], rel=1e-2)


def test_copy_members_copies_only_the_listed_members():
    K = 3
    src = [torch.arange(K * 4.0).view(K, 4), torch.arange(K * 6.0).view(K, 2, 3) + 100]
    for idx in ([1], [0, 2], [0, 1, 2], []):
        dst = [torch.full_like(t, -1.0) for t in src]
        _copy_members(dst, src, idx, K)
        for d, s in zip(dst, src, strict=True):
            for k in range(K):
                assert torch.equal(d[k], s[k] if k in idx else torch.full_like(s[k], -1.0))


def test_a_non_finite_loss_names_the_iteration_and_the_member(problem):
    observed = problem.observed.clone()
    observed[0, 0, 0] = float("nan")
    bad = dataclasses.replace(problem, observed=observed)
    cfg = build(DipConfig, {**SMALL, "iters": 2})
    with pytest.raises(FloatingPointError, match=r"^loss is nan at iteration 1$"):
        fit(cfg, bad, dip_plan(cfg, bad))
    with pytest.raises(FloatingPointError, match=r"^loss is nan at iteration 1 \(member 1\)$"):
        fit_members(cfg, [Member(problem, dip_plan(cfg, problem), 0),
                          Member(bad, dip_plan(cfg, bad), 1)])


def stretched(problem):
    """The observation stretched to [-0.4, 1.4]: a net without a sigmoid fitting it leaves
    [0, 1] at both ends within a few iterations, so every clip of the outputs matters."""
    return dataclasses.replace(problem, observed=problem.observed * 1.8 - 0.4)


def smoothed(outputs: list[torch.Tensor], s: float = 0.99) -> list[torch.Tensor]:
    out = [outputs[0]]
    for o in outputs[1:]:
        out.append(s * out[-1] + (1 - s) * o)
    return out


def test_the_summary_from_the_outputs(spy, problem):
    """Every summary value of a fit recomputed from the recorded outputs o_j (no sigmoid, so
    they leave [0, 1] and every clip matters); the last report is of the last iteration."""

    rec = Reports()
    cfg = build(DipConfig, {**SMALL, "iters": 12, "report_every": 5, "net_sigmoid": False,
                            "lr": 0.02, "backtracking": False, "smoothing": 0.5})
    problem = stretched(problem)
    res = run_dip(cfg, problem, report=rec)
    o = [out[0] for out in spy.outputs]
    sm = smoothed(o, 0.5)
    gt = [psnr_of(v, problem.clean) for v in o]
    gt_sm = [psnr_of(v, problem.clean) for v in sm]
    for v in (o[-1], sm[-1]):  # both clips act on both images
        assert v.min() < 0 and v.max() > 1
    assert gt.index(max(gt)) < 11 and gt_sm.index(max(gt_sm)) < 11  # the bests are not last
    assert [r["iter"] for r in rec] == [5, 10, 12]
    assert rec[-1]["psnr_gt"] == pytest.approx(gt[-1], abs=1e-4)
    m = res.metrics
    assert m["iters"] == 12
    assert m["psnr_noisy_input"] == pytest.approx(psnr(problem.observed, problem.clean))
    assert m["psnr_gt_final"] == pytest.approx(gt[-1], abs=1e-4)
    assert m["psnr_gt_best"] == pytest.approx(max(gt), abs=1e-4)
    assert m["psnr_best_iter"] == 1 + gt.index(max(gt))
    assert m["psnr_gt_sm_final"] == pytest.approx(gt_sm[-1], abs=1e-4)
    assert m["psnr_gt_sm_best"] == pytest.approx(max(gt_sm), abs=1e-4)
    assert m["psnr_gt_sm_best_iter"] == 1 + gt_sm.index(max(gt_sm))
    assert m["psnr_noisy_final"] == pytest.approx(psnr_of(o[-1], problem.observed), abs=1e-4)
    assert m["ssim_gt_final"] == pytest.approx(ssim(o[-1].clamp(0, 1), problem.clean), abs=1e-6)
    assert m["ssim_gt_sm_final"] == pytest.approx(ssim(sm[-1].clamp(0, 1), problem.clean),
                                                  abs=1e-6)
    assert m["es_gap_db"] == pytest.approx(m["psnr_gt_best"] - m["psnr_es"], abs=1e-9)
    assert 1 <= m["iter_es"] <= 12 and m["n_backtracks"] == 0
    assert torch.allclose(res.images["output"], o[-1].clamp(0, 1), atol=1e-6)
    assert torch.allclose(res.images["output_sm"], sm[-1].clamp(0, 1), atol=1e-5)
    assert "output_best" not in res.images


def test_first_reach_and_the_oracle_image(spy, problem):
    """first_reach_iter from the reported PSNRs; the oracle image is the output at the best
    iteration, clipped (the stretched observation drives it past both ends of [0, 1])."""
    problem = stretched(problem)
    rec = Reports()
    base = {**SMALL, "iters": 10, "net_sigmoid": False, "lr": 0.02, "backtracking": False}
    run_dip(build(DipConfig, base), problem, report=rec)
    gt = [r["psnr_gt"] for r in rec]
    threshold = sorted(gt)[5]
    spy.outputs.clear()
    res = run_dip(build(DipConfig, {**base, "psnr_threshold": threshold, "oracle": True}),
                  problem)
    assert res.metrics["first_reach_iter"] == 1 + next(j for j, p in enumerate(gt)
                                                       if p >= threshold)
    best = res.metrics["psnr_best_iter"]
    assert best == 1 + gt.index(max(gt))
    raw = spy.outputs[best - 1][0]
    assert raw.min() < 0 and raw.max() > 1
    assert torch.allclose(res.images["output_best"], spy.outputs[best - 1][0].clamp(0, 1),
                          atol=1e-6)


def test_resuming_leaves_the_checkpoint_it_resumed_from_untouched(problem):
    """Resumed state is copied out of the checkpoint: the loop then changes its tensors in
    place (the smoothed output, the weights) without writing through to the checkpoint."""

    cfg = build(DipConfig, {**SMALL, "iters": 8, "report_every": 4})
    saved = {}
    fit(cfg, problem, dip_plan(cfg, problem),
        report=lambda it, m, state: saved.setdefault(it, state()))
    ckpt = saved[4]
    before = copy.deepcopy(ckpt)
    fit(cfg, problem, dip_plan(cfg, problem), resume=ckpt)

    def same(a, b) -> bool:
        if isinstance(a, torch.Tensor):
            return torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list | tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return a == b or (a != a and b != b)

    assert same(ckpt, before)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device() == pick_device("auto") == torch.device("cpu")
        with pytest.raises(DipddpmError, match="this machine has 0 CUDA device"):
            pick_device("cuda:1")
    for bad in ("tpu", "meta"):  # not a torch device; a torch device but not ours
        with pytest.raises(DipddpmError, match=f"^device must be auto, cpu, cuda or cuda:N, "
                                               f"got '{bad}'$"):
            pick_device(bad)


@pytest.mark.parametrize("rule", ["wmv", "emv"])
def test_the_loop_runs_the_rule_with_its_window_and_patience(spy, problem, rule):
    """The loop's iter_es is the rule (tested by hand in test_early_stop.py) fed the loop's
    outputs, with the configured window and patience: here both change the pick."""
    def pick(window: int, patience: int) -> int:
        es = ES_RULES.get(rule)(EsParams(window, patience), torch.zeros_like(spy.outputs[0]))
        for j, o in enumerate(spy.outputs):
            es.update(j + 1, o)
        return int(es.best_iter[0])

    cfg = build(DipConfig, {**SMALL, "iters": 30, "lr": 0.05, "es_rule": rule, "es_window": 3,
                            "es_patience": 2, "backtracking": False})
    res = run_dip(cfg, problem)
    assert res.metrics["iter_es"] == pick(3, 2)
    assert pick(3, 2) != pick(3, 1000) and pick(3, 2) != pick(100, 2)


def test_fused_members_must_share_shape_and_schedule(problem):
    cfg = build(DipConfig, {**SMALL, "iters": 2})
    plan = dip_plan(cfg, problem)
    with pytest.raises(DipddpmError, match=r"^a fit needs at least one member \(problem, "
                                           r"plan, seed\)$"):
        fit_members(cfg, [])
    wide = make_image_problem("skimage:camera", size=32, sigma=25, seed=0, grey=True)
    with pytest.raises(DipddpmError, match=r"^fused members need one image shape: member 2 has "
                                           r"\(1, 32, 32\), member 0 \(1, 16, 16\)$"):
        fit_members(cfg, [Member(problem, plan), Member(problem, plan), Member(wide, plan)])
    other = StagePlan([Stage(0, 1, lambda g: problem.observed),
                       Stage(0, 1, lambda g: problem.observed)])
    with pytest.raises(DipddpmError, match=r"^fused members need one stage schedule \(timesteps,"
                                           r" lengths, flags\): member 2 differs from member 0$"):
        fit_members(cfg, [Member(problem, plan), Member(problem, plan), Member(problem, other)])


@pytest.mark.parametrize("H, W, why", [
    (16, 18, "divisible by 4, got 16x18"), (18, 16, "divisible by 4, got 18x16"),
    (4, 8, "of at least 8 .*got 4x8"), (8, 4, "of at least 8 .*got 8x4")])
def test_an_image_the_net_cannot_take_is_one_error_naming_the_net(H, W, why):
    """depth 2: sizes divisible by 2^2 = 4, at least 8 (the coarsest scale keeps 2x2)."""
    cfg = build(DipConfig, SMALL)
    net = build_net("skip", 8, 1, 8, 2)
    assert (size_multiple(net), min_size(net)) == (4, 8)
    image = type("P", (), {"observed": torch.zeros(1, H, W)})()
    with pytest.raises(DipddpmError, match=f"^net 'skip' needs H and W {why}"):
        build_for_problem(cfg, 1, image)
    ok = type("P", (), {"observed": torch.zeros(1, 8, 12)})()
    assert build_for_problem(cfg, 1, ok) is not None


def test_wall_time_is_the_fits_own_and_adds_up_over_a_resume(problem):
    cfg = build(DipConfig, {**SMALL, "iters": 6, "report_every": 3})
    saved = {}
    t = time.perf_counter()
    whole = fit(cfg, problem, dip_plan(cfg, problem),
                report=lambda it, m, state: saved.setdefault(it, state()))
    elapsed = time.perf_counter() - t
    assert 0 < whole.metrics["wall_s"] <= elapsed
    assert 0 < saved[3]["wall_s"] < whole.metrics["wall_s"]
    t = time.perf_counter()
    resumed = fit(cfg, problem, dip_plan(cfg, problem), resume=saved[3])
    assert saved[3]["wall_s"] < resumed.metrics["wall_s"] <= (saved[3]["wall_s"]
                                                              + time.perf_counter() - t)


def test_fit_defaults_to_seed_0(problem):
    cfg = build(DipConfig, {**SMALL, "iters": 1})
    a = fit(cfg, problem, dip_plan(cfg, problem)).metrics["psnr_gt_final"]
    assert a == fit(cfg, problem, dip_plan(cfg, problem), seed=0).metrics["psnr_gt_final"]
    assert a != fit(cfg, problem, dip_plan(cfg, problem), seed=1).metrics["psnr_gt_final"]
