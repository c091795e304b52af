"""DIP-prior DDPM vs DIP alone vs DDPM started from y, on held-out skimage patches (SPEC §5).

1. Train a small DDPM (eps, linear T = 1000) on `skimage-patches` (32x32 grey crops of the
   bundled photos; the test photos astronaut and coffee are never trained on) for about
   --train-seconds of CPU time (the step count is set from a short timing probe).
2. Pick DIP's iteration count on two *validation* patches (best mean PSNR of a 1800-iteration
   run, read every 50 iterations): no test image is used to tune anything.
3. On --images test patches with sigma = 25 noise: DIP alone (that many iterations), then for
   each t0 in {5, 10, 20, 50, 100, 200}: DIP-prior DDPM (q_sample hand-off, ancestral DDPM,
   t0 + 1 reverse steps) and DDPM started from y at the same t0 (SDEdit, same steps); also DDPM
   from y at the t whose noise level matches sigma (x_t = sqrt(abar_t) (2y - 1), the principled
   DDPM denoiser of y) and an unconditional DDIM sample (the no-information floor).
4. Time per sample against reverse steps (DDIM, batch 1 and 16; ancestral for all T steps).

    python benchmarks/dip_prior_ddpm.py [--train-seconds 300 | --train-steps N] [--images 6]
        [--device cpu]

Writes benchmarks/results/dip_prior_ddpm-<device>.json and .md. Single-threaded on CPU (the
machine is shared); numbers from a CPU-sized DDPM say what this pipeline does at that size,
not what a CIFAR-sized DDPM would do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from provenance import stamp

from dipddpm.config import build
from dipddpm.data.images import ImageProblem, gaussian_noise
from dipddpm.diffusion.sampling import SamplerConfig, reverse_chain
from dipddpm.methods.ddpm import DdpmConfig, dataset_problem, train_ddpm
from dipddpm.methods.dip import run_dip
from dipddpm.methods.dip_prior_ddpm import DipPriorDdpmConfig, from_noise, refine
from dipddpm.methods.fitting import pick_device
from dipddpm.metrics import psnr, ssim

T0S = (5, 10, 20, 50, 100, 200)
SIGMA = 25.0
DDPM = {"net": "small", "net_widths": (16, 32, 64), "net_attention": (), "net_blocks": 1,
        "batch_size": 32, "lr": 2e-3, "ema_decay": 0.99, "ema_every": 1, "report_every": 100,
        "val_max": 128, "sample_count": 16, "sample_steps": 50}
DIP = {"dip_net": "skip", "dip_width": 64, "dip_depth": 4, "dip_input_depth": 32}


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train(data, seconds: float, dev, steps: int | None = None) -> tuple:
    """Train for `steps`, or for about `seconds` (the step count from a timing probe)."""
    iters = steps
    if iters is None:
        probe = build(DdpmConfig, {**DDPM, "iters": 10, "sample_count": 0, "val_max": 0})
        t = time.perf_counter()
        train_ddpm(probe, data, device=dev)
        per_step = (time.perf_counter() - t) / 10
        iters = max(100, int(seconds / per_step) // 100 * 100)
    cfg = build(DdpmConfig, {**DDPM, "iters": iters})
    curve = []
    trained = train_ddpm(cfg, data, device=dev,
                         report=lambda it, m, s: curve.append((it, m["train_loss"],
                                                               m["val_loss"])))
    return trained, curve


def problems(patches: torch.Tensor, n: int, seed: int) -> list[ImageProblem]:
    out = []
    for i in range(n):
        clean = patches[i].float() / 255
        out.append(ImageProblem(clean=clean, observed=gaussian_noise(clean, SIGMA, seed + i),
                                name=f"patch{i}", sigma=SIGMA, seed=seed + i))
    return out


def pick_dip_iters(cfg: DipPriorDdpmConfig, val: list[ImageProblem], dev,
                   max_iters: int) -> tuple[int, dict]:
    curves: dict[int, list[float]] = {}
    dcfg = dataclasses.replace(cfg.dip_config(), iters=max_iters, report_every=50)
    for p in val:
        run_dip(dcfg, p, device=dev, report=lambda it, m, s: curves.setdefault(it, []).append(
            m["psnr_gt"]))
    means = {it: statistics.mean(v) for it, v in curves.items()}
    best = max(means, key=means.get)
    return best, means


def matched_t(process, sigma: float) -> int:
    """The t at which the DDPM's noise std per unit signal equals y's (in [-1, 1] space)."""
    ratio = ((1 - process.alphas_cumprod) / process.alphas_cumprod).sqrt()
    return int(torch.argmin((ratio - 2 * sigma / 255).abs()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-seconds", type=float, default=300)
    ap.add_argument("--train-steps", type=int, default=None,
                    help="train this many steps instead of --train-seconds (the same DDPM on "
                         "a loaded or another machine)")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--dip-max-iters", type=int, default=1800,
                    help="length of the validation DIP runs that pick the iteration count")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = pick_device(args.device)
    head = stamp("benchmarks/dip_prior_ddpm.py", device=dev)  # the code as it starts
    t_all = time.perf_counter()

    data = dataset_problem({"dataset": "skimage-patches", "size": 32, "grey": True,
                            "count": 4096, "eval_count": 64})
    trained, curve = train(data, args.train_seconds, dev, args.train_steps)
    print(f"DDPM: {trained.step} steps, {trained.result.metrics['wall_s']:.0f}s, "
          f"val loss {trained.result.metrics['val_loss_final']:.4f}", flush=True)
    ckpt = Path("/tmp/dipddpm-bench/ddpm.pt")
    trained.save(ckpt)

    base = build(DipPriorDdpmConfig, {**DIP, "checkpoint": str(ckpt)})
    val = problems(data.val, 2, seed=100)
    dip_iters, dip_curve = pick_dip_iters(base, val, dev, args.dip_max_iters)
    print(f"DIP iterations picked on val patches: {dip_iters}", flush=True)
    base = dataclasses.replace(base, dip_iters=dip_iters)
    test = problems(data.test, args.images, seed=0)
    model, process = trained.model.eval(), trained.process
    t_match = matched_t(process, SIGMA)

    rows: dict[str, list[dict]] = {}

    def add(name: str, out: torch.Tensor, clean: torch.Tensor, steps: int, wall: float):
        rows.setdefault(name, []).append({"psnr": psnr(out, clean), "ssim": ssim(out, clean),
                                          "steps": steps, "wall_s": wall})

    for i, p in enumerate(test):
        add("noisy input y", p.observed, p.clean, 0, 0.0)
        t = time.perf_counter()
        dip = run_dip(base.dip_config(), p, seed=i, device=dev).images["output"]
        dip_wall = time.perf_counter() - t
        add(f"DIP alone ({dip_iters} it)", dip, p.clean, 0, dip_wall)
        for t0 in T0S:
            cfg = dataclasses.replace(base, t0=t0)
            # the DIP-prior pipeline's time includes the DIP fit it starts from
            for name, prior, before in (("DIP-prior DDPM", dip, dip_wall),
                                        ("DDPM from y", p.observed, 0.0)):
                g = torch.Generator(device=dev).manual_seed(1000 * i + t0)
                _sync(dev)
                t = time.perf_counter()
                out = refine(trained, prior[None], cfg, g)[0]
                _sync(dev)
                add(f"{name}, t0={t0}", out, p.clean, t0 + 1,
                    before + time.perf_counter() - t)
        g = torch.Generator(device=dev).manual_seed(i)
        t = time.perf_counter()
        x_t = process.q_sample(2 * p.observed[None].to(dev) - 1, t_match,
                               torch.zeros_like(p.observed[None]).to(dev))
        out = ((reverse_chain(model, process, x_t, t_match, SamplerConfig(), generator=g) + 1)
               / 2).clamp(0, 1)[0].cpu()
        add(f"DDPM from y, matched t={t_match}", out, p.clean, t_match + 1,
            time.perf_counter() - t)
        t = time.perf_counter()
        out = from_noise(trained, (1, 1, 32, 32), 50, base, g)[0]
        add("DDPM from pure noise (DDIM 50)", out, p.clean, 50, time.perf_counter() - t)
        print(f"image {i + 1}/{len(test)} done", flush=True)

    table = [{"method": k, "psnr": statistics.mean(r["psnr"] for r in v),
              "psnr_std": statistics.pstdev(r["psnr"] for r in v),
              "ssim": statistics.mean(r["ssim"] for r in v), "reverse_steps": v[0]["steps"],
              "wall_s": statistics.mean(r["wall_s"] for r in v), "n": len(v)}
             for k, v in rows.items()]

    timing = []
    for steps in (10, 50, 100, 250, 500, 1000):
        for batch in (1, 16):
            scfg = SamplerConfig("ddim", steps=steps)
            x = torch.randn(batch, 1, 32, 32, device=dev)
            _sync(dev)
            t = time.perf_counter()
            reverse_chain(model, process, x, process.T - 1, scfg)
            _sync(dev)
            wall = time.perf_counter() - t
            timing.append({"sampler": "ddim", "reverse_steps": steps, "batch": batch,
                           "s_per_sample": wall / batch})
    x = torch.randn(1, 1, 32, 32, device=dev)
    t = time.perf_counter()
    reverse_chain(model, process, x, process.T - 1, SamplerConfig("ddpm"))
    timing.append({"sampler": "ddpm", "reverse_steps": process.T, "batch": 1,
                   "s_per_sample": time.perf_counter() - t})

    result = {
        "benchmark": "dip_prior_ddpm", **head,
        "device": str(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "host": platform.node(),
        "ddpm": {"config": DDPM, "steps": trained.step, "n_params":
                 trained.result.metrics["n_params"], "train_wall_s":
                 trained.result.metrics["wall_s"], "val_loss":
                 trained.result.metrics["val_loss_final"], "curve": curve,
                 "train_patches": int(data.train.shape[0])},
        "dip": {**DIP, "iters": dip_iters, "val_curve": dip_curve},
        "sigma": SIGMA, "t_matched": t_match, "test_images": len(test),
        "table": table, "timing": timing, "total_wall_s": time.perf_counter() - t_all,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"dip_prior_ddpm-{dev.type}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# DIP-prior DDPM on held-out 32x32 grey skimage patches (sigma {SIGMA:g})", "",
          f"DDPM: {trained.result.metrics['n_params']:,} params, {trained.step} steps "
          f"(batch {DDPM['batch_size']}) in {trained.result.metrics['wall_s']:.0f}s on "
          f"{dev}; DIP: skip width {DIP['dip_width']}, {dip_iters} iterations (picked on "
          f"val patches). {len(test)} test patches (photos never trained on); mean over them.",
          "", "Wall time per image is the whole pipeline: DIP-prior DDPM rows include the "
          "DIP fit.", "",
          "| method | PSNR (dB) | ± std | SSIM | reverse steps | wall s / image |",
          "|---|---:|---:|---:|---:|---:|"]
    for r in table:
        md.append(f"| {r['method']} | {r['psnr']:.2f} | {r['psnr_std']:.2f} | "
                  f"{r['ssim']:.4f} | {r['reverse_steps']} | {r['wall_s']:.2f} |")
    md += ["", "Time per sample against reverse steps (DDIM from T-1 unless noted):", "",
           "| sampler | reverse steps | batch | s / sample |", "|---|---:|---:|---:|"]
    for r in timing:
        md.append(f"| {r['sampler']} | {r['reverse_steps']} | {r['batch']} | "
                  f"{r['s_per_sample']:.4f} |")
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {stem}.json and .md in {time.perf_counter() - t_all:.0f}s")
    if not math.isfinite(table[0]["psnr"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
