"""The one fitting loop shared by DIP and guided DIP (SPEC §2, §4).

A `StagePlan` is a list of stages (timestep t_k, iterations n_k, a target drawn at the start of
the stage). Plain DIP is one stage whose target is the observation y. Per iteration j:

    z_j = z + reg_noise_std * N(0, I)          (fixed z, fresh perturbation)
    o_j = f(z_j);  loss = MSE(o_j, y_k);  backward
    o_sm <- s * o_sm + (1 - s) * o_j          (first o_sm = o_0)
    backtracking: at j % every != 0, if psnr_noisy fell more than drop dB below the last
    saved value, restore the saved weights ('original': the computed step is still applied;
    'clean': the step is skipped and Adam's state restored too); otherwise save
    optimizer step

Metrics are kept as device tensors and read back only at reports, so a GPU loop is not stalled
every iteration (except for backtracking, which needs psnr_noisy at once, as in the source).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Report, Result, no_report
from dipddpm.metrics import BestTracker, psnr, ssim
from dipddpm.nn import build_net, min_size, size_multiple


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

    @property
    def iters(self) -> int:
        return sum(s.iters for s in self.stages)


def pick_device(device=None) -> torch.device:
    """None/'auto': the current CUDA device if there is one (never assumes index 0), else CPU.
    A device that does not exist here is a user error, not a crash deep in the loop."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DipddpmError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            raise DipddpmError(f"device {device!r}: this machine has {n} CUDA device(s); "
                               f"use --device auto or cpu")
    elif dev.type != "cpu":
        raise DipddpmError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return dev


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    """A CPU copy that never aliases the live tensor (for checkpoints)."""
    return None if t is None else t.detach().to("cpu", copy=True)


def _quantize(v: torch.Tensor) -> torch.Tensor:
    """uint8 truncation, as the source that reports uint8 PSNR does."""
    return torch.floor(v * 255) / 255


