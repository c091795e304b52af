"""Fused fits (K members as one net) equal K separate fits with the same seeds (issue 12).

The fits run in float64: there the fused net's grouped convolutions give the separate fits'
numbers to ~1e-12, so every metric of every report can be compared tightly. (In float32 the
rounding differences of grouped vs plain convolutions are chaotic in a DIP fit and grow to
~0.01 dB within 50 iterations; `test_float32_fused_is_close_early` checks that regime.)
"""

import dataclasses

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.methods import dip, guided_dip
from dipddpm.methods.fitting import Member, StagePlan, fit, fit_members
from dipddpm.methods.member_adam import MemberAdam
from dipddpm.nn import build_net
from dipddpm.nn.fused import cat_members, fuse, member_state_dict

TINY = {"width": 8, "depth": 3, "input_depth": 8, "iters": 30, "report_every": 5}
NETS = {"skip": {}, "skip_snail": {}, "skip_small": {"width": None, "depth": None},
        "unet": {"width": 4}, "segnet": {"width": 4}}
TOL = 1e-9


def problem(seed: int, dtype=torch.float64):
    p = make_image_problem("skimage:astronaut", size=32, sigma=25, multiple=8, seed=seed)
    return dataclasses.replace(p, observed=p.observed.to(dtype), clean=p.clean.to(dtype))


def plan_of(cfg, prob) -> StagePlan:
    if isinstance(cfg, guided_dip.GuidedDipConfig):
        return guided_dip.make_plan(cfg, prob)
    return dip.dip_plan(cfg, prob)


def separate(cfg, probs, seeds):
    """Each member's own fit: its reports and result."""
    out = []
    for prob, seed in zip(probs, seeds, strict=True):
        rows = []
        res = fit(cfg, prob, plan_of(cfg, prob), seed=seed,
                  report=lambda it, m, s, rows=rows: rows.append(dict(m)))
        out.append((rows, res))
    return out


def fused(cfg, probs, seeds, resume=None, keep_state_at=None):
    rows, kept = [], {}

    def report(it, ms, state):
        rows.append([dict(m) for m in ms])
        if it == keep_state_at:
            kept["state"] = state()

    members = [Member(p, plan_of(cfg, p), s) for p, s in zip(probs, seeds, strict=True)]
    res = fit_members(cfg, members, report, resume=resume)
    return rows, res, kept.get("state")


