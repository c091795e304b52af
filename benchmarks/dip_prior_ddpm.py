"""DIP-prior DDPM as a study: every arm on the SAME observations, paired verdicts.

1. Train a small DDPM (eps, linear T = 1000) on `skimage-patches` (32x32 grey crops of the
   bundled photos; the test photos astronaut and coffee are never trained on), at two budgets:
   --train-steps N/2 and, resumed from it (the same steps an uninterrupted run takes), N. Every
   DDPM arm is measured at both, so the .md can say how the answer moves with training.
2. Tune on *validation* patches only: DIP's iteration count (best mean PSNR of a
   --dip-max-iters run read every 10 iterations) and, per budget, the fixed t0 of DIP-prior
   DDPM (the best of T0S with the q_sample hand-off).
3. The observations: --images test patches x --replicates noise seeds (sigma 25), one
   (image, replicate) pair each, made by the product's study pairs (the patches written as PNGs
   and read as a study's `problem.images`, dipddpm/methods/study_pairs.py): replicate r is
   noised with seed `seed + r` and fitted with seed `seed + r`. On every pair:
     DIP alone; BM3D (the study's `bm3d` baseline, dipddpm/sweep/baselines.py, on the very
     same observations); DIP-prior DDPM (ancestral, t0 + 1 steps) with the
     fixed t0 and with t0 auto (the method's own `auto_t0`: estimate_sigma of the DIP
     estimate), each with init_mode q_sample and scaled; DDPM from y at the matched t (the t
     whose forward noise equals sigma: init_mode scaled on y, x_t = sqrt(abar_t) (2y - 1)) and
     at the fixed t0 (SDEdit, q_sample); the t0 sweep of both; DDPM from pure noise (floor).
   DDPM arms run batched over the pairs (one chain per arm and t0; wall per image = batch / N).
4. Paired verdicts on PSNR (dipddpm.analysis.effect.paired): every arm against DIP alone,
   DIP-prior against DDPM from y, DDPM arms against BM3D: mean delta, 95% bootstrap CI,
   wins/ties/losses, Wilcoxon p. From the two budgets: the gain per doubling of training and
   the (log-linear, crude) number of steps a DDPM arm would need to reach DIP alone / BM3D.
5. Time per sample against reverse steps (DDIM, batch 1 and 16; ancestral for all T steps).

    python benchmarks/dip_prior_ddpm.py [--train-steps N | --train-seconds S] [--images 6]
        [--replicates 2] [--seed 0] [--device cpu] [--out benchmarks/results] [--tiny]

--tiny is a smoke run (about a minute on CPU: 4 DDPM steps on 64 patches, 2 patches x 2 seeds,
a width-8 DIP net for 10 iterations, t0s 2 and 5); its numbers mean nothing.

Writes OUT/dip_prior_ddpm-<device>.json and .md. Single-threaded on CPU (the machine is shared);
numbers from a CPU-sized DDPM say what this pipeline does at that size, not what a CIFAR-sized
DDPM would do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from provenance import stamp, write_json

from dipddpm.analysis.effect import paired
from dipddpm.config import build
from dipddpm.data.images import save_image
from dipddpm.diffusion.sampling import SamplerConfig, reverse_chain
from dipddpm.methods.ddpm import dataset_problem, train_ddpm
from dipddpm.methods.ddpm_config import DdpmConfig
from dipddpm.methods.device import pick_device
from dipddpm.methods.dip import run_dip
from dipddpm.methods.dip_prior_ddpm import (
    DipPriorDdpmConfig,
    auto_t0,
    from_noise,
    refine,
)
from dipddpm.methods.study_pairs import Pair, build_pairs
from dipddpm.metrics import psnr, ssim
from dipddpm.sweep.baselines import baseline_rows

T0S = (5, 10, 20, 50, 100, 200)
SIGMA = 25.0
DDPM = {"net": "small", "net_widths": (16, 32, 64), "net_attention": (), "net_blocks": 1,
        "batch_size": 32, "lr": 2e-3, "ema_decay": 0.99, "ema_every": 1, "report_every": 100,
        "val_max": 128, "sample_count": 0, "sample_steps": 50}
DIP = {"dip_net": "skip", "dip_width": 64, "dip_depth": 4, "dip_input_depth": 32}
TINY = {"train_steps": 4, "images": 2, "replicates": 2, "dip_max_iters": 10, "t0s": "2,5",
        "timing_max_steps": 10}  # --tiny: a smoke run
TINY_DATA = {"count": 64, "eval_count": 8}
TINY_DIP = {**DIP, "dip_width": 8, "dip_depth": 2, "dip_input_depth": 4}
DIP_ALONE, BM3D, NOISY = "DIP alone", "BM3D", "noisy input y"
FLOOR = "DDPM from pure noise (DDIM 50)"


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def dip_prior(t0, mode: str) -> str:
    return f"DIP-prior DDPM, t0={t0}, {mode}"


def from_y(t0, mode: str = "q_sample") -> str:
    return f"DDPM from y, t0={t0}, {mode}"


# ---------------------------------------------------------------- training, two budgets


def train_two(data, steps: int, dev) -> tuple:
    """(half, full, curve): N/2 steps, then resumed to N (identical to one N-step run)."""
    half_steps = max(1, steps // 2)
    curve, saved = [], {}

    def report(it, m, state):
        curve.append((it, m["train_loss"], m["val_loss"]))
        if it == half_steps:
            saved["state"] = state()

    half = train_ddpm(build(DdpmConfig, {**DDPM, "iters": half_steps}), data, report=report,
                      device=dev)
    half.model.eval()
    full = train_ddpm(build(DdpmConfig, {**DDPM, "iters": steps}), data, report=report,
                      resume=saved["state"], device=dev)
    full.model.eval()
    return half, full, curve


def steps_for(seconds: float, data, dev) -> int:
    """The step count that trains in about `seconds` (from a 10-step timing probe)."""
    probe = build(DdpmConfig, {**DDPM, "iters": 10, "sample_count": 0, "val_max": 0})
    t = time.perf_counter()
    train_ddpm(probe, data, device=dev)
    return max(100, int(seconds / ((time.perf_counter() - t) / 10)) // 100 * 100)


# ---------------------------------------------------------------- observations, DIP, BM3D


def patch_files(patches: torch.Tensor, folder: Path, prefix: str) -> list[str]:
    """The patches (N,C,H,W uint8) as lossless 8-bit PNGs, the image set a study reads."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, patch in enumerate(patches):
        out.append(str(folder / f"{prefix}{i}.png"))
        save_image(patch.float() / 255, out[-1])
    return out


