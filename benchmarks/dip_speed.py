"""DIP loop speed: our fitting loop (metrics every 10 iterations) vs a bare PyTorch loop.

The bare loop does the same work per iteration as the library loop with its defaults: a fresh
reg-noise perturbation of z, forward, MSE, backward, the backtracking check on psnr_noisy (and
the weight copy it implies), the smoothed output, Adam step; psnr vs the clean image every 10
iterations. Goal: ours within 5% of the bare loop.

    python benchmarks/dip_speed.py [--iters 30] [--sizes 64 128 256] [--device auto]

Writes benchmarks/results/dip_speed-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from provenance import stamp

from dipddpm.config import build
from dipddpm.data.images import make_image_problem
from dipddpm.methods.device import pick_device
from dipddpm.methods.dip import DipConfig, run_dip
from dipddpm.nn import build_net

NETS = {"skip (reference, 2.2M)": {}, "tiny (width 16, depth 3)": {"width": 16, "depth": 3,
                                                                    "input_depth": 8}}


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bare_loop(cfg: DipConfig, problem, iters: int, dev) -> float:
    """Iterations per second of a hand-written loop doing the library loop's work."""
    torch.manual_seed(0)
    net = build_net(cfg.net, cfg.input_depth, 3, cfg.width, cfg.depth).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    y, x = problem.observed.to(dev)[None], problem.clean.to(dev)[None]
    z = torch.rand(1, cfg.input_depth, *y.shape[-2:], device=dev) * 0.1
    o_sm, last, saved = None, -1e9, None
    _sync(dev)
    t0 = time.perf_counter()
    for j in range(iters):
        out = net(z + cfg.reg_noise_std * torch.randn_like(z))
        loss = F.mse_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            o_sm = out.detach().clone() if o_sm is None else o_sm.lerp_(out.detach(), 0.01)
            p_noisy = -10 * torch.log10(F.mse_loss(out.detach().clamp(0, 1), y)).item()
            if j % 100:
                if p_noisy - last < -5 and saved is not None:
                    for p, s in zip(net.parameters(), saved, strict=True):
                        p.copy_(s)
                else:  # keep a copy of the weights, in place once it exists
                    if saved is None:
                        saved = [p.detach().clone() for p in net.parameters()]
                    else:
                        for s, p in zip(saved, net.parameters(), strict=True):
                            s.copy_(p)
                    last = p_noisy
            if (j + 1) % 10 == 0:
                _ = -10 * torch.log10(F.mse_loss(out.clamp(0, 1), x)).item()
        opt.step()
    _sync(dev)
    return iters / (time.perf_counter() - t0)


def ours(cfg: DipConfig, problem, dev) -> float:
    res = run_dip(cfg, problem, device=dev)
    return cfg.iters / res.metrics["wall_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = pick_device(args.device)
    head = stamp("benchmarks/dip_speed.py", device=dev)  # the code as it starts
    rows = []
    for label, overrides in NETS.items():
        for size in args.sizes:
            problem = make_image_problem("skimage:astronaut", size=size, sigma=25, multiple=32)
            cfg = build(DipConfig, {**overrides, "iters": args.iters, "report_every": 10})
            bare_loop(cfg, problem, 5, dev)  # warm-up (cudnn autotune, allocator)
            ours_runs, bare_runs = [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                ours_runs.append(ours(cfg, problem, dev))
                bare_runs.append(bare_loop(cfg, problem, args.iters, dev))
            o, b = statistics.median(ours_runs), statistics.median(bare_runs)
            row = {"net": label, "size": size, "ours_it_s": round(o, 3),
                   "bare_it_s": round(b, 3), "ratio": round(o / b, 4)}
            rows.append(row)
            print(f"{label:28s} {size:4d}^2  ours {o:8.2f} it/s   bare {b:8.2f} it/s   "
                  f"ratio {o / b:.3f}", flush=True)
    name = "cuda" if dev.type == "cuda" else "cpu"
    meta = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
            platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "iters": args.iters, "repeats": args.repeats,
            "date": time.strftime("%Y-%m-%d"), "goal": "ratio >= 0.95"}
    out = Path(args.out or Path(__file__).parent / "results" / f"dip_speed-{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {**head, "meta": meta, "rows": rows}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
