"""Packing without Ray: K one-member DIP fits as K processes on one GPU, each capped at 1/K of
its memory, the way Ray packs trials asking `resources.gpu: 1/K` (cluster/devices.py caps each
trial the same way), measured directly, with no Ray.

Each process builds its fit, runs `warmup` iterations, waits at a barrier for the others, then
times `iters` iterations (the device synchronised at both ends, metrics every iteration as in
benchmarks/fusion.py's fused rows). The packed rate is K x iters over the span from the first
process's start to the last one's end. On CPU (a dry run) the memory cap is skipped, with a note.

    from packing import packed_run
    packed_run({"width": 16, "depth": 3, "input_depth": 8}, size=128, K=4, iters=25,
               warmup=5, device="cuda", precision="fp32")
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent))

PATH = "processes: K one-member fits at once on one device, each capped at 1/K of its memory " \
       "(torch.cuda.set_per_process_memory_fraction), no Ray"


def _fit(spec: dict, rank: int, barrier, dev) -> tuple[float, float]:
    """One process's fit; (start, end) of its timed iterations on the monotonic clock."""
    import torch

    from dipddpm.config import build
    from dipddpm.data.images import make_image_problem
    from dipddpm.methods import dip
    from dipddpm.methods.fitting import Member, fit_members

    cfg = build(dip.DipConfig, {**spec["net"], "iters": spec["warmup"] + spec["iters"],
                                "report_every": 1})
    problem = make_image_problem("skimage:astronaut", size=spec["size"], sigma=25, multiple=32)
    span = {}

    def report(it, metrics, state):
        if it in (spec["warmup"], cfg.iters):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if it == spec["warmup"]:
                barrier.wait()
            span[it] = time.monotonic()

    fit_members(cfg, [Member(problem, dip.dip_plan(cfg, problem), rank)], report, device=dev)
    return span[spec["warmup"]], span[cfg.iters]


def worker(rank: int, K: int, spec: dict, barrier, queue) -> None:
    """The body of one packed process: cap, fit, report (start, end) or the error."""
    import precision as prec
    import provenance as pv

    pv.ensure_repo_on_path()
    import torch

    out = {"rank": rank, "note": None}
    try:
        torch.set_num_threads(1)
        dev = torch.device(spec["device"])
        prec.set_precision(spec["precision"])
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            torch.cuda.set_per_process_memory_fraction(1 / K, dev)
        out["start"], out["end"] = _fit(spec, rank, barrier, dev)
    except torch.cuda.OutOfMemoryError as e:
        out["note"] = f"out of memory under the 1/{K} cap: {str(e)[:160]}"
        barrier.abort()
    except Exception as e:  # the parent reports it; the other processes stop at the barrier
        out["note"] = f"{type(e).__name__}: {str(e)[:200]}"
        barrier.abort()
    queue.put(out)


def packed_run(net: dict, size: int, K: int, iters: int, warmup: int, device: str,
               precision: str, timeout_s: float = 300) -> dict:
    """K processes at once; the packed trial-it/s and each process's own rate."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(K, timeout=timeout_s), ctx.Queue()
    spec = {"net": net, "size": size, "iters": iters, "warmup": warmup, "device": device,
            "precision": precision}
    procs = [ctx.Process(target=worker, args=(r, K, spec, barrier, queue)) for r in range(K)]
    for p in procs:
        p.start()
    got = _collect(queue, K, timeout_s)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    return summarize(got, K, iters, device)


def _collect(queue, K: int, timeout_s: float) -> list[dict]:
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < K and time.monotonic() < deadline:
        try:
            got.append(queue.get(timeout=1))
        except Empty:  # keep waiting until the deadline
            continue
    return got


def summarize(got: list[dict], K: int, iters: int, device: str) -> dict:
    done = [g for g in got if g.get("end") is not None]
    notes = sorted({g["note"] for g in got if g.get("note")})
    if len(got) < K:
        notes.append(f"{K - len(got)} of {K} processes sent nothing before the timeout")
    if device.startswith("cpu"):
        notes.append("CPU: no memory cap (set_per_process_memory_fraction is CUDA only)")
    row = {"packed_path": PATH, "packed_memory_fraction": 1 / K if device != "cpu" else None,
           "packed_trial_it_s": None, "packed_per_process_it_s": None, "packed_notes": notes}
    if len(done) == K:
        span = max(g["end"] for g in done) - min(g["start"] for g in done)
        row["packed_trial_it_s"] = K * iters / span
        row["packed_per_process_it_s"] = [iters / (g["end"] - g["start"])
                                          for g in sorted(done, key=lambda g: g["rank"])]
    return row


if __name__ == "__main__":  # a quick look: python benchmarks/packing.py [K] [device]
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print(packed_run({"width": 16, "depth": 3, "input_depth": 8}, 64, k, 10, 3,
                     sys.argv[2] if len(sys.argv) > 2 else "cpu", "fp32"))
