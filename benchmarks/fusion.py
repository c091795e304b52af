"""Fusion K-scaling: trial-iterations/s and peak memory per member of K fused DIP fits
(K seeds of one image, one fused net) against one fit at a time, K = 1, 2, 4, 8, 16, for the
reference skip net (2.2 M parameters) at 128², 256², 512² and a small net (width 16, depth 3).

    python benchmarks/fusion.py [--device auto] [--ks 1 2 4 8 16] [--iters 4]
        [--precision fp32] [--budget-s 1500] [--packing [procs|ray]]
        [--packing-at small:128] [--packing-ks 2 4 8] [--threads 1] [--out PATH]

trial-it/s = K x iterations / seconds, timed from the first report to the last (the first
iteration, allocation and warm-up, is not timed). K = 1 is one trial on the device at a time,
so `speedup` = fused trial-it/s over K = 1's. Peak memory: CUDA `max_memory_allocated`; CPU
the resident set's high-water mark (VmHWM after `malloc_trim`, Linux), beside the estimate
`dipddpm.methods.fusion.estimate_bytes`. Every row records its precision flags
(benchmarks/precision.py; fp32 = TF32 off; cuDNN benchmark off, so no autotuning is timed).

Packing, the same K fits as K separate fits sharing the device, beside the fused row:
`--packing procs` (default): K processes, each capped at 1/K of the GPU's memory
(benchmarks/packing.py; no Ray, as a fractional-GPU trial is capped); `--packing ray`: K Ray
tasks at 1/K GPU each (needs Ray; for clusters). Each row's `packed_path` says which measured
it. `--packing-at NET:SIZE` chooses where (a label prefix and a size).

A CUDA out-of-memory error ends its row with a note and skips the larger K at that size; a run
whose predicted time (at the last run's rate) would overrun the budget is skipped with a note.
On CPU the defaults shrink: 512² only up to K = 2. The JSON is rewritten after every row.

Writes benchmarks/results/fusion-<cpu|cuda>.json (per row: net, size, K, trial_it_s, speedup,
peak and estimated MiB per member, flags, packed_*).
"""

from __future__ import annotations

import argparse
import ctypes
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import packing  # noqa: E402
import precision as prec  # noqa: E402
import provenance as pv  # noqa: E402

pv.ensure_repo_on_path()
import torch  # noqa: E402

from dipddpm.config import build  # noqa: E402
from dipddpm.data.images import make_image_problem  # noqa: E402
from dipddpm.methods import dip, fusion  # noqa: E402
from dipddpm.methods.device import pick_device  # noqa: E402
from dipddpm.methods.fitting import Member, fit_members  # noqa: E402

NETS = {"small (width 16, depth 3)": {"width": 16, "depth": 3, "input_depth": 8,
                                      "sizes": [64, 128, 256]},
        "skip (reference, 2.2M)": {"sizes": [128, 256, 512]}}
CPU_MAX_K = {512: 2}  # on CPU: the largest K run at this size (time)


def _rss(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024


class PeakMemory:
    """Peak bytes allocated while inside (CUDA: allocator; CPU: resident set, Linux)."""

    def __init__(self, dev: torch.device) -> None:
        self.dev, self.peak = dev, None

    def __enter__(self) -> PeakMemory:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.base = torch.cuda.memory_allocated(self.dev)
        else:
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the system
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
                self.base = _rss("VmRSS")
            except OSError:
                self.base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.dev.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.dev) - self.base
        elif self.base is not None:
            self.peak = _rss("VmHWM") - self.base


def fused_run(cfg, problem, K: int, dev) -> dict:
    """One fused fit of K seeds; its timed rate and peak memory."""
    times = []

    def report(it, metrics, state):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter())

    members = [Member(problem, dip.dip_plan(cfg, problem), seed) for seed in range(K)]
    with PeakMemory(dev) as mem:
        fit_members(cfg, members, report, device=dev)
    rate = K * (len(times) - 1) / (times[-1] - times[0])
    C, H, W = problem.observed.shape
    est = fusion.member_bytes(cfg, C, H, W)
    return {"trial_it_s": rate, "peak_mib_per_member": None if mem.peak is None
            else mem.peak / K / 2**20, "estimate_mib_per_member": est / 2**20}


def ray_packed_run(cfg, problem, K: int) -> dict:
    """K one-member fits as Ray tasks at 1/K GPU each on this device (clusters' path)."""
    import ray

    @ray.remote(num_gpus=1 / K, num_cpus=0)
    def one(seed: int) -> float:
        res = dip.run_dip(cfg, problem, seed=seed, device="cuda")
        return res.metrics["wall_s"]

    t0 = time.perf_counter()
    ray.get([one.remote(seed) for seed in range(K)])
    return {"packed_path": "ray: K tasks at num_gpus 1/K on this device (whole fits, their "
                           "start-up included)",
            "packed_trial_it_s": K * cfg.iters / (time.perf_counter() - t0)}


def packing_wanted(args, label: str, size: int, K: int) -> bool:
    return bool(args.packing) and K > 1 and K in args.packing_ks and any(
        label.startswith(net) and size == int(sz)
        for net, sz in (at.split(":") for at in args.packing_at))


def packed(args, spec: dict, cfg, problem, size: int, K: int, dev) -> dict:
    if args.packing == "ray":
        if dev.type != "cuda":
            return {"packed_notes": ["Ray packing needs a CUDA device"]}
        return ray_packed_run(cfg, problem, K)
    net = {k: v for k, v in spec.items() if k != "sizes"}
    return packing.packed_run(net, size, K, args.packing_iters, args.packing_warmup,
                              str(dev), args.precision)