def study_spec(files: list[str], replicates: int, seed: int, dip: dict, ckpt: Path):
    """The observations as a sweep's study (the product's spec parser): the patches as
    `problem.images`, `replicates` noise seeds from `seed`, the fits seeded from `seed`, and
    BM3D as the study's baseline."""
    from dipddpm.sweep.spec import parse_spec

    return parse_spec({"name": "dip_prior_ddpm_bench", "method": "dip_prior_ddpm",
                       "metric": "psnr_gt", "mode": "max", "seed": seed,
                       "fixed": {**dip, "checkpoint": str(ckpt)},
                       "problem": {"images": files, "replicates": replicates, "sigma": SIGMA,
                                   "seed": seed},
                       "baselines": ["bm3d"], "scheduler": {"type": "none"}},
                      load_problem=False)


def observations(spec) -> list[Pair]:
    """One (image, replicate) pair each, as a trial of the study builds them: replicate r of an
    image is noised with seed `problem.seed + r` and fitted with seed `seed + r`."""
    from dipddpm.methods import METHODS
    from dipddpm.sweep.trainable import trial_config

    method = METHODS.get(spec.method)
    return build_pairs(method, dict(spec.problem), trial_config(spec, {}), spec.trial_seed({}))


def image_of(pair_image: str) -> str:
    """A pair's image as its rows name it (the PNG's stem: patch0, ...)."""
    return Path(pair_image).stem


def pick_dip_iters(cfg: DipPriorDdpmConfig, val: list[Pair], dev,
                   max_iters: int) -> tuple[int, dict]:
    curves: dict[int, list[float]] = {}
    dcfg = dataclasses.replace(cfg.dip_config(), iters=max_iters, report_every=10)
    for p in val:
        run_dip(dcfg, p.problem, seed=p.seed, device=dev,
                report=lambda it, m, s: curves.setdefault(it, []).append(m["psnr_gt"]))
    means = {it: statistics.mean(v) for it, v in curves.items()}
    return max(means, key=means.get), means


def dip_fits(cfg: DipPriorDdpmConfig, obs: list[Pair], dev) -> tuple:
    """DIP's outputs (N,C,H,W) on every pair (with the pair's fit seed) and their walls."""
    outs, walls = [], []
    for p in obs:
        t = time.perf_counter()
        outs.append(run_dip(cfg.dip_config(), p.problem, seed=p.seed,
                            device=dev).images["output"])
        walls.append(time.perf_counter() - t)
    return torch.stack(outs), walls


# ---------------------------------------------------------------- the DDPM arms


class Arms:
    """Per arm: one row per pair (image, replicate, psnr, ssim, steps, wall_s, t0)."""

    def __init__(self, obs: list[Pair]):
        self.obs, self.rows = obs, {}

    def add(self, name: str, outs: torch.Tensor, idx: list[int], steps: int, wall: float,
            t0: int | None = None, before: list[float] | None = None) -> None:
        for k, i in enumerate(idx):
            p, clean = self.obs[i], self.obs[i].problem.clean
            self.rows.setdefault(name, []).append({
                "image": image_of(p.spec.image), "replicate": p.spec.replicate,
                "psnr": psnr(outs[k], clean), "ssim": ssim(outs[k], clean), "steps": steps,
                "t0": t0,
                "wall_s": wall / len(idx) + (before[i] if before else 0.0)})

    def frame(self, name: str) -> pd.DataFrame:
        return pd.DataFrame([{"image": r["image"], "replicate": r["replicate"],
                              "value": r["psnr"]} for r in self.rows[name]])