def assert_same(sep, rows, res, tol=TOL):
    for i, (srows, sres) in enumerate(sep):
        mine = [r[i] for r in rows]
        assert [r["iter"] for r in mine] == [r["iter"] for r in srows]
        for a, b in zip(srows, mine, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert b[k] == pytest.approx(a[k], abs=tol), (i, a["iter"], k)
        for k, v in sres.metrics.items():
            if k != "wall_s":
                assert res[i].metrics[k] == pytest.approx(v, abs=tol), (i, k)
        assert res[i].images.keys() == sres.images.keys()
        for k, img in sres.images.items():
            assert torch.allclose(res[i].images[k], img, atol=tol, rtol=0), (i, k)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("K", [1, 3])
def test_fused_members_equal_separate_fits(float64, net, K):
    cfg = build(dip.DipConfig, {**TINY, **NETS[net], "net": net})
    probs, seeds = [problem(0)] * K, [3, 4, 5][:K]
    sep = separate(cfg, probs, seeds)
    rows, res, _ = fused(cfg, probs, seeds)
    assert_same(sep, rows, res)
    if K > 1:  # the members really differ (else equality would prove little)
        assert len({r.metrics["psnr_gt_final"] for r in res}) == K


@pytest.mark.parametrize("K", [1, 3])
def test_guided_members_with_their_own_problems_and_stage_targets(float64, K):
    """Members share the stage schedule, not the targets: each draws its own from its own
    generator and its own observation (here each member has its own noisy image, as the
    members of an image set will)."""
    cfg = build(guided_dip.GuidedDipConfig, {
        **TINY, "stages": 3, "reset_optimizer_each_stage": True,
        "resample_input_each_stage": True, "eval_metrics": True, "oracle": True})
    probs, seeds = [problem(s) for s in (0, 1, 2)][:K], [7, 8, 9][:K]
    sep = separate(cfg, probs, seeds)
    rows, res, _ = fused(cfg, probs, seeds)
    assert_same(sep, rows, res)
    assert all("output_best" in r.images for r in res)


def _one_member_backtracks(mode: str):
    """A config and seeds whose separate fits backtrack in exactly one member."""
    cfg = build(dip.DipConfig, {**TINY, "iters": 40, "lr": 0.05, "backtrack_drop_db": 0.3,
                                "backtrack_mode": mode})
    probs, seeds = [problem(0)] * 3, [5, 3, 6]
    sep = separate(cfg, probs, seeds)
    counts = [r.metrics["n_backtracks"] for _, r in sep]
    assert sum(c > 0 for c in counts) == 1, counts  # the premise of the test
    return cfg, probs, seeds, sep


@pytest.mark.parametrize("mode", ["original", "clean"])
def test_backtracking_in_one_member_only(float64, mode):
    cfg, probs, seeds, sep = _one_member_backtracks(mode)
    rows, res, _ = fused(cfg, probs, seeds)
    assert_same(sep, rows, res)
    assert [r.metrics["n_backtracks"] for r in res] == [r.metrics["n_backtracks"]
                                                         for _, r in sep]


@pytest.mark.parametrize("K", [1, 3])
def test_resume_from_a_mid_fit_checkpoint(float64, K):
    cfg = build(dip.DipConfig, {**TINY, "lr": 0.05, "backtrack_drop_db": 0.3,
                                "backtrack_mode": "clean"})
    probs, seeds = [problem(0)] * K, [0, 1, 5][:K]
    rows, res, state = fused(cfg, probs, seeds, keep_state_at=15)
    state = torch.load(_saved(state), weights_only=True)  # through bytes, as a sweep does
    again_rows, again, _ = fused(cfg, probs, seeds, resume=state)
    assert again_rows == rows[3:]
    for a, b in zip(res, again, strict=True):
        assert {k: v for k, v in a.metrics.items() if k != "wall_s"} == {
            k: v for k, v in b.metrics.items() if k != "wall_s"}
        assert torch.equal(a.images["output"], b.images["output"])
    assert_same(separate(cfg, probs, seeds), rows, res)


def _saved(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_float32_fused_is_close_early():
    cfg = build(dip.DipConfig, {**TINY, "iters": 10, "report_every": 5})
    probs, seeds = [problem(0, torch.float32)] * 3, [3, 4, 5]
    sep = separate(cfg, probs, seeds)
    rows, res, _ = fused(cfg, probs, seeds)
    assert_same(sep, rows, res, tol=1e-3)


@pytest.mark.parametrize("net", list(NETS))
def test_fused_net_is_each_member_forward_and_backward(float64, net):
    """Train-mode forward (BatchNorm batch statistics per member), gradients, eval mode, and
    the split of the fused weights back into each member's."""
    kw = {**TINY, **NETS[net]}
    nets = []
    for k in range(3):
        torch.manual_seed(k)
        nets.append(build_net(net, 8, 3, kw["width"], kw["depth"]))
    f = fuse(nets, net)
    z, t = torch.rand(3, 8, 32, 32), torch.rand(3, 3, 32, 32)
    out = f(z.reshape(1, -1, 32, 32)).view(3, 3, 32, 32)
    ref = torch.cat([n(z[k:k + 1]) for k, n in enumerate(nets)])
    assert torch.allclose(out, ref, atol=1e-12)
    (out - t).square().sum().backward()
    (ref - t).square().sum().backward()
    for k, n in enumerate(nets):
        for p, q in zip(f.parameters(), n.parameters(), strict=True):
            assert torch.allclose(p.grad.view(3, -1)[k], q.grad.flatten(), atol=1e-10)
    f.eval()
    for n in nets:
        n.eval()
    out = f(z.reshape(1, -1, 32, 32)).view(3, 3, 32, 32)
    assert torch.allclose(out, torch.cat([n(z[k:k + 1]) for k, n in enumerate(nets)]),
                          atol=1e-12)
    for k, n in enumerate(nets):
        sd = member_state_dict(f, k, 3)
        assert all(torch.equal(sd[key], v) for key, v in n.state_dict().items())


def test_cat_members_joins_each_members_channels():
    a = torch.arange(2 * 2 * 1 * 1.).view(1, 4, 1, 1)  # 2 members x 2 channels
    b = 100 + torch.arange(2 * 1 * 1 * 1.).view(1, 2, 1, 1)  # 2 members x 1 channel
    assert cat_members([a, b], 2).flatten().tolist() == [0, 1, 100, 2, 3, 101]
    assert torch.equal(cat_members([a, b], 1), torch.cat([a, b], 1))


def test_a_net_that_cannot_be_fused_is_one_line_naming_it():
    from dipddpm.errors import DipddpmError

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.GroupNorm(1, 3))
    with pytest.raises(DipddpmError, match="net 'mine' cannot be fused: it holds a GroupNorm"):
        fuse([net, net], "mine")


def test_member_adam_with_diverged_steps_is_each_members_adam(float64):
    """After member 1's step count is set back (as 'clean' backtracking does), the fused
    update equals torch's Adam run per member with that member's count."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(2, 5))
    own = [torch.nn.Parameter(p.detach()[k].clone()) for k in range(2)]
    opt = MemberAdam([p], 0.1, 2)
    refs = [torch.optim.Adam([q], lr=0.1) for q in own]
    for step in range(6):
        g = torch.randn(2, 5)
        p.grad = g.clone()
        opt.step()
        for k in range(2):
            if step == 3 and k == 1:
                continue  # member 1 skips step 3 (state kept as before it)
            own[k].grad = g[k].clone()
            refs[k].step()
        if step == 3:  # undo member 1's step 3: weights, moments and count
            st = opt.opt.state[p]
            p.data[1] = own[1].data
            st["exp_avg"][1] = refs[1].state[own[1]]["exp_avg"]
            st["exp_avg_sq"][1] = refs[1].state[own[1]]["exp_avg_sq"]
            opt.steps[1] -= 1
    assert opt.steps == [6, 5]
    for k in range(2):
        assert torch.allclose(p.detach()[k], own[k].detach(), atol=1e-12)
