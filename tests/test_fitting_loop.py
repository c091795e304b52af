"""The fitting loop's rules (SPEC §2.2, §2.4, §2.5, §4.2), seen from outside the loop.

The net the loop builds (`fitting.build_for_problem`) is spied on with hooks: each forward's
input z_j, weights and output o_j, and each backward's gradients. Every expectation is then
computed here from those records and the formulas, and compared with what `fit` reports and
returns. Nothing reads the loop's local variables or its checkpoint layout.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.methods import fitting
from dipddpm.methods.dip import DipConfig, run_dip
from dipddpm.methods.fitting import Stage, StagePlan, fit
from dipddpm.methods.guided_dip import GuidedDipConfig, run_guided_dip

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
    """SPEC §2.5 replayed from the records: the expected weights after each iteration j (the
    next forward's), the saved weights j restored (None: no backtrack), and the count."""
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
    from dipddpm.metrics import ssim

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
