"""The fitting loop's seams (methods/loss_terms.py, input_rules.py, output_rules.py): every
registered loss term, input rule and output rule keeps a fused fit equal to K separate fits
(float64, as tests/test_fusion.py), resumes exactly, and adds no host sync to an iteration.

Each check runs over the registries, so a new entry is covered by registering it (every entry
has defaults for all its parameters: `REGISTRY.get(name)()` is its example)."""

from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import pytest
import torch

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.fitting import Member, Stage, StagePlan, fit, fit_members
from dipddpm.methods.input_rules import INPUTS, FixedInput, ObservationInput
from dipddpm.methods.loss_terms import LOSSES, MSE, LossInputs
from dipddpm.methods.output_rules import OUTPUTS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dip_modes  # noqa: E402  (its NoHostSync dispatch mode)

TINY = {"width": 8, "depth": 2, "input_depth": 4, "iters": 9, "report_every": 3,
        "es_window": 3, "es_patience": 4, "lr": 0.02}
TOL = 1e-9


def problem(seed: int, dtype=torch.float64):
    p = make_image_problem("skimage:astronaut", size=16, sigma=25, multiple=4, seed=seed)
    return dataclasses.replace(p, observed=p.observed.to(dtype), clean=p.clean.to(dtype))


def plan_with(prob, loss=MSE, input_rule=FixedInput(), iters=9) -> StagePlan:
    """Three stages fitting y (so a rule acting at stage starts acts twice), this member's
    sigma for the terms that need it."""
    n = iters // 3
    stages = [Stage(t=0, iters=n, target=lambda g: prob.observed) for _ in range(3)]
    return StagePlan(stages, loss_terms=tuple(loss), input_rule=input_rule,
                     sigma=prob.noise_std)


def run_both(cfg, plans_of, seeds=(3, 4, 5)):
    """(each member's own fit: reports, result) and (the fused fit's reports, results)."""
    probs = [problem(s) for s in range(len(seeds))]
    sep = []
    for prob, seed in zip(probs, seeds, strict=True):
        rows = []
        res = fit(cfg, prob, plans_of(prob), seed=seed,
                  report=lambda it, m, s, rows=rows: rows.append(dict(m)))
        sep.append((rows, res))
    rows = []
    res = fit_members(cfg, [Member(p, plans_of(p), s) for p, s in zip(probs, seeds,
                                                                        strict=True)],
                      lambda it, ms, s: rows.append([dict(m) for m in ms]))
    return sep, rows, res


def assert_same(sep, rows, res, tol=TOL):
    for i, (srows, sres) in enumerate(sep):
        mine = [r[i] for r in rows]
        assert len(mine) == len(srows)
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
    finals = {round(r.metrics["psnr_gt_final"], 6) for r in res}
    assert len(finals) == len(res)  # the members really differ


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_term_fused_equals_separate(float64, name):
    """Each term added to the MSE (or alone), on the observation as input (a term may read
    the input as an image: the autoencoding term, SURE's probe)."""
    term = LOSSES.get(name)()
    cfg = build(DipConfig, {**TINY, "reg_noise_std": 0.02})
    assert_same(*run_both(cfg, lambda p: plan_with(p, (*MSE, term), ObservationInput())))


@dataclasses.dataclass(frozen=True)
class ToyL1:
    """CONTRIBUTING.md's loss-term guide followed: an L1 data term, per member."""

    weight: float = 0.1

    def __call__(self, x: LossInputs) -> torch.Tensor:
        return self.weight * (x.out - x.target).abs().flatten(1).mean(1)


