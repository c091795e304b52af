"""DIP step speed in four execution modes: fp32, TF32, bf16 autocast with channels_last, and
CUDA graphs (the whole step captured once and replayed).

    python benchmarks/dip_modes.py [--sizes 256 512] [--iters 50] [--warmup 10]
        [--device auto] [--tiny] [--out PATH]

A step is the DIP training step of the reference skip net (or --tiny: width 16, depth 3):
reg-noise on z, forward, MSE, backward, Adam. fp32 and TF32 are also timed through our loop
(`run_dip`, every default on, metrics every 10 iterations); bf16/channels_last and CUDA graphs
only as the bare step: the loop's backtracking reads psnr_noisy back every iteration, a host
sync that a captured graph cannot contain. Both are timed over the same window: `--warmup`
untimed iterations, then `--iters` timed ones (ours: from the report at the end of the warm-up
to the last report, the device synchronised at both).

Every row records the flags it ran with (benchmarks/precision.py: fp32 = TF32 off, TF32 on,
cuDNN benchmark, autocast), and the bf16 row whether channels_last survives to an activation
in the middle of the net (`layout`: the share of 4-D activations in channels_last, the middle
one's layout, and the first module that drops it: reflection padding may).
`roofline_pct` = the step's FLOPs x it/s over the GPU's dense peak in that precision; the FLOPs
are counted once per size on the meta device (benchmarks/time_plan.py; no real forward). On
CPU: fp32, TF32 (its flags change nothing there, noted) and bf16/channels_last; CUDA graphs
need CUDA. A CUDA out-of-memory error ends that row with a note; the next row runs.

Writes benchmarks/results/dip_modes-<cpu|cuda>.json, rewritten after every row.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import precision as prec  # noqa: E402
import provenance as pv  # noqa: E402
import time_plan  # noqa: E402

pv.ensure_repo_on_path()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from dipddpm.config import build  # noqa: E402
from dipddpm.data.images import make_image_problem  # noqa: E402
from dipddpm.methods.device import pick_device  # noqa: E402
from dipddpm.methods.dip import DipConfig, run_dip  # noqa: E402
from dipddpm.nn import build_net  # noqa: E402

# dense peak TFLOP/s by precision and GPU name fragment, from the vendors' data sheets
PEAKS = {"H200": {"fp32": 67, "tf32": 494, "bf16": 989},
         "H100": {"fp32": 67, "tf32": 494, "bf16": 989},
         "A100": {"fp32": 19.5, "tf32": 156, "bf16": 312},
         "L40S": {"fp32": 91.6, "tf32": 183, "bf16": 362},
         "L4": {"fp32": 30.3, "tf32": 60, "bf16": 121},
         "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125}}


@dataclass(frozen=True)
class Mode:
    precision: str  # benchmarks/precision.py mode
    autocast: bool = False  # bf16 autocast around forward and loss
    channels_last: bool = False
    graphs: bool = False  # capture the step once, replay it
    ours: bool = False  # also time our loop (run_dip)
    cuda_only: bool = False


MODES = {"fp32": Mode("fp32", ours=True), "tf32": Mode("tf32", ours=True),
         "bf16_channels_last": Mode("bf16", autocast=True, channels_last=True),
         "cuda_graphs": Mode("tf32", graphs=True, cuda_only=True)}


class NoHostSync(TorchDispatchMode):
    """A dispatch mode that raises on what a captured CUDA graph cannot hold: a read of a
    device value on the host (`aten._local_scalar_dense`: .item(), .tolist(), bool(t)) and
    operators whose output shape depends on the data (nonzero, masked_select, unique...)."""

    BAD_TAGS = frozenset({torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default or self.BAD_TAGS & set(func.tags):
            raise RuntimeError(f"host sync in the step: {func}")
        return func(*args, **(kwargs or {}))


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def setup(cfg, problem, dev, channels_last=False):
    torch.manual_seed(0)
    net = build_net(cfg.net, cfg.input_depth, 3, cfg.width, cfg.depth).to(dev)
    y = problem.observed.to(dev)[None]
    z = torch.rand(1, cfg.input_depth, *y.shape[-2:], device=dev) * 0.1
    if channels_last:
        net, y, z = (t.to(memory_format=torch.channels_last) for t in (net, y, z))
    return net, y, z


def make_step(net, opt, y, z, std, autocast):
    """The bare DIP step; opt None leaves out the optimizer step (see tests/test_gpu.py)."""
    def step():
        ctx = (torch.autocast(y.device.type, dtype=torch.bfloat16) if autocast
               else contextlib.nullcontext())
        with ctx:
            out = net(z + std * torch.randn_like(z))
            loss = F.mse_loss(out.float(), y)
        net.zero_grad(set_to_none=True)
        loss.backward()
        if opt is not None:
            opt.step()
    return step


def capture(step, dev):
    """Warm `step` up on a side stream (one run under NoHostSync), capture it, return replay."""
    s = torch.cuda.Stream(dev)
    s.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(s):
        with NoHostSync():
            step()
        for _ in range(2):
            step()
    torch.cuda.current_stream(dev).wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def bare(cfg, problem, dev, iters: int, warmup: int, mode: Mode) -> float:
    """it/s of the bare step in `mode`, over `iters` steps after `warmup` untimed ones."""
    net, y, z = setup(cfg, problem, dev, channels_last=mode.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, capturable=mode.graphs)
    step = make_step(net, opt, y, z, cfg.reg_noise_std, mode.autocast)
    if mode.graphs:
        step = capture(step, dev)
    for _ in range(warmup):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(dev)
    return iters / (time.perf_counter() - t0)


def ours(cfg, problem, dev, iters: int, warmup: int) -> float:
    """it/s of our loop over the same window: the report at `warmup` to the one at the end."""
    stamps = {}

    def report(it, metrics, state):
        _sync(dev)
        stamps[it] = time.perf_counter()

    every = math.gcd(warmup, iters)
    loop_cfg = build(DipConfig, {**cfg.__dict__, "iters": warmup + iters, "report_every": every})
    run_dip(loop_cfg, problem, report=report, device=dev)
    return iters / (stamps[warmup + iters] - stamps[warmup])


def layout(cfg, problem, dev) -> dict:
    """Where channels_last holds in a bf16 forward of a channels_last net and input."""
    net, _, z = setup(cfg, problem, dev, channels_last=True)
    seen = []

    def hook(module, args, out):
        if isinstance(out, torch.Tensor) and out.ndim == 4:
            was = any(isinstance(a, torch.Tensor) and a.ndim == 4
                      and a.is_contiguous(memory_format=torch.channels_last) for a in args)
            now = out.is_contiguous(memory_format=torch.channels_last)
            seen.append((type(module).__name__, was, now))

    hooks = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
        net(z)
    for h in hooks:
        h.remove()
    mid = seen[len(seen) // 2]
    lost = next((name for name, was, now in seen if was and not now), None)
    return {"channels_last_share": sum(now for *_, now in seen) / len(seen),
            "channels_last_mid": mid[2], "mid_module": mid[0], "channels_last_lost_at": lost}


def peak_tflops(dev, precision: str) -> float | None:
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((p[precision] for key, p in PEAKS.items() if key in name), None)


def measure(cfg, problem, dev, args, name: str, flops: int) -> dict:
    mode = MODES[name]
    prec.set_precision(mode.precision, benchmark=dev.type == "cuda")
    row = {"mode": name, "flags": prec.flags(dev, mode.precision,
                                             "bf16" if mode.autocast else None),
           "channels_last": mode.channels_last,
           "bare_it_s": bare(cfg, problem, dev, args.iters, args.warmup, mode)}
    if mode.ours:
        row["ours_it_s"] = ours(cfg, problem, dev, args.iters, args.warmup)
    if mode.channels_last:
        row["layout"] = layout(cfg, problem, dev)
    peak = peak_tflops(dev, mode.precision)
    row["gflop_per_step"] = flops / 1e9
    row["roofline_pct"] = None if peak is None else 100 * flops * row["bare_it_s"] / (peak * 1e12)
    return row


def step_flops(cfg, size: int) -> int:
    """The step's FLOPs, counted once per size on the meta device (no real forward)."""
    net = time_plan.Net(cfg.net, cfg.input_depth, 3, cfg.width, cfg.depth)
    return time_plan.step_cost(net, size).flops