def _psnr_of(mse: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(mse.clamp_min(1e-30))


def build_for_problem(cfg, channels: int, problem) -> torch.nn.Module:
    net = build_net(cfg.net, cfg.input_depth, channels, cfg.width, cfg.depth, cfg.net_sigmoid)
    check_size(net, cfg.net, *problem.observed.shape[-2:])
    return net


def check_size(net: torch.nn.Module, name: str, H: int, W: int) -> None:
    """The image must fit the net: H, W divisible by its multiple and at least its minimum."""
    m, low = size_multiple(net), min_size(net)
    if H % m or W % m:
        raise DipddpmError(
            f"net {name!r} needs H and W divisible by {m}, got {H}x{W}; "
            f"crop the image (make_image_problem(multiple={m})) or use a smaller depth")
    if min(H, W) < low:
        raise DipddpmError(
            f"net {name!r} needs H and W of at least {low} (its coarsest scale must keep "
            f"2x2 values), got {H}x{W}; use a larger --size or a smaller depth "
            f"(--set depth=N)")


def _draw_input(cfg, shape, g: torch.Generator, device) -> torch.Tensor:
    if cfg.input_noise == "uniform":
        z = torch.rand(shape, generator=g, device=device) * cfg.input_scale
    else:
        z = torch.randn(shape, generator=g, device=device) * cfg.input_scale
    return z


def fit(cfg, problem, plan: StagePlan, report: Report = no_report, seed: int = 0,
        resume: dict | None = None, device=None) -> Result:
    """Run the plan; returns summary metrics and the final (and smoothed) output images."""
    dev = pick_device(device)
    y = problem.observed.to(dev)[None]  # (1,C,H,W)
    x = problem.clean.to(dev)[None]
    C, H, W = problem.observed.shape
    torch.manual_seed(seed)
    net = build_for_problem(cfg, C, problem).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    g = torch.Generator(device=dev).manual_seed(seed)
    z = _draw_input(cfg, (1, cfg.input_depth, H, W), g, dev)

    N = plan.iters
    stage_idx = torch.repeat_interleave(torch.arange(len(plan.stages)),
                                        torch.tensor([s.iters for s in plan.stages])).tolist()
    params = list(net.parameters())
    # references of the three tracked PSNRs: [output vs y, output vs x, smoothed vs x]
    refs = torch.cat([y, x, x])  # (3,C,H,W)
    if cfg.psnr_uint8:
        refs = _quantize(refs)

    def mses(shown: torch.Tensor, o_sm: torch.Tensor) -> torch.Tensor:  # (3,) on the device
        a = torch.cat([shown, shown, o_sm]).clamp_(0, 1)
        if cfg.psnr_uint8:
            a = _quantize(a)
        return (a - refs).square_().flatten(1).mean(1)

    best_gt = BestTracker(threshold=cfg.psnr_threshold)
    best_sm = BestTracker()
    o_sm = None
    target = None
    saved = None  # backtracking: (params copy, optimizer state copy or None)
    psnr_noisy_last = -math.inf
    n_backtracks = 0
    best_out = None
    pending: list[tuple[int, torch.Tensor]] = []  # (iteration, its (3,) MSEs), read lazily
    last: dict[str, float] = {}  # latest psnr_noisy, psnr_gt, psnr_gt_sm
    start_j = 0
    wall_before = 0.0
    if resume is not None:
        net.load_state_dict(resume["net"])
        opt.load_state_dict(resume["opt"])
        g.set_state(resume["gen"].to(g.get_state().device))
        z, o_sm, target = (resume[k].to(dev) if resume[k] is not None else None
                           for k in ("z", "o_sm", "target"))
        saved = resume["saved"]
        if saved is not None:
            saved = ([p.to(dev, copy=True) for p in saved[0]], saved[1])
        psnr_noisy_last, n_backtracks = resume["psnr_noisy_last"], resume["n_backtracks"]
        best_gt.load_state_dict(resume["best_gt"])
        best_sm.load_state_dict(resume["best_sm"])
        best_out = resume["best_out"].to(dev) if resume["best_out"] is not None else None
        start_j, wall_before = resume["j"], resume["wall_s"]
        last.update(resume["last"])
        torch.set_rng_state(resume["torch_rng"])

    t0 = time.perf_counter()

    def state() -> dict:
        return {
            "net": copy.deepcopy(net.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
            "gen": g.get_state(), "z": _cpu(z), "o_sm": _cpu(o_sm), "target": _cpu(target),
            "saved": None if saved is None else ([_cpu(p) for p in saved[0]],
                                                 copy.deepcopy(saved[1])),
            "psnr_noisy_last": psnr_noisy_last, "n_backtracks": n_backtracks,
            "best_gt": best_gt.state_dict(), "best_sm": best_sm.state_dict(),
            "best_out": _cpu(best_out), "shown": _cpu(shown), "last": dict(last), "j": j + 1,
            "wall_s": wall_before + time.perf_counter() - t0,
            "torch_rng": torch.get_rng_state(),
        }

    def flush() -> None:
        """Read back the pending per-iteration metrics and update the best-so-far trackers."""
        nonlocal best_out
        if not pending:
            return
        vals = _psnr_of(torch.stack([m for _, m in pending])).tolist()
        for (it, _), (p_noisy, p_gt, p_sm) in zip(pending, vals, strict=True):
            best_gt.update(it, p_gt)
            best_sm.update(it, p_sm)
            last.update(psnr_noisy=p_noisy, psnr_gt=p_gt, psnr_gt_sm=p_sm)
        pending.clear()

    net.train()
    j = start_j - 1
    for j in range(start_j, N):
        k = stage_idx[j]
        stage = plan.stages[k]
        new_stage = j == 0 or stage_idx[j - 1] != k
        if new_stage:
            target = stage.target(g).to(dev)[None] if stage.t else y
            if j > 0 and plan.reset_optimizer_each_stage:
                opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            if j > 0 and plan.resample_input_each_stage:
                z = _draw_input(cfg, z.shape, g, dev)

        z_j = z
        if cfg.reg_noise_std > 0:
            z_j = z + cfg.reg_noise_std * torch.randn(z.shape, generator=g, device=dev)
        out = net(z_j)  # (1,C,H,W)
        loss = F.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()

        with torch.no_grad():
            shown = out.detach()
            if cfg.eval_metrics:
                net.eval()
                shown = net(z)
                net.train()
            if cfg.smoothing == 0:
                o_sm = shown
            elif o_sm is None:
                o_sm = shown.clone()
            else:
                o_sm.lerp_(shown, 1 - cfg.smoothing)  # s * o_sm + (1 - s) * o_j, in place
            it = j + 1
            pending.append((it, mses(shown, o_sm)))

            skip_step = False
            if cfg.backtracking and j % cfg.backtrack_every:
                p_noisy = _psnr_of(pending[-1][1][0]).item()
                if p_noisy - psnr_noisy_last < -cfg.backtrack_drop_db and saved is not None:
                    torch._foreach_copy_(params, saved[0])
                    n_backtracks += 1
                    if cfg.backtrack_mode == "clean":
                        opt.load_state_dict(saved[1])
                        skip_step = True
                else:
                    if saved is None:
                        saved = ([p.detach().clone() for p in params], None)
                    else:
                        torch._foreach_copy_(saved[0], params)
                    if cfg.backtrack_mode == "clean":
                        saved = (saved[0], copy.deepcopy(opt.state_dict()))
                    psnr_noisy_last = p_noisy
        if not skip_step:
            opt.step()

        if cfg.oracle or it % cfg.report_every == 0 or it == N:
            prev_best = best_gt.best
            flush()
            if cfg.oracle and best_gt.best > prev_best and best_gt.best_iter == it:
                best_out = shown.clone()
        if it % cfg.report_every == 0 or it == N:
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at iteration {it}")
            metrics = {
                "iter": it, "loss": loss.item(), **last,
                "ssim_gt": ssim(shown[0], x[0]),
                "psnr_best": best_gt.best, "psnr_best_iter": best_gt.best_iter,
                "stage": k + 1, "stage_t": stage.t,
            }
            report(it, metrics, state)

    wall = wall_before + time.perf_counter() - t0
    flush()
    if start_j >= N:  # resumed from the final state: nothing left to run
        shown = resume["shown"].to(dev)
    with torch.no_grad():
        final = shown[0].clamp(0, 1).cpu()
        final_sm = o_sm[0].clamp(0, 1).cpu()
    summary = {
        "iters": N, "wall_s": wall,
        "psnr_noisy_input": psnr(problem.observed, problem.clean),
        "psnr_gt_final": last["psnr_gt"], "psnr_gt_best": best_gt.best,
        "psnr_best_iter": best_gt.best_iter,
        "psnr_gt_sm_final": last["psnr_gt_sm"], "psnr_gt_sm_best": best_sm.best,
        "psnr_gt_sm_best_iter": best_sm.best_iter,
        "psnr_noisy_final": last["psnr_noisy"],
        "ssim_gt_final": ssim(final, problem.clean), "ssim_gt_sm_final": ssim(final_sm,
                                                                                problem.clean),
        "first_reach_iter": best_gt.first_reach_iter, "n_backtracks": n_backtracks,
    }
    images = {"output": final, "output_sm": final_sm}
    if cfg.oracle and best_out is not None:
        images["output_best"] = best_out[0].clamp(0, 1).cpu()
    return Result(metrics=summary, images=images, extra=dict(plan.info))