def chain(trained, priors: torch.Tensor, cfg: DipPriorDdpmConfig, seed: int, dev) -> tuple:
    """refine() on a batch, timed: (outputs, wall_s)."""
    g = torch.Generator(device=dev).manual_seed(seed)
    _sync(dev)
    t = time.perf_counter()
    out = refine(trained, priors, cfg, g)
    _sync(dev)
    return out, time.perf_counter() - t


def pick_t0(trained, base: DipPriorDdpmConfig, val: list[Pair], dips: torch.Tensor,
            dev) -> tuple[int, dict]:
    """The fixed t0: the best of T0S on the validation pairs (q_sample hand-off)."""
    scores = {}
    for t0 in T0S:
        out, _ = chain(trained, dips, dataclasses.replace(base, t0=t0), 7 + t0, dev)
        scores[t0] = statistics.mean(psnr(o, p.problem.clean)
                                    for o, p in zip(out, val, strict=True))
    return max(scores, key=scores.get), scores


def auto_arms(arms: Arms, trained, base, dips, dip_walls, dev) -> tuple[list, list]:
    """DIP-prior with t0 auto (the method's rule per pair), both init modes; pairs sharing a
    t0 run as one batch. Returns the picked t0 and sigma_hat (0-255) per pair."""
    auto = [auto_t0(trained.process, d) for d in dips]
    picked = [t for t, _ in auto]
    for mode in ("q_sample", "scaled"):
        for t0 in sorted(set(picked)):
            idx = [i for i, t in enumerate(picked) if t == t0]
            cfg = dataclasses.replace(base, t0=t0, init_mode=mode)
            out, wall = chain(trained, dips[idx], cfg, 31 + t0, dev)
            arms.add(dip_prior("auto", mode), out, idx, t0 + 1 if t0 else 0, wall, t0,
                     dip_walls)
    return picked, [255 * sig for _, sig in auto]


def ddpm_arms(trained, base: DipPriorDdpmConfig, obs, dips, dip_walls,
              t_match: int, dev) -> tuple[Arms, tuple]:
    """Every DDPM-based arm of one training budget on every pair."""
    arms, idx = Arms(obs), list(range(len(obs)))
    ys = torch.stack([p.problem.observed for p in obs])
    for t0 in T0S:  # the t0 sweep: DIP-prior (both hand-offs) and SDEdit from y
        for k, mode in enumerate(("q_sample", "scaled")):
            cfg = dataclasses.replace(base, t0=t0, init_mode=mode)
            out, wall = chain(trained, dips, cfg, 1000 * (k + 1) + t0, dev)
            arms.add(dip_prior(t0, mode), out, idx, t0 + 1, wall, t0, dip_walls)
        out, wall = chain(trained, ys, dataclasses.replace(base, t0=t0), 3000 + t0, dev)
        arms.add(from_y(t0), out, idx, t0 + 1, wall, t0)
    auto = auto_arms(arms, trained, base, dips, dip_walls, dev)
    cfg = dataclasses.replace(base, t0=t_match, init_mode="scaled")
    out, wall = chain(trained, ys, cfg, 4000, dev)
    arms.add(from_y(t_match, "scaled (matched t)"), out, idx, t_match + 1, wall, t_match)
    g = torch.Generator(device=dev).manual_seed(5000)
    t = time.perf_counter()
    out = from_noise(trained, tuple(ys.shape), 50, base, g)
    arms.add(FLOOR, out, idx, 50, time.perf_counter() - t)
    return arms, auto


def matched_t(process, sigma: float) -> int:
    """The t at which the DDPM's noise std per unit signal equals y's (in [-1, 1] space)."""
    ratio = ((1 - process.alphas_cumprod) / process.alphas_cumprod).sqrt()
    return int(torch.argmin((ratio - 2 * sigma / 255).abs()))


# ---------------------------------------------------------------- verdicts


def comparisons(t_fix: int, t_match: int) -> list[tuple[str, str]]:
    """(A, B) pairs, the verdict being on B - A."""
    dp = [dip_prior(t_fix, "q_sample"), dip_prior(t_fix, "scaled"),
          dip_prior("auto", "q_sample"), dip_prior("auto", "scaled")]
    y_match, y_fix = from_y(t_match, "scaled (matched t)"), from_y(t_fix)
    out = [(DIP_ALONE, b) for b in (BM3D, *dp, y_match, y_fix)]
    out += [(y_match, b) for b in dp] + [(y_fix, dp[0])]
    out += [(BM3D, b) for b in (*dp, y_match)]
    return out