def run_size(cfg, dev, args, size: int, doc: dict, out: Path) -> None:
    problem = make_image_problem("skimage:astronaut", size=size, sigma=25, multiple=32)
    flops = step_flops(cfg, size)
    for name, mode in MODES.items():
        if mode.cuda_only and dev.type != "cuda":
            continue
        try:
            row = {"size": size, **measure(cfg, problem, dev, args, name, flops)}
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            row = {"size": size, "mode": name, "note": f"out of memory: {str(e)[:200]}"}
        doc["rows"].append(row)
        pv.write_json(out, doc)
        print(f"{size:4d}^2 {name:20s} bare {row.get('bare_it_s') or 0:8.2f} it/s  ours "
              f"{row.get('ours_it_s') or 0:8.2f}  roofline {row.get('roofline_pct') or 0:.1f}%",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--iters", type=int, default=50, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="width 16, depth 3 (CPU dry runs)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dev = pick_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # a shared machine: more threads than free cores spin
    over = {"width": 16, "depth": 3, "input_depth": 8} if args.tiny else {}
    cfg = build(DipConfig, over)
    name = "cuda" if dev.type == "cuda" else "cpu"
    out = Path(args.out) if args.out else pv.REPO / "benchmarks/results" / f"dip_modes-{name}.json"
    doc = {"benchmark": "dip_modes", **pv.stamp("benchmarks/dip_modes.py", sys.argv[1:]
                                                 if argv is None else argv, dev),
           "net": "tiny (width 16, depth 3)" if args.tiny else "skip (reference, 2.2M)",
           "iters": args.iters, "warmup": args.warmup, "rows": [],
           "notes": [] if dev.type == "cuda" else
           ["CPU: CUDA graphs need CUDA; the TF32 row's flags change nothing on CPU"]}
    for size in args.sizes:
        run_size(cfg, dev, args, size, doc, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