def one_row(args, label, spec, cfg, problem, size, K, dev) -> dict:
    """The fused row for K members (and its packed counterpart where asked)."""
    row = {"net": label, "size": size, "K": K,
           "flags": prec.flags(dev, args.precision), **fused_run(cfg, problem, K, dev)}
    if packing_wanted(args, label, size, K):
        row.update(packed(args, spec, cfg, problem, size, K, dev))
    return row


def bench_net(label: str, spec: dict, args, dev, deadline: float, doc: dict, save) -> None:
    overrides = {k: v for k, v in spec.items() if k != "sizes"}
    cfg = build(dip.DipConfig, {**overrides, "iters": args.iters, "report_every": 1})
    for size in args.sizes or spec["sizes"]:
        problem = make_image_problem("skimage:astronaut", size=size, sigma=25, multiple=32)
        base = last = oom_at = None  # K = 1's rate; the last run's rate; the K that ran out
        for K in args.ks:
            why = skip_reason(dev, size, K, last, args.iters, deadline, oom_at)
            if why:
                doc["notes"].append(f"{label} {size}^2 K={K}: {why}")
                continue
            try:
                row = one_row(args, label, spec, cfg, problem, size, K, dev)
            except torch.cuda.OutOfMemoryError as e:
                torch.cuda.empty_cache()
                oom_at = K
                doc["notes"].append(f"{label} {size}^2 K={K}: out of memory ({str(e)[:120]})")
                save()
                continue
            base, last = base or row["trial_it_s"], row["trial_it_s"]
            row["speedup"] = row["trial_it_s"] / base
            doc["rows"].append(row)
            save()
            print(f"{label:26s} {size:4d}^2 K={K:2d}  {row['trial_it_s']:8.2f} trial-it/s  "
                  f"x{row['speedup']:.2f}  peak/member {row['peak_mib_per_member'] or 0:.0f} "
                  f"MiB (est {row['estimate_mib_per_member']:.0f})"
                  + (f"  packed {row['packed_trial_it_s']:.2f}"
                     if row.get("packed_trial_it_s") else ""), flush=True)


def skip_reason(dev, size: int, K: int, last, iters: int, deadline: float, oom_at):
    """Why the K-member run at this size is not run (None: run it)."""
    if oom_at is not None:
        return f"skipped: K={oom_at} already ran out of memory at this size"
    if dev.type == "cpu" and K > CPU_MAX_K.get(size, 16):
        return "not run on CPU (time)"
    predicted = (K * iters / last) if last else 0.0
    if time.perf_counter() + predicted > deadline:
        return f"skipped, would overrun the budget (predicted {predicted:.0f} s)"
    return None


def warm_up(dev) -> None:
    """Untimed small fused and plain fits: one-time library set-up is not measured."""
    cfg = build(dip.DipConfig, {"width": 16, "depth": 3, "input_depth": 8, "iters": 3,
                                "report_every": 1})
    problem = make_image_problem("skimage:astronaut", size=32, sigma=25, multiple=8)
    for K in (1, 2):
        fused_run(cfg, problem, K, dev)


def cpu_policy(rows: list) -> dict:
    """Per (net kind, size): did fused K = 4 beat one fit at a time by the policy's margin?"""
    return {f"{k}@{s}": v for (k, s), v in fusion.cpu_verdicts(rows).items()}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="override every net's")
    ap.add_argument("--nets", nargs="+", default=None, help="labels prefixes, e.g. small")
    ap.add_argument("--iters", type=int, default=4, help="iterations per run (>= 2)")
    ap.add_argument("--precision", choices=prec.MODES[:2], default="fp32")
    ap.add_argument("--budget-s", type=float, default=1500)
    ap.add_argument("--packing", nargs="?", const="procs", choices=("procs", "ray"),
                    default=None, help="also pack the K fits as separate fits on the device")
    ap.add_argument("--packing-at", nargs="+", default=["small:128"],
                    help="NET:SIZE where packing runs (NET: a label prefix)")
    ap.add_argument("--packing-ks", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--packing-iters", type=int, default=25)
    ap.add_argument("--packing-warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="CPU: torch threads (on a shared "
                    "machine more threads than free cores spin and slow every run)")
    ap.add_argument("--out", default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dev = pick_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(args.threads)
    prec.set_precision(args.precision, benchmark=False)
    name = "cuda" if dev.type == "cuda" else "cpu"
    out = Path(args.out) if args.out else pv.REPO / "benchmarks/results" / f"fusion-{name}.json"
    doc = {"benchmark": "fusion", **pv.stamp("benchmarks/fusion.py", sys.argv[1:]
                                              if argv is None else argv, dev),
           "threads": torch.get_num_threads(), "iters": args.iters, "rows": [], "notes": [],
           "paths": {"trial_it_s": "fused: one net of K members in one process",
                     "packed_trial_it_s": "see each row's packed_path"},
           "goal": "CUDA: K=8 at 256^2 >= 4x K=1's trial-it/s; fused > packed at every K>=2"}

    def save():
        doc["cpu_policy"] = cpu_policy(doc["rows"]) if dev.type == "cpu" else None
        pv.write_json(out, doc)

    deadline = time.perf_counter() + args.budget_s
    warm_up(dev)
    if args.packing == "ray" and dev.type == "cuda":
        from dipddpm.cluster.local_ray import start_local

        start_local(num_gpus=1)
    for label, spec in NETS.items():
        if args.nets is None or any(label.startswith(n) for n in args.nets):
            bench_net(label, spec, args, dev, deadline, doc, save)
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