def verdicts(arms: Arms, pairs_ab: list[tuple[str, str]]) -> list[dict]:
    out = []
    for a, b in pairs_ab:
        eff = paired(arms.frame(a), arms.frame(b), "psnr", a, b).as_dict()
        out.append({k: eff[k] for k in ("a", "b", "n_pairs", "mean_delta", "ci95", "wins",
                                        "ties", "losses", "p_wilcoxon", "note")})
    return out


def summary(arms: Arms) -> list[dict]:
    return [{"method": k, "psnr": statistics.mean(r["psnr"] for r in v),
             "psnr_std": statistics.pstdev(r["psnr"] for r in v),
             "ssim": statistics.mean(r["ssim"] for r in v),
             "reverse_steps": statistics.mean(r["steps"] for r in v),
             "wall_s": statistics.mean(r["wall_s"] for r in v), "n": len(v)}
            for k, v in arms.rows.items()]


MIN_GAIN_DB = 0.05  # a gain per doubling below this is within the pairs' noise: no estimate
MAX_DOUBLINGS = 10  # beyond 2^10 N the log-linear extrapolation says nothing


def budget_need(half: dict, full: dict, steps: int, s_per_step: float) -> list[dict]:
    """Per DDPM arm: the gain of doubling the training (full - half, dB) and, extrapolating
    it log-linearly (each doubling gains as much again), the steps to reach DIP alone and
    BM3D. None when the gain is below MIN_GAIN_DB or the target more than MAX_DOUBLINGS
    doublings away (more steps of this net alone are not shown to close the gap)."""
    out = []
    for name, p_full in full.items():
        if name in (DIP_ALONE, BM3D, NOISY) or name not in half:
            continue
        gain = p_full - half[name]
        row = {"method": name, "psnr_half": half[name], "psnr_full": p_full,
               "gain_per_doubling_db": gain}
        for target in (DIP_ALONE, BM3D):
            gap = full[target] - p_full
            key = "steps_to_" + ("dip" if target == DIP_ALONE else "bm3d")
            if gap <= 0:
                row[key] = steps  # already there
            elif gain < MIN_GAIN_DB or gap / gain > MAX_DOUBLINGS:
                row[key] = None
            else:
                row[key] = int(steps * 2 ** (gap / gain))
            row[key + "_cpu_h"] = (None if row[key] is None
                                   else row[key] * s_per_step / 3600)
        out.append(row)
    return out


# ---------------------------------------------------------------- timing


def timing(model, process, dev, max_steps: int) -> list[dict]:
    out = []
    for steps in (s for s in (10, 50, 100, 250, 500, 1000) if s <= max_steps):
        for batch in (1, 16):
            x = torch.randn(batch, 1, 32, 32, device=dev)
            _sync(dev)
            t = time.perf_counter()
            reverse_chain(model, process, x, process.T - 1, SamplerConfig("ddim", steps=steps))
            _sync(dev)
            out.append({"sampler": "ddim", "reverse_steps": steps, "batch": batch,
                        "s_per_sample": (time.perf_counter() - t) / batch})
    if max_steps >= process.T:
        x = torch.randn(1, 1, 32, 32, device=dev)
        t = time.perf_counter()
        reverse_chain(model, process, x, process.T - 1, SamplerConfig("ddpm"))
        out.append({"sampler": "ddpm", "reverse_steps": process.T, "batch": 1,
                    "s_per_sample": time.perf_counter() - t})
    return out


# ---------------------------------------------------------------- the study


def shared_arms(arms: Arms, obs, dips, dip_walls, bm3d) -> None:
    """The arms without a DDPM (the same rows at every budget)."""
    idx = list(range(len(obs)))
    arms.add(NOISY, torch.stack([p.problem.observed for p in obs]), idx, 0, 0.0)
    arms.add(DIP_ALONE, dips, idx, 0, sum(dip_walls))
    arms.rows[BM3D] = bm3d


def bm3d_rows(spec) -> list[dict]:
    """The study's BM3D baseline (a row per pair, as `sweep run` writes its baselines/)."""
    return [{"image": image_of(r["image"]), "replicate": r["replicate"],
             "psnr": r["psnr_gt_final"], "ssim": r["ssim_gt_final"], "steps": 0, "t0": None,
             "wall_s": r["wall_s"]} for r in baseline_rows(spec, "bm3d")]


def budget(trained, base, obs, dips, dip_walls, bm3d, val, val_dips, t_match, dev) -> dict:
    """Every arm and verdict at one training budget."""
    t_fix, t0_scores = pick_t0(trained, base, val, val_dips, dev)
    arms, (picked, sigma_hat) = ddpm_arms(trained, base, obs, dips, dip_walls, t_match, dev)
    shared_arms(arms, obs, dips, dip_walls, bm3d)
    m = trained.result.metrics
    print(f"budget {trained.step} steps: fixed t0 {t_fix} (val), auto t0 {picked}", flush=True)
    sweep = [ab for t0 in T0S for ab in ((DIP_ALONE, dip_prior(t0, "q_sample")),
                                         (from_y(t0), dip_prior(t0, "q_sample")),
                                         (DIP_ALONE, dip_prior(t0, "scaled")))]
    return {"steps": trained.step, "val_loss": m["val_loss_final"],
            "train_wall_s": m["wall_s"], "t0_fixed": t_fix, "t0_val_psnr": t0_scores,
            "t0_auto": picked, "t0_auto_sigma_hat": sigma_hat, "table": summary(arms),
            "verdicts": verdicts(arms, comparisons(t_fix, t_match)),
            "sweep_verdicts": verdicts(arms, sweep), "pairs": arms.rows}