def test_a_loss_term_registered_in_a_test_is_checked_by_the_same_helpers(float64):
    LOSSES.register("toy_l1")(ToyL1)
    try:
        assert "toy_l1" in LOSSES.names()
        term = LOSSES.get("toy_l1")()
        cfg = build(DipConfig, TINY)
        assert_same(*run_both(cfg, lambda p: plan_with(p, (*MSE, term))))
        # it changes the fit: the same plan without it ends elsewhere
        with_term = run_both(cfg, lambda p: plan_with(p, (*MSE, term)), seeds=(3,))[0]
        without = run_both(cfg, lambda p: plan_with(p, MSE), seeds=(3,))[0]
        assert with_term[0][1].metrics["psnr_gt_final"] != without[0][1].metrics["psnr_gt_final"]
    finally:
        LOSSES.unregister("toy_l1")
    assert "toy_l1" not in LOSSES.names()


@pytest.mark.parametrize("name", INPUTS.names())
def test_every_input_rule_fused_equals_separate(float64, name):
    rule = INPUTS.get(name)()
    cfg = build(DipConfig, TINY)
    assert_same(*run_both(cfg, lambda p: plan_with(p, input_rule=rule)))


@pytest.mark.parametrize("name", OUTPUTS.names())
def test_every_output_rule_fused_equals_separate(float64, name):
    cfg = build(DipConfig, {**TINY, "output": name})
    sep, rows, res = run_both(cfg, lambda p: plan_with(p))
    assert_same(sep, rows, res)
    rule = OUTPUTS.get(name)
    for r in res:  # the reported output: its PSNR is psnr_output, its image is there
        assert r.metrics["psnr_output"] == r.metrics[rule.summary_key]
        assert set(rule.images) <= set(r.images)
    assert all(m["psnr_output"] == m[rule.report_key] for row in rows for m in row)


