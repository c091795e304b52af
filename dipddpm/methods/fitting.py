"""The one fitting loop shared by DIP and guided DIP (docs/methods.md), for K members at once.

A `StagePlan` is a list of stages (timestep t_k, iterations n_k, a target drawn at the start of
the stage). Plain DIP is one stage whose target is the observation y. Per iteration j:

    z_j = z + reg_noise_std * N(0, I)          (fixed z, fresh perturbation)
    o_j = f(z_j);  loss = MSE(o_j, y_k);  backward
    o_sm <- s * o_sm + (1 - s) * o_j          (first o_sm = o_0)
    backtracking: at j % every != 0, if psnr_noisy fell more than drop dB below the last
    saved value, restore the saved weights ('original': the computed step is still applied;
    'clean': the step is skipped and Adam's state restored too); otherwise save
    optimizer step

The seams (each a registry whose entry is the only place that knows it): the plan's loss is a
sum of terms (loss_terms.py: MSE by default; SURE, TV, an autoencoding term), its input a rule
(input_rules.py: fixed z by default; the observation, the last output fed back, a noised
estimate), and the config's `output` names the output the fit reports (output_rules.py: last,
smoothed, a GT-free pick, an ensemble of replicates): `psnr_output` in reports and summary.

Members: K fits (each its own problem of one shape, plan of one schedule and seed) run as one
fused net (nn/fused.py) and one Adam (member_adam.py); the loss is the sum of the members'
losses, so each member gets exactly its own gradient. Backtracking, smoothing and the best
trackers act per member; backtracking copies only the members it concerns. One member is
the plain fit, on the same code. Metrics are device tensors, read back at reports (all
members in one read), so a GPU loop is not stalled every iteration (except for backtracking,
which needs psnr_noisy at once, as in the source).

GT-free early stopping (`es_rule`, early_stop.py) watches the shown outputs of the final stage
(the observation itself; the whole fit for plain DIP: earlier stages fit noisy targets by
design) on the device; its pick is scored against the ground truth only at reports and at the
end (`psnr_es`, `iter_es`; a fit shorter than the window picks its last output). Its pick of
the smoothed output (`psnr_es_sm`, `iter_es_sm`) is the smoothed output at the same iteration:
measured on a study's pairs, it beats the rule run on the smoothed sequence itself by 1.7 dB
(6 of 6 pairs; benchmarks/results/es_smoothed.json), whose variance keeps falling as the
smoothing damps it, so that rule picks the last iteration.

`FitState` holds everything the loop changes; a checkpoint (`state()`) is its fields, each
saved by its kind, and resume loads them back the same way (loop_state.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from dipddpm._compat import moved_names
from dipddpm.early_stop import ES_RULES, EsParams, RunningVariance
from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.methods.best_outputs import OracleOutputs
from dipddpm.methods.device import pick_device
from dipddpm.methods.input_rules import FIXED, InputRule
from dipddpm.methods.keys import FIT_METRICS
from dipddpm.methods.loop_state import GlobalRng, dump_state, load_state
from dipddpm.methods.loss_terms import MSE, LossInputs, LossTerm, total
from dipddpm.methods.member_adam import MemberAdam
from dipddpm.methods.output_rules import OUTPUTS, OutputRule
from dipddpm.metrics import BestTracker, psnr, ssim, ssim_each
from dipddpm.nn.fused import fuse, member_view
from dipddpm.nn.sizes import build_for_problem

__getattr__ = moved_names(__name__)  # names that moved out: _compat.MOVED_NAMES

MembersReport = Callable[[int, list[dict], Callable[[], dict]], None]
# every report of the loop carries these keys (a method entry's `metrics`; declared once, in
# methods/keys.py)
REPORT_KEYS = FIT_METRICS


@dataclass
class Stage:
    t: int  # diffusion timestep of the target (0 = the observation itself)
    iters: int  # iterations spent on this stage (may be 0)
    target: Callable[[torch.Generator], torch.Tensor]  # (C,H,W) in [0,1], drawn at stage start


@dataclass
class StagePlan:
    stages: list[Stage]
    reset_optimizer_each_stage: bool = False
    resample_input_each_stage: bool = False
    info: dict = field(default_factory=dict)  # e.g. scheduler counts, for the result
    loss_terms: tuple[LossTerm, ...] = MSE  # the loss seam: the sum of these (loss_terms.py)
    input_rule: InputRule = FIXED  # the input seam (input_rules.py)
    sigma: float | None = None  # this member's noise std in [0, 1] units, for loss terms
    # the trailing stages that fit the observation itself ("the final stage": what the GT-free
    # rule watches and iter_final counts); self-diffusion's every stage fits y
    final_stages: int = 1
    metrics: dict = field(default_factory=dict)  # this member's extra summary metrics

    @property
    def iters(self) -> int:
        return sum(s.iters for s in self.stages)

    def schedule(self) -> tuple:
        """What members fused together must share: stage timesteps, lengths and flags, the
        loss terms and the input rule (their parameters; each member's own values, such as
        its noise level, are not part of it)."""
        return (tuple((s.t, s.iters) for s in self.stages), self.reset_optimizer_each_stage,
                self.resample_input_each_stage, self.loss_terms, self.input_rule,
                self.final_stages)


@dataclass
class Member:
    """One fit of a fused run: its problem (observed, clean), its plan and its seed."""

    problem: Any
    plan: StagePlan
    seed: int = 0


def _quantize(v: torch.Tensor) -> torch.Tensor:
    """uint8 truncation, as the source that reports uint8 PSNR does."""
    return torch.floor(v * 255) / 255


def _psnr_of(mse: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(mse.clamp_min(1e-30))


@dataclass
class FitState:
    """Everything the loop changes; K members, per-member values are lists or dim 0."""

    net: torch.nn.Module
    opt: MemberAdam
    gens: list[torch.Generator]  # one per member: z, reg-noise and stage targets
    z: torch.Tensor  # (K, D, H, W)
    o_sm: torch.Tensor | None = None  # (K, C, H, W) smoothed output
    target: torch.Tensor | None = None  # (K, C, H, W) the current stage's targets
    shown: torch.Tensor | None = None  # (K, C, H, W) the output the metrics were taken from
    saved: dict | None = None  # backtracking copy: params (, moments), Adam steps
    psnr_noisy_last: list[float] = field(default_factory=list)
    n_backtracks: list[int] = field(default_factory=list)
    best_gt: list[BestTracker] = field(default_factory=list)
    best_sm: list[BestTracker] = field(default_factory=list)
    best_out: list[torch.Tensor | None] = field(default_factory=list)  # oracle: (C,H,W)
    last: list[dict] = field(default_factory=list)  # latest psnr_noisy, psnr_gt, psnr_gt_sm
    es: RunningVariance | None = None  # the GT-free early-stopping rule (None: es_rule none)
    pick_sm: torch.Tensor | None = None  # (K, C, H, W) the smoothed output at the rule's pick
    oracle_out: OracleOutputs | None = None  # best-psnr_gt outputs (an output rule needs them)
    j: int = 0  # iterations done
    wall_s: float = 0.0  # fitting time up to the last state()
    torch_rng: GlobalRng = field(default_factory=GlobalRng)


@dataclass
class Loop:
    """What the loop reads but never changes (and the not-yet-read metrics)."""

    cfg: Any
    members: list[Member]
    dev: torch.device
    y: torch.Tensor  # (K, C, H, W) observations
    x: torch.Tensor  # (K, C, H, W) clean images
    refs: torch.Tensor  # (K, 3, C, H, W): references of psnr_noisy, psnr_gt, psnr_gt_sm
    stage_idx: list[int]  # stage of every iteration
    params: list[torch.Tensor]
    report: MembersReport
    sigma: torch.Tensor  # (K,) the members' noise std (nan: not known), for loss terms
    output: OutputRule  # the output the fit reports (output_rules.py)
    pending: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (it, (K,3) MSEs)
    t0: float = 0.0
    wall_before: float = 0.0

    @property
    def K(self) -> int:
        return len(self.members)

    @property
    def N(self) -> int:
        return len(self.stage_idx)

    def plan(self, i: int = 0) -> StagePlan:
        return self.members[i].plan

    @property
    def final_start(self) -> int:
        """Iterations before the plan's final stage (0 for plain DIP): `iter_final`, the
        iterations done in the final stage, is ASHA's time under the final-stage rung rules
        (a plan whose final stage has no iterations is never judged on a noisy stage)."""
        final = self.plan().stages[-self.plan().final_stages:]
        return self.N - sum(s.iters for s in final)  # a 0-iteration last stage: never


def _check_members(members: list[Member]) -> None:
    if not members:
        raise DipddpmError("a fit needs at least one member (problem, plan, seed)")
    shape, sched = members[0].problem.observed.shape, members[0].plan.schedule()
    for i, m in enumerate(members[1:], 1):
        if m.problem.observed.shape != shape:
            raise DipddpmError(f"fused members need one image shape: member {i} has "
                               f"{tuple(m.problem.observed.shape)}, member 0 {tuple(shape)}")
        if m.plan.schedule() != sched:
            raise DipddpmError(f"fused members need one stage schedule (timesteps, lengths, "
                               f"flags): member {i} differs from member 0")


def _fused_net(cfg, members: list[Member], dev) -> torch.nn.Module:
    """Each member's net (torch's global seed = the member's seed), fused into one. The
    input rule sets the input channels (DIP's fixed z: input_depth; the observation: C)."""
    C = members[0].problem.observed.shape[0]
    in_ch = members[0].plan.input_rule.in_channels(cfg, C)
    net_cfg = cfg if in_ch == cfg.input_depth else dataclasses.replace(cfg, input_depth=in_ch)
    nets = []
    for m in members:
        torch.manual_seed(m.seed)
        nets.append(build_for_problem(net_cfg, C, m.problem))
    return fuse(nets, cfg.net).to(dev)


def _setup(cfg, members: list[Member], report: MembersReport, dev) -> tuple[Loop, FitState]:
    _check_members(members)
    y = torch.stack([m.problem.observed for m in members]).to(dev)  # (K,C,H,W)
    x = torch.stack([m.problem.clean for m in members]).to(dev)
    K, plan = len(members), members[0].plan
    net = _fused_net(cfg, members, dev)
    params = list(net.parameters())
    gens = [torch.Generator(device=dev).manual_seed(m.seed) for m in members]
    z = plan.input_rule.initial(cfg, y, gens)
    refs = torch.stack([y, x, x], dim=1)
    if cfg.psnr_uint8:
        refs = _quantize(refs)
    # stage k repeated for its iterations: [0] * n_0 + [1] * n_1 + ...
    stage_idx = torch.repeat_interleave(torch.tensor([s.iters for s in plan.stages])).tolist()
    sigma = torch.tensor([math.nan if m.plan.sigma is None else m.plan.sigma for m in members],
                         dtype=y.dtype, device=dev)
    loop = Loop(cfg, members, dev, y, x, refs, stage_idx, params, report, sigma,
                OUTPUTS.get(cfg.output))
    st = FitState(net=net, opt=MemberAdam(params, cfg.lr, K), gens=gens, z=z,
                  psnr_noisy_last=[-math.inf] * K, n_backtracks=[0] * K,
                  best_gt=[BestTracker(threshold=cfg.psnr_threshold) for _ in range(K)],
                  best_sm=[BestTracker() for _ in range(K)], best_out=[None] * K,
                  last=[{} for _ in range(K)])
    if cfg.es_rule != "none":
        st.es = ES_RULES.get(cfg.es_rule)(EsParams(cfg.es_window, cfg.es_patience),
                                          torch.zeros_like(y))
        st.pick_sm = torch.zeros_like(y)
    if loop.output.keeps_oracle:
        st.oracle_out = OracleOutputs(torch.zeros_like(y))
    return loop, st


def _start_stage(loop: Loop, st: FitState, k: int) -> None:
    """A stage's first iteration: its targets (drawn per member), a new Adam if asked, and
    the input rule's turn (a new z, a noised estimate)."""
    cfg, j = loop.cfg, st.j
    if loop.plan().stages[k].t:
        st.target = torch.stack([m.plan.stages[k].target(g).to(loop.dev)
                                 for m, g in zip(loop.members, st.gens, strict=True)])
    else:
        st.target = loop.y
    if j > 0 and loop.plan().reset_optimizer_each_stage:
        st.opt = MemberAdam(loop.params, cfg.lr, loop.K)
    loop.plan().input_rule.stage_start(loop, st, k)


def _net(st: FitState, z: torch.Tensor) -> torch.Tensor:
    """The fused net on (K, D, H, W) inputs -> (K, C, H, W) outputs."""
    K, _, H, W = z.shape
    return st.net(z.reshape(1, -1, H, W)).view(K, -1, H, W)


def _forward_backward(loop: Loop, st: FitState) -> tuple[torch.Tensor, torch.Tensor]:
    """Reg-noise, forward, the members' losses (K,) (the plan's terms), backward of their
    sum."""
    z_j = st.z
    if loop.cfg.reg_noise_std > 0:
        noise = torch.cat([torch.randn((1, *st.z.shape[1:]), generator=g, device=loop.dev)
                           for g in st.gens])
        z_j = st.z + loop.cfg.reg_noise_std * noise
    out = _net(st, z_j)
    losses = total(loop.plan().loss_terms, LossInputs(
        out, st.target, z_j, lambda v: _net(st, v), loop.sigma, st.gens))
    st.opt.zero_grad()
    losses.sum().backward()
    return out, losses


@torch.no_grad()
def _observe(loop: Loop, st: FitState, out: torch.Tensor) -> None:
    """The shown output, its smoothing, and this iteration's (K,3) MSEs (kept on device)."""
    cfg = loop.cfg
    st.shown = out.detach()
    if cfg.eval_metrics:
        st.net.eval()
        st.shown = _net(st, st.z)
        st.net.train()
    if cfg.smoothing == 0:
        st.o_sm = st.shown
    elif st.o_sm is None:
        st.o_sm = st.shown.clone()
    else:
        st.o_sm.lerp_(st.shown, 1 - cfg.smoothing)  # s * o_sm + (1 - s) * o_j, in place
    if st.es is not None and st.j >= loop.final_start:  # the final stage only: earlier
        st.es.update(st.j + 1, st.shown)  # stages fit noisy targets by design
        new = (st.es.best_iter == st.j + 1).view(-1, 1, 1, 1)  # a new pick: keep o_sm too
        st.pick_sm.copy_(torch.where(new, st.o_sm, st.pick_sm))
    a = torch.stack([st.shown, st.shown, st.o_sm], dim=1).clamp_(0, 1)
    if cfg.psnr_uint8:
        a = _quantize(a)
    mse = (a - loop.refs).square_().flatten(2).mean(2)
    loop.pending.append((st.j + 1, mse))
    if st.oracle_out is not None:
        st.oracle_out.update(mse[:, 1:], st.shown, st.o_sm)


def _copy_members(dst: list[torch.Tensor], src: list[torch.Tensor], idx: list[int],
                  K: int) -> None:
    """dst[member] <- src[member] for the members in idx (all: one foreach copy)."""
    if len(idx) == K:
        torch._foreach_copy_(dst, src)
    elif idx:
        torch._foreach_copy_([member_view(t, K)[i] for t in dst for i in idx],
                             [member_view(t, K)[i] for t in src for i in idx])


def _save_members(loop: Loop, st: FitState, idx: list[int]) -> None:
    clean = loop.cfg.backtrack_mode == "clean"
    if st.saved is None:
        st.saved = {"params": [p.detach().clone() for p in loop.params],
                    "moments": [m.clone() for m in st.opt.moments()] if clean else None,
                    "steps": list(st.opt.steps)}
        return
    _copy_members(st.saved["params"], loop.params, idx, loop.K)
    if clean:
        _copy_members(st.saved["moments"], st.opt.moments(), idx, loop.K)
    for i in idx:
        st.saved["steps"][i] = st.opt.steps[i]


@torch.no_grad()
def _backtrack(loop: Loop, st: FitState) -> list[int]:
    """Per member: restore the saved weights if psnr_noisy fell, else save. Returns the
    members whose step is skipped ('clean' mode) and restored after it."""
    cfg = loop.cfg
    if not cfg.backtracking or st.j % cfg.backtrack_every == 0:
        return []
    p_noisy = _psnr_of(loop.pending[-1][1][:, 0]).tolist()
    drop = [i for i, p in enumerate(p_noisy) if st.saved is not None
            and p - st.psnr_noisy_last[i] < -cfg.backtrack_drop_db]
    keep = [i for i in range(loop.K) if i not in drop]
    for i in drop:
        st.n_backtracks[i] += 1
    if drop and cfg.backtrack_mode == "original":  # the step is still applied
        _copy_members(loop.params, st.saved["params"], drop, loop.K)
    if keep:
        _save_members(loop, st, keep)
    for i in keep:
        st.psnr_noisy_last[i] = p_noisy[i]
    return drop if cfg.backtrack_mode == "clean" else []


@torch.no_grad()
def _restore_skipped(loop: Loop, st: FitState, idx: list[int]) -> None:
    """'clean' backtracking: these members end the iteration at their saved weights and
    Adam state, as if their step had not run."""
    _copy_members(loop.params, st.saved["params"], idx, loop.K)
    _copy_members(st.opt.moments(), st.saved["moments"], idx, loop.K)
    for i in idx:
        st.opt.steps[i] = st.saved["steps"][i]


def _step(loop: Loop, st: FitState, skipped: list[int]) -> None:
    if len(skipped) < loop.K:
        st.opt.step()
    if skipped:
        _restore_skipped(loop, st, skipped)


def _flush(loop: Loop, st: FitState) -> None:
    """Read back the pending metrics of all members at once; update the best trackers."""
    if not loop.pending:
        return
    vals = _psnr_of(torch.stack([m for _, m in loop.pending])).tolist()  # (n, K, 3)
    for (it, _), row in zip(loop.pending, vals, strict=True):
        for i, (p_noisy, p_gt, p_sm) in enumerate(row):
            st.best_gt[i].update(it, p_gt)
            st.best_sm[i].update(it, p_sm)
            st.last[i].update(psnr_noisy=p_noisy, psnr_gt=p_gt, psnr_gt_sm=p_sm)
    loop.pending.clear()


def _track(loop: Loop, st: FitState) -> None:
    """Flush when due; with `oracle`, keep each member's output at its best psnr_gt."""
    it, cfg = st.j, loop.cfg
    if not (cfg.oracle or it % cfg.report_every == 0 or it == loop.N):
        return
    _flush(loop, st)
    if cfg.oracle:  # flushed every iteration: best_iter == it is a new best at this one
        for i, b in enumerate(st.best_gt):
            if b.best_iter == it:
                st.best_out[i] = st.shown[i].clone()


def _report(loop: Loop, st: FitState, losses: torch.Tensor, state: Callable[[], dict]) -> None:
    it = st.j
    if not (it % loop.cfg.report_every == 0 or it == loop.N):
        return
    (p_es, i_es), (p_es_sm, i_es_sm) = es_pick(loop, st), es_pick(loop, st, smoothed=True)
    loss, ssims, p_es, i_es, p_es_sm, i_es_sm = torch.stack([
        losses.detach().double(), ssim_each(st.shown, loop.x), p_es, i_es.double(), p_es_sm,
        i_es_sm.double()]).tolist()
    for i, v in enumerate(loss):
        if not math.isfinite(v):
            raise FloatingPointError(f"loss is {v} at iteration {it}"
                                     + (f" (member {i})" if loop.K > 1 else ""))
    k = loop.stage_idx[it - 1]
    metrics = [{"iter": it, "loss": loss[i], **st.last[i], "ssim_gt": ssims[i],
                "psnr_best": st.best_gt[i].best, "psnr_best_iter": st.best_gt[i].best_iter,
                "psnr_es": p_es[i], "iter_es": int(i_es[i]),
                "psnr_es_sm": p_es_sm[i], "iter_es_sm": int(i_es_sm[i]),
                "stage": k + 1, "stage_t": loop.plan().stages[k].t,
                "iter_final": max(0, it - loop.final_start)} for i in range(loop.K)]
    for m in metrics:
        m["psnr_output"] = m[loop.output.report_key]
    loop.report(it, metrics, state)


@torch.no_grad()
def es_choice(loop: Loop, st: FitState, smoothed: bool = False) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """(K, C, H, W) the early-stopping rule's pick (`smoothed`: the smoothed output at that
    iteration) and (K,) its iteration, on the device; no rule, or none picked yet (a fit
    shorter than the window): the current output and iteration."""
    current = st.o_sm if smoothed else st.shown
    now = torch.full((loop.K,), st.j, dtype=torch.int64, device=loop.dev)
    if st.es is None:
        return current, now
    picked = st.es.best_iter > 0
    pick = st.pick_sm if smoothed else st.es.pick
    return (torch.where(picked.view(-1, 1, 1, 1), pick, current),
            torch.where(picked, st.es.best_iter, now))


@torch.no_grad()
def es_pick(loop: Loop, st: FitState, smoothed: bool = False) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """(K,) PSNR vs the clean image of the early-stopping rule's pick (`es_choice`) and (K,)
    its iteration, as device tensors."""
    pick, when = es_choice(loop, st, smoothed)
    a = pick.clamp(0, 1)
    if loop.cfg.psnr_uint8:
        a = _quantize(a)
    return _psnr_of((a - loop.refs[:, 1]).square().flatten(1).mean(1)).double(), when


def _iteration(loop: Loop, st: FitState, state: Callable[[], dict]) -> None:
    k = loop.stage_idx[st.j]
    if st.j == 0 or loop.stage_idx[st.j - 1] != k:
        _start_stage(loop, st, k)
    out, losses = _forward_backward(loop, st)
    _observe(loop, st, out)
    skipped = _backtrack(loop, st)
    _step(loop, st, skipped)
    st.j += 1
    loop.plan().input_rule.after(loop, st, out.detach())
    _track(loop, st)
    _report(loop, st, losses, state)


def _result(loop: Loop, st: FitState, i: int) -> Result:
    """Member i's summary metrics and images."""
    problem, last, bg, bs = loop.members[i].problem, st.last[i], st.best_gt[i], st.best_sm[i]
    with torch.no_grad():
        final = st.shown[i].clamp(0, 1).cpu()
        final_sm = st.o_sm[i].clamp(0, 1).cpu()
    summary = {
        "iters": loop.N, "wall_s": st.wall_s,
        "psnr_noisy_input": psnr(problem.observed, problem.clean),
        "psnr_gt_final": last["psnr_gt"], "psnr_gt_best": bg.best,
        "psnr_best_iter": bg.best_iter,
        "psnr_gt_sm_final": last["psnr_gt_sm"], "psnr_gt_sm_best": bs.best,
        "psnr_gt_sm_best_iter": bs.best_iter,
        "psnr_noisy_final": last["psnr_noisy"],
        "ssim_gt_final": ssim(final, problem.clean),
        "ssim_gt_sm_final": ssim(final_sm, problem.clean),
        "first_reach_iter": bg.first_reach_iter, "n_backtracks": st.n_backtracks[i],
        **es_summary(loop, st, i, bg.best),
    }
    summary["psnr_output"] = summary[loop.output.summary_key]
    summary.update(loop.members[i].plan.metrics)
    images = {"output": final, "output_sm": final_sm, **_rule_images(loop, st, i)}
    if st.best_out[i] is not None:  # kept under `oracle` only
        images["output_best"] = st.best_out[i].clamp(0, 1).cpu()
    return Result(metrics=summary, images=images, extra=dict(loop.members[i].plan.info))


@torch.no_grad()
def _rule_images(loop: Loop, st: FitState, i: int) -> dict[str, torch.Tensor]:
    """Member i's images that the output rule needs besides the last and smoothed outputs:
    the GT-free picks, the oracle-best outputs (an ensemble's)."""
    sources = {"output_es": lambda: es_choice(loop, st)[0],
               "output_es_sm": lambda: es_choice(loop, st, smoothed=True)[0],
               "output_oracle": lambda: st.oracle_out.images[0],
               "output_oracle_sm": lambda: st.oracle_out.images[1]}
    return {name: sources[name]()[i].clamp(0, 1).cpu() for name in loop.output.images
            if name in sources}


def es_summary(loop: Loop, st: FitState, i: int, psnr_best: float) -> dict:
    """Member i's early-stopping picks: iter_es, psnr_es and the gap to the oracle best;
    iter_es_sm, psnr_es_sm of the smoothed outputs."""
    p_es, i_es = (v.tolist() for v in es_pick(loop, st))
    p_sm, i_sm = (v.tolist() for v in es_pick(loop, st, smoothed=True))
    return {"iter_es": int(i_es[i]), "psnr_es": p_es[i], "es_gap_db": psnr_best - p_es[i],
            "iter_es_sm": int(i_sm[i]), "psnr_es_sm": p_sm[i]}


def fit_members(cfg, members: list[Member], report: MembersReport | None = None,
                resume: dict | None = None, device=None) -> list[Result]:
    """Run K members as one fused fit; `report(it, [metrics of each member], state)`.
    Each member's result equals its own `fit` with its seed (to float tolerance)."""
    dev = pick_device(device)
    loop, st = _setup(cfg, members, report or (lambda it, ms, state: None), dev)
    if resume is not None:
        load_state(st, resume, dev)
    loop.wall_before, loop.t0 = st.wall_s, time.perf_counter()

    def state() -> dict:
        st.wall_s = loop.wall_before + time.perf_counter() - loop.t0
        return dump_state(st)

    st.net.train()
    while st.j < loop.N:
        _iteration(loop, st, state)
    st.wall_s = loop.wall_before + time.perf_counter() - loop.t0
    return [_result(loop, st, i) for i in range(loop.K)]  # the last iteration flushed all


def fit(cfg, problem, plan: StagePlan, report: Report = no_report, seed: int = 0,
        resume: dict | None = None, device=None) -> Result:
    """Run the plan; returns summary metrics and the final (and smoothed) output images.
    The one-member case of `fit_members`."""

    def one(it: int, metrics: list[dict], state: Callable[[], dict]) -> None:
        report(it, metrics[0], state)

    return fit_members(cfg, [Member(problem, plan, seed)], one, resume, device)[0]