def method_check(ckpt: Path, base: DipPriorDdpmConfig, p: Pair, budget_full: dict,
                 dip_psnr: float, dev) -> dict:
    """run_dip_prior_ddpm end to end (t0 auto) on the first pair: it must pick the t0 and
    reach the DIP estimate this study computed piecewise."""
    from dipddpm.methods.dip_prior_ddpm import run_dip_prior_ddpm

    cfg = dataclasses.replace(base, checkpoint=str(ckpt), t0="auto", baselines=False)
    m = run_dip_prior_ddpm(cfg, p.problem, seed=p.seed, device=dev).metrics
    return {"t0_method": m["t0"], "t0_study": budget_full["t0_auto"][0],
            "psnr_dip_method": m["psnr_dip"], "psnr_dip_study": dip_psnr,
            "same": m["t0"] == budget_full["t0_auto"][0]
            and abs(m["psnr_dip"] - dip_psnr) < 1e-4}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-steps", type=int, default=None,
                    help="the full budget N (the half budget is N/2); the same DDPM on a "
                         "loaded or another machine")
    ap.add_argument("--train-seconds", type=float, default=600,
                    help="without --train-steps: N from a timing probe, to train in about "
                         "this long")
    ap.add_argument("--images", type=int, default=6, help="test patches (>= 3)")
    ap.add_argument("--replicates", type=int, default=2, help="noise seeds per patch (>= 2)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the study's seed: replicate r is noised and fitted with seed + r")
    ap.add_argument("--tiny", action="store_true",
                    help="a smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                                     for k, v in TINY.items()))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--dip-max-iters", type=int, default=200,
                    help="length of the validation DIP runs that pick the iteration count")
    ap.add_argument("--t0s", default=",".join(map(str, T0S)),
                    help="the fixed t0s swept (comma-separated; the fixed t0 is the best on val)")
    ap.add_argument("--md-from", default=None, metavar="JSON",
                    help="only rewrite the .md beside an existing result JSON (no run)")
    ap.add_argument("--timing-max-steps", type=int, default=1000,
                    help="longest chain of the timing table (1000 adds the full ancestral)")
    args = ap.parse_args(argv)
    if args.tiny:
        vars(args).update(TINY)
    if args.images < 1 or args.replicates < 1:
        ap.error(f"--images and --replicates must be >= 1, got {args.images}, "
                 f"{args.replicates}")
    return args