def _saved(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name", INPUTS.names())
def test_every_input_rule_resumes_exactly(float64, name):
    """A fit resumed from iteration 4 (mid-stage, mid feedback period) reports and returns
    what the uninterrupted one does: the rule's state is the loop's."""
    rule = INPUTS.get(name)()
    cfg = build(DipConfig, {**TINY, "report_every": 1, "output": "ensemble"})
    prob = problem(0)
    whole, kept = [], {}

    def report(it, m, state):
        whole.append(dict(m))
        if it == 4:
            kept["s"] = _saved(state())

    res = fit(cfg, prob, plan_with(prob, input_rule=rule), report=report, seed=2)
    again = []
    res2 = fit(cfg, prob, plan_with(prob, input_rule=rule), seed=2, resume=kept["s"],
               report=lambda it, m, s: again.append(dict(m)))
    assert again == whole[4:]
    assert {k: v for k, v in res.metrics.items() if k != "wall_s"} == {
        k: v for k, v in res2.metrics.items() if k != "wall_s"}
    for k, img in res.images.items():
        assert torch.equal(img, res2.images[k]), k


def _inputs(K: int = 2) -> tuple[LossInputs, torch.nn.Module]:
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    z = torch.rand(K, 3, 8, 8)
    gens = [torch.Generator().manual_seed(i) for i in range(K)]
    out = net(z)
    return LossInputs(out, torch.rand(K, 3, 8, 8), z, net, torch.full((K,), 0.1), gens), net


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_term_reads_nothing_back_to_the_host(name):
    """One loss evaluation and its backward under the dispatch mode that refuses
    `aten._local_scalar_dense` (.item(), .tolist(), bool(t)) and data-dependent shapes."""
    x, net = _inputs()
    term = LOSSES.get(name)()
    with dip_modes.NoHostSync():
        losses = term(x)
        losses.sum().backward()
    assert losses.shape == (2,)


class _State:
    """The few FitState fields an input rule touches, for a check outside the loop."""

    def __init__(self, z, shown, gens, j):
        self.z, self.shown, self.gens, self.j = z, shown, gens, j


class _Loop:
    def __init__(self, cfg):
        self.cfg, self.dev = cfg, torch.device("cpu")

    def plan(self):
        return StagePlan([])


@pytest.mark.parametrize("name", INPUTS.names())
def test_every_input_rule_reads_nothing_back_to_the_host(name):
    rule = INPUTS.get(name)()
    cfg = build(DipConfig, {**TINY, "input_depth": 3})
    y = torch.rand(2, 3, 8, 8)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    z = rule.initial(cfg, y, gens)
    st = _State(z, torch.rand(2, 3, 8, 8), gens, j=6)
    with dip_modes.NoHostSync():
        rule.stage_start(_Loop(cfg), st, 1)
        rule.after(_Loop(cfg), st, torch.rand(2, 3, 8, 8))
    assert st.z.shape[0] == 2


def test_an_iteration_of_each_family_method_syncs_only_where_plain_dip_does(monkeypatch):
    """The loop's own host reads (backtracking's psnr_noisy, a report's one read-back) are
    switched off; one iteration of every method with its loss, input and output rule then
    runs under NoHostSync up to the optimizer step (CPU Adam reads its step count)."""
    from dipddpm.methods import METHODS, fitting

    for name in ("dip", "self_diffusion", "dip_sure", "aseq_dip", "dip_tv"):
        m = METHODS.get(name)
        cfg = build(m.config_cls, {**m.example_config, "backtracking": False,
                                   "report_every": 1000, "output": "ensemble"})
        prob = m.make_problem(dict(m.example_problem), cfg)
        loop, st = fitting._setup(cfg, [Member(prob, m.plan(cfg, prob), 0)],
                                  lambda *a: None, torch.device("cpu"))
        fitting._start_stage(loop, st, 0)
        with dip_modes.NoHostSync():
            out, _ = fitting._forward_backward(loop, st)
            fitting._observe(loop, st, out)
            st.j += 1
            loop.plan().input_rule.after(loop, st, out.detach())
        assert loop.pending, name


def test_the_default_plan_is_dip_itself():
    """The seams' defaults are plain DIP's: MSE, the fixed z, the last output."""
    plan = StagePlan([Stage(0, 1, lambda g: None)])
    assert plan.loss_terms == MSE and plan.input_rule == FixedInput()
    assert DipConfig().output == "last" and OUTPUTS.get("last").report_key == "psnr_gt"


def test_members_with_other_loss_or_input_are_not_fused():
    prob = problem(0, torch.float32)
    cfg = build(DipConfig, TINY)
    a = plan_with(prob)
    b = plan_with(prob, (*MSE, LOSSES.get("tv")()))
    from dipddpm.errors import DipddpmError

    with pytest.raises(DipddpmError, match="one stage schedule"):
        fit_members(cfg, [Member(prob, a, 0), Member(prob, b, 1)])
    c = plan_with(prob, input_rule=ObservationInput())
    with pytest.raises(DipddpmError, match="one stage schedule"):
        fit_members(cfg, [Member(prob, a, 0), Member(prob, c, 1)])


@pytest.mark.parametrize("method", ["dip", "guided_dip", "self_diffusion", "dip_sure",
                                    "aseq_dip", "dip_tv"])
def test_the_smoothed_pick_and_the_reported_output_are_sweep_objectives(method):
    """metric: psnr_es_sm (the GT-free pick of the smoothed output) and psnr_output are
    valid, with the smoothing constant searched; psnr_es_sm without a rule is refused."""
    from dipddpm.errors import ConfigError
    from dipddpm.sweep.spec import parse_spec

    base = {"name": "o", "method": method, "preset": "tiny",
            "problem": {"image": "skimage:astronaut", "size": 32}, "mode": "max",
            "fixed": {"iters": 20, "depth": 2}, "scheduler": {"type": "none"},
            "search": {"smoothing": {"choice": [0.9, 0.99]}}}
    for metric in ("psnr_es_sm", "psnr_output"):
        assert parse_spec({**base, "metric": metric}).metric == metric
    with pytest.raises(ConfigError, match="metric: psnr_es_sm is the pick of a GT-free"):
        parse_spec({**base, "metric": "psnr_es_sm",
                    "fixed": {**base["fixed"], "es_rule": "none"}})
