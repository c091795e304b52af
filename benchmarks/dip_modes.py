"""DIP step speed in four execution modes: fp32, TF32, bf16 autocast with channels_last, and
CUDA graphs (the whole step captured once and replayed).

    python benchmarks/dip_modes.py [--sizes 256 512] [--iters 50] [--device auto] [--tiny]
        [--out PATH]

A step is the DIP training step of the reference skip net (or --tiny: width 16, depth 3):
reg-noise on z, forward, MSE, backward, Adam. fp32 and TF32 are also timed through our loop
(`run_dip`, every default on, metrics every 10 iterations); bf16/channels_last and CUDA graphs
only as the bare step: the loop's backtracking reads psnr_noisy back every iteration, a host
sync that a captured graph cannot contain. `roofline_pct` = the step's FLOPs (counted by
torch.utils.flop_counter) x it/s over the GPU's dense peak for that precision (a table of
known GPUs; null when unknown). On CPU: fp32 and bf16/channels_last only, with a note.

Writes benchmarks/results/dip_modes-<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as pv  # noqa: E402

pv.ensure_repo_on_path()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dipddpm.config import build  # noqa: E402
from dipddpm.data.images import make_image_problem  # noqa: E402
from dipddpm.methods.dip import DipConfig, run_dip  # noqa: E402
from dipddpm.methods.fitting import pick_device  # noqa: E402
from dipddpm.nn import build_net  # noqa: E402

# dense peak TFLOP/s (fp32, tf32, bf16) by GPU name fragment, from the vendors' data sheets
PEAKS = {"H200": (67, 494, 989), "H100": (67, 494, 989), "A100": (19.5, 156, 312),
         "L40S": (91.6, 183, 362), "L4": (30.3, 60, 121), "A10": (31.2, 62.5, 125)}
MODES = ("fp32", "tf32", "bf16_channels_last", "cuda_graphs")


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _setup(cfg, problem, dev, channels_last=False):
    torch.manual_seed(0)
    net = build_net(cfg.net, cfg.input_depth, 3, cfg.width, cfg.depth).to(dev)
    y = problem.observed.to(dev)[None]
    z = torch.rand(1, cfg.input_depth, *y.shape[-2:], device=dev) * 0.1
    if channels_last:
        net, y, z = (t.to(memory_format=torch.channels_last) for t in (net, y, z))
    return net, y, z


def _step_fn(net, opt, y, z, std, autocast):
    def step():
        ctx = (torch.autocast(y.device.type, dtype=torch.bfloat16) if autocast
               else contextlib.nullcontext())
        with ctx:
            out = net(z + std * torch.randn_like(z))
            loss = F.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bare(cfg, problem, dev, iters: int, mode: str) -> float:
    """it/s of the bare step in `mode`."""
    net, y, z = _setup(cfg, problem, dev, channels_last=mode == "bf16_channels_last")
    graphs = mode == "cuda_graphs"
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, capturable=graphs)
    step = _step_fn(net, opt, y, z, cfg.reg_noise_std, mode == "bf16_channels_last")
    if graphs:
        s = torch.cuda.Stream(dev)
        s.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream(dev).wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        step = graph.replay
    for _ in range(3):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(dev)
    return iters / (time.perf_counter() - t0)


def step_flops(cfg, problem) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    net, y, z = _setup(cfg, problem, torch.device("cpu"))
    with FlopCounterMode(display=False) as fc:
        F.mse_loss(net(z), y).backward()
    return fc.get_total_flops()


def peak_tflops(dev, mode: str) -> float | None:
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    for key, peaks in PEAKS.items():
        if key in name:
            return peaks[0] if mode == "fp32" else peaks[1] if mode == "tf32" else peaks[2]
    return None


def measure(cfg, problem, dev, iters, mode) -> dict:
    tf32 = mode in ("tf32", "cuda_graphs")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    row = {"mode": mode, "bare_it_s": bare(cfg, problem, dev, iters, mode)}
    if mode in ("fp32", "tf32"):
        loop_cfg = build(DipConfig, {**cfg.__dict__, "iters": iters + 3})
        row["ours_it_s"] = (iters + 3) / run_dip(loop_cfg, problem, device=dev).metrics["wall_s"]
    peak = peak_tflops(dev, "bf16" if mode == "bf16_channels_last" else
                       "tf32" if tf32 else "fp32")
    flops = step_flops(cfg, problem)
    row["gflop_per_step"] = flops / 1e9
    row["roofline_pct"] = None if peak is None else 100 * flops * row["bare_it_s"] / (peak * 1e12)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="width 16, depth 3 (CPU dry runs)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    code = pv.git_sha()  # the commit that runs, taken before the run (the tree may change)
    dev = pick_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a shared machine: more threads than free cores spin
    over = {"width": 16, "depth": 3, "input_depth": 8} if args.tiny else {}
    cfg = build(DipConfig, {**over, "report_every": 10})
    modes = MODES if dev.type == "cuda" else ("fp32", "bf16_channels_last")
    rows = []
    for size in args.sizes:
        problem = make_image_problem("skimage:astronaut", size=size, sigma=25, multiple=32)
        for mode in modes:
            row = {"size": size, **measure(cfg, problem, dev, args.iters, mode)}
            rows.append(row)
            print(f"{size:4d}^2 {mode:20s} bare {row['bare_it_s']:8.2f} it/s  ours "
                  f"{row.get('ours_it_s') or 0:8.2f}  roofline {row['roofline_pct'] or 0:.1f}%",
                  flush=True)
    name = "cuda" if dev.type == "cuda" else "cpu"
    out = Path(args.out) if args.out else pv.REPO / "benchmarks/results" / f"dip_modes-{name}.json"
    pv.write_json(out, {
        "benchmark": "dip_modes", "hardware": pv.hardware(dev), "date": pv.now(),
        **code, "command": pv.command("benchmarks/dip_modes.py", sys.argv[1:]),
        "net": "tiny (width 16, depth 3)" if args.tiny else "skip (reference, 2.2M)",
        "iters": args.iters, "rows": rows,
        "notes": [] if dev.type == "cuda" else ["CPU: TF32 and CUDA graphs need CUDA"]})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