def assemble(args, dev, data, ddpm: tuple, base, dip_curve, budgets, t_match) -> dict:
    """The result's body: the DDPM, DIP, both budgets, the headline and the budget need."""
    half, full, curve = ddpm
    s_per_step = full.result.metrics["wall_s"] / full.step
    need = budget_need({r["method"]: r["psnr"] for r in budgets["half"]["table"]},
                       {r["method"]: r["psnr"] for r in budgets["full"]["table"]},
                       full.step, s_per_step)
    return {
        "device": str(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "host": platform.node(),
        "ddpm": {"config": DDPM, "steps": full.step, "steps_half": half.step,
                 "n_params": full.result.metrics["n_params"],
                 "train_wall_s": full.result.metrics["wall_s"], "s_per_step": s_per_step,
                 "val_loss": full.result.metrics["val_loss_final"],
                 "val_loss_half": half.result.metrics["val_loss_final"],
                 "curve": curve, "train_patches": int(data.train.shape[0])},
        "dip": {**(TINY_DIP if args.tiny else DIP), "iters": base.dip_iters,
                "val_curve": dip_curve},
        "seed": args.seed, "tiny": args.tiny,
        "sigma": SIGMA, "t_matched": t_match, "t0s": list(T0S),
        "test_images": args.images, "replicates": args.replicates,
        "n_pairs": args.images * args.replicates,
        "table": budgets["full"]["table"], "verdicts": budgets["full"]["verdicts"],
        "budgets": budgets, "budget_need": need,
    }


def ddpm_budgets(args, dev) -> tuple:
    """The DDPM trained at N/2 and N steps on the training patches, N saved (kept for reuse):
    (data, (half, full, curve), checkpoint path)."""
    data = dataset_problem({"dataset": "skimage-patches", "size": 32, "grey": True,
                            **(TINY_DATA if args.tiny else {"count": 4096, "eval_count": 64})})
    steps = args.train_steps or steps_for(args.train_seconds, data, dev)
    half, full, curve = train_two(data, steps, dev)
    print(f"DDPM: {half.step} and {full.step} steps, val loss "
          f"{half.result.metrics['val_loss_final']:.4f} -> "
          f"{full.result.metrics['val_loss_final']:.4f}", flush=True)
    ckpt = Path(tempfile.mkdtemp(prefix="dipddpm-bench-")) / "ddpm.pt"  # kept for reuse
    full.save(ckpt)
    print(f"DDPM checkpoint (N steps): {ckpt}", flush=True)
    return data, (half, full, curve), ckpt


def observe(args, data, ckpt: Path, dev) -> dict:
    """The study's observations (test: --images x --replicates; val: 2 x 1, seed + 100), DIP's
    iteration count picked on val, DIP on every pair, and BM3D, the study's baseline."""
    dip = TINY_DIP if args.tiny else DIP
    folder = ckpt.parent
    test = study_spec(patch_files(data.test[:args.images], folder / "test", "patch"),
                      args.replicates, args.seed, dip, ckpt)
    val = observations(study_spec(patch_files(data.val[:2], folder / "val", "val"), 1,
                                  args.seed + 100, dip, ckpt))
    base = build(DipPriorDdpmConfig, {**dip, "checkpoint": str(ckpt)})
    dip_iters, dip_curve = pick_dip_iters(base, val, dev, args.dip_max_iters)
    base = dataclasses.replace(base, dip_iters=dip_iters)
    print(f"DIP iterations picked on val patches: {dip_iters}", flush=True)
    obs = observations(test)
    out = {"base": base, "dip_curve": dip_curve, "val": val, "obs": obs,
           "val_dips": dip_fits(base, val, dev)[0]}
    out["dips"], out["dip_walls"] = dip_fits(base, obs, dev)
    out["bm3d"] = bm3d_rows(test)
    print(f"DIP and BM3D on {len(obs)} pairs done", flush=True)
    return out


def write(result: dict, out: Path, dev, t_all: float) -> None:
    stem = out / f"dip_prior_ddpm-{dev.type}"
    write_json(stem.with_suffix(".json"), result)
    md = "\n".join(report_md(result)) + "\n"
    stem.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {stem}.json and .md in {time.perf_counter() - t_all:.0f}s")


def main(argv: list[str] | None = None) -> None:
    global T0S
    args = parse(argv)
    T0S = tuple(int(t) for t in args.t0s.split(","))
    if args.md_from:
        result = json.loads(Path(args.md_from).read_text())
        T0S = tuple(result.get("t0s", T0S))
        Path(args.md_from).with_suffix(".md").write_text("\n".join(report_md(result)) + "\n")
        return
    torch.set_num_threads(1)
    dev = pick_device(args.device)
    head = stamp("benchmarks/dip_prior_ddpm.py", argv, device=dev)  # the code as it starts
    t_all = time.perf_counter()
    data, (half, full, curve), ckpt = ddpm_budgets(args, dev)
    o = observe(args, data, ckpt, dev)
    t_match = matched_t(full.process, SIGMA)
    budgets = {name: budget(tr, o["base"], o["obs"], o["dips"], o["dip_walls"], o["bm3d"],
                            o["val"], o["val_dips"], t_match, dev)
               for name, tr in (("half", half), ("full", full))}
    check = method_check(ckpt, o["base"], o["obs"][0], budgets["full"],
                         psnr(o["dips"][0], o["obs"][0].problem.clean), dev)
    result = {"benchmark": "dip_prior_ddpm", **head,
              **assemble(args, dev, data, (half, full, curve), o["base"], o["dip_curve"],
                         budgets, t_match)}
    result["method_check"] = check
    result["timing"] = timing(full.model, full.process, dev, args.timing_max_steps)
    result["total_wall_s"] = time.perf_counter() - t_all
    write(result, Path(args.out), dev, t_all)
    if not all(math.isfinite(r["psnr"]) for r in result["table"]):
        raise SystemExit("a PSNR is not finite: see the table above")


# ---------------------------------------------------------------- the report


def _ci(v: dict) -> str:
    if v["mean_delta"] is None:
        return "—"
    if v["ci95"] is None:
        return f"{v['mean_delta']:+.2f} (no CI: {v['note']})"
    lo, hi = v["ci95"]
    return f"{v['mean_delta']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _p(v: dict) -> str:
    return "—" if v["p_wilcoxon"] is None else f"{v['p_wilcoxon']:.3g}"


def headline_names(b: dict, t_match: int) -> list[str]:
    t = b["t0_fixed"]
    return [NOISY, DIP_ALONE, BM3D, dip_prior(t, "q_sample"), dip_prior(t, "scaled"),
            dip_prior("auto", "q_sample"), dip_prior("auto", "scaled"),
            from_y(t_match, "scaled (matched t)"), from_y(t), FLOOR]


def md_setup(r: dict) -> list[str]:
    d, full, half = r["ddpm"], r["budgets"]["full"], r["budgets"]["half"]
    autos = sorted(set(full["t0_auto"]))
    return [f"# DIP-prior DDPM study on held-out 32x32 grey skimage patches (sigma "
            f"{r['sigma']:g})", "",
            f"Observations: {r['test_images']} test patches (astronaut/coffee, never trained "
            f"on) x {r['replicates']} noise seeds = {r['n_pairs']} (image, replicate) pairs; "
            f"every arm runs on the same {r['n_pairs']} noisy observations.", "",
            f"DDPM: {d['n_params']:,} params, eps objective, linear T = 1000, batch "
            f"{d['config']['batch_size']}, trained {d['steps_half']} steps (N/2) and, resumed, "
            f"{d['steps']} steps (N) in {d['train_wall_s']:.0f}s on {r['device']} "
            f"({d['s_per_step']:.2f} s/step, 1 thread); val loss {d['val_loss_half']:.4f} "
            f"(N/2) -> {d['val_loss']:.4f} (N).", "",
            f"Tuned on 2 validation patches (chelsea), never on test: DIP skip width "
            f"{r['dip']['dip_width']}, {r['dip']['iters']} iterations; fixed t0 "
            f"{half['t0_fixed']} (N/2) and {full['t0_fixed']} (N), the best of "
            f"{list(T0S)}. Matched t = {r['t_matched']} (forward noise = sigma). t0 auto "
            f"(the method's estimate_sigma rule on the DIP estimate) picked t0 in {autos} "
            f"(per pair: {full['t0_auto']}): the DIP estimates' remaining noise sigma_hat "
            f"(estimate_sigma, 0-255) is {statistics.mean(full['t0_auto_sigma_hat']):.2f} on "
            f"average against y's {r['sigma']:g}.", "",
            f"Method check: run_dip_prior_ddpm end to end (t0 auto) on the first pair picks "
            f"t0 {r['method_check']['t0_method']} (the study: "
            f"{r['method_check']['t0_study']}), DIP estimate "
            f"{r['method_check']['psnr_dip_method']:.3f} dB (the study: "
            f"{r['method_check']['psnr_dip_study']:.3f}): "
            f"{'the same' if r['method_check']['same'] else 'DIFFERENT'}.", ""]


def md_table(r: dict) -> list[str]:
    full, half = r["budgets"]["full"], r["budgets"]["half"]
    by_full = {x["method"]: x for x in full["table"]}
    by_half = {x["method"]: x for x in half["table"]}
    md = [f"## Every arm (mean over the {r['n_pairs']} pairs, DDPM at N = {full['steps']}; "
          f"last column at N/2 = {half['steps']})", "",
          "Wall per image is the whole pipeline (DIP-prior rows include the DIP fit); DDPM "
          "chains run batched over the pairs, so their wall is the batch's / pairs.", "",
          "| method | PSNR (dB) | ± std | SSIM | reverse steps | wall s / image | PSNR at N/2 |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    names = headline_names(full, r["t_matched"])
    half_names = headline_names(half, r["t_matched"])
    for name, hname in zip(names, half_names, strict=True):
        x = by_full[name]
        md.append(f"| {name} | {x['psnr']:.2f} | {x['psnr_std']:.2f} | {x['ssim']:.4f} | "
                  f"{x['reverse_steps']:.0f} | {x['wall_s']:.2f} | "
                  f"{by_half[hname]['psnr']:.2f} |")
    return md + [""]


def md_verdicts(r: dict) -> list[str]:
    full, half = r["budgets"]["full"], r["budgets"]["half"]
    md = ["## Paired verdicts on PSNR (B - A over the pairs; 95% BCa bootstrap CI; "
          "wins/ties/losses of B; two-sided Wilcoxon signed-rank p)", "",
          "| B | A | Δ dB [95% CI] at N | W/T/L | Wilcoxon p | Δ dB [95% CI] at N/2 |",
          "|---|---|---:|---:|---:|---:|"]
    for v, h in zip(full["verdicts"], half["verdicts"], strict=True):
        md.append(f"| {v['b']} | {v['a']} | {_ci(v)} | {v['wins']}/{v['ties']}/"
                  f"{v['losses']} | {_p(v)} | {_ci(h)} |")
    md += ["", "t0 sweep at N (DDPM from y is SDEdit, q_sample, at the same t0 and budget):",
           "", "| t0 | DIP-prior q_sample | Δ vs DIP alone [CI] | DIP-prior − DDPM from y "
           "[CI] | DIP-prior scaled | Δ vs DIP alone [CI] | DDPM from y |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    by = {x["method"]: x["psnr"] for x in full["table"]}
    sv = full["sweep_verdicts"]
    for k, t0 in enumerate(T0S):
        md.append(f"| {t0} | {by[dip_prior(t0, 'q_sample')]:.2f} | {_ci(sv[3 * k])} | "
                  f"{_ci(sv[3 * k + 1])} | {by[dip_prior(t0, 'scaled')]:.2f} | "
                  f"{_ci(sv[3 * k + 2])} | {by[from_y(t0)]:.2f} |")
    return md + [""]


def _find(verdicts_: list[dict], a: str, b: str) -> dict | None:
    return next((v for v in verdicts_ if v["a"] == a and v["b"] == b), None)


def _steps_text(n, hours) -> str:
    if n is None:
        return f"out of reach (< {MIN_GAIN_DB} dB per doubling or > 2^{MAX_DOUBLINGS} N)"
    return f"{n:,} ({hours:.1f} CPU h)"


def md_strength(r: dict) -> list[str]:
    full, d = r["budgets"]["full"], r["ddpm"]
    by = {x["method"]: x["psnr"] for x in full["table"]}
    arms = headline_names(full, r["t_matched"])[3:9]
    best = max(arms, key=by.get)
    drop = (d["val_loss_half"] - d["val_loss"]) / d["val_loss_half"]
    falling = drop > 0.01
    vs_dip, vs_bm3d = _find(full["verdicts"], DIP_ALONE, best), _find(full["verdicts"], BM3D, best)
    helps = [v["b"] for v in full["verdicts"] if v["a"] == DIP_ALONE
             and v["b"].startswith("DIP-prior") and v["ci95"] and v["ci95"][0] > 0]
    loses_bm3d = by[best] < by[BM3D]
    weak = falling or loses_bm3d or not helps
    reasons = "; ".join(w for w, c in (("its val loss is still falling", falling),
                                       ("its best arm loses to BM3D", loses_bm3d),
                                       ("no DIP-prior arm beats DIP alone", not helps)) if c)
    reasons = reasons or "val loss flat, best arm beats BM3D, a DIP-prior arm beats DIP"
    md = ["## Is the DDPM strong enough for the question?", "",
          f"- Val loss {d['val_loss_half']:.4f} at N/2 -> {d['val_loss']:.4f} at N: "
          f"{100 * drop:.1f}% lower after doubling the training"
          f" ({'still falling' if falling else 'flat'}).",
          f"- Best DDPM-based arm: {best}, {by[best]:.2f} dB; vs DIP alone "
          f"{_ci(vs_dip) if vs_dip else '—'}; vs BM3D "
          f"{_ci(vs_bm3d) if vs_bm3d else f'{by[best] - by[BM3D]:+.2f} (unpaired)'} "
          f"(DIP alone {by[DIP_ALONE]:.2f}, BM3D {by[BM3D]:.2f} dB).",
          f"- DIP-prior arms beating DIP alone with the CI above 0: "
          f"{', '.join(helps) if helps else 'none'}.", "",
          f"**Verdict: the DDPM is {'too weak' if weak else 'strong enough'} for the "
          f"question** ({reasons}).",
          "", "Training budget the question needs, extrapolating each arm's gain from N/2 to N "
          "log-linearly (every further doubling gains as much again; crude, from two points):",
          "", "| arm | PSNR N/2 | PSNR N | gain per doubling (dB) | steps to DIP alone | "
          "steps to BM3D |", "|---|---:|---:|---:|---:|---:|"]
    need = {x["method"]: x for x in r["budget_need"]}
    for name in arms:
        x = need[name]
        md.append(f"| {name} | {x['psnr_half']:.2f} | {x['psnr_full']:.2f} | "
                  f"{x['gain_per_doubling_db']:+.2f} | "
                  f"{_steps_text(x['steps_to_dip'], x['steps_to_dip_cpu_h'])} | "
                  f"{_steps_text(x['steps_to_bm3d'], x['steps_to_bm3d_cpu_h'])} |")
    known = [need[n] for n in arms if need[n]["steps_to_bm3d"] is not None]
    if known:
        x = min(known, key=lambda k: k["steps_to_bm3d"])
        md += ["", f"The cheapest route to BM3D: {x['method']}, about "
                   f"{x['steps_to_bm3d']:,} steps of this DDPM ("
                   f"{x['steps_to_bm3d_cpu_h']:.1f} h on one CPU thread at "
                   f"{d['s_per_step']:.2f} s/step)."]
    else:
        md += ["", "No DDPM arm reaches BM3D within that extrapolation: more steps of this "
                   "net alone are not shown to close the gap (a larger net or more data)."]
    return md + [""]


def report_md(r: dict) -> list[str]:
    md = md_setup(r) + md_table(r) + md_verdicts(r) + md_strength(r)
    md += ["## Time per sample against reverse steps (DDIM from T-1 unless noted)", "",
           "| sampler | reverse steps | batch | s / sample |", "|---|---:|---:|---:|"]
    for x in r["timing"]:
        md.append(f"| {x['sampler']} | {x['reverse_steps']} | {x['batch']} | "
                  f"{x['s_per_sample']:.4f} |")
    return md + ["", f"Total wall {r['total_wall_s']:.0f}s. Command: `{r['command']}` "
                 f"(git {r['git_sha'][:10]}{', dirty' if r['git_dirty'] else ''}; load "
                 f"{r['loadavg_1m']} at start)."]


if __name__ == "__main__":
    main()
