"""The GPU suite's time plan: each part's work counted, then priced at an H100's published rates.

    python benchmarks/time_plan.py            (the table, markdown)
    python benchmarks/time_plan.py --write    (also benchmarks/time_plan.json, which
                                               gpu_suite.py reads; a test checks it is current)

Counting: one training step of each net, at each size, runs once on PyTorch's meta device
(shapes only, no arithmetic, no real memory) under torch.utils.flop_counter's FlopCounterMode
and a dispatch mode that counts the operators called and the bytes they write. Pricing, per
step of K fused members (one process):

    gpu_s  = K x FLOPs / (EFFICIENCY[precision] x PEAK[precision])
             + MEMORY_PASSES x K x bytes written / (MEMORY_EFFICIENCY x BANDWIDTH)
    host_s = HOST_OPS_FACTOR x operators x LAUNCH_S + the loop's per-member operators
    step_s = max(gpu_s, host_s)       (eager PyTorch: launches overlap the GPU's work)

P processes sharing the GPU (packing, parallel reproduction rows) are time-sliced on it: their
GPU work adds up, their host work runs side by side (16 cores), so a wave of P lasts
max(sum gpu_s, max host_s) per step. A part's estimate adds a process start-up for each wave of
processes and cuDNN's autotuning for each new (net, size, precision).

PEAK and BANDWIDTH are the H100 SXM5 data sheet's dense numbers; EFFICIENCY, MEMORY_EFFICIENCY,
LAUNCH_S, STARTUP_S and AUTOTUNE_S are assumptions, not measurements: the device run measures
each part's wall time (gpu_suite.json), and this file's constants are to be refitted from it.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import provenance as pv  # noqa: E402

pv.ensure_repo_on_path()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

PLAN_JSON = HERE / "time_plan.json"
# H100 SXM5 (the device's "H100 80GB HBM3"), dense tensor-core rates; fp32 = no tensor cores
PEAK = {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}
BANDWIDTH = 3.35e12  # bytes/s, HBM3
EFFICIENCY = {"fp32": 0.5, "tf32": 0.3, "bf16": 0.25}  # share of peak small-batch convs reach
MEMORY_EFFICIENCY = 0.6
MEMORY_PASSES = 3  # bytes moved per byte written (a write and about two reads)
LAUNCH_S = 8e-6  # host time per PyTorch operator (dispatch and launch)
HOST_OPS_FACTOR = 1.5  # the optimizer, metrics and loop around the net's own operators
MEMBER_OPS = 10  # the loop's operators per member per step (noise, loss, metrics)
STARTUP_S = 10.0  # a Python process: import torch, CUDA context, cuDNN/cuBLAS handles
AUTOTUNE_S = 3.0  # cuDNN benchmark mode's search, per new (net, size, precision)
CALLS = {"A": "speed: the CUDA tests, DIP execution modes, fusion and packing, DDPM AMP",
         "B": "science: staged DIP on F16, DIP on CSet9 (one fused 9-image trial), the "
              "guided-DIP butterfly table"}
DEVICE_MINUTES = 15.0  # device time of one task, machine starts and idle time included
MACHINE_START_S = 90.0  # one machine start (a minute or more)
SETUP_S = 30.0  # device_run.sh around the suite: install, preflight (imports, CUDA), packing


@dataclass(frozen=True)
class Net:
    """A net to count: a DIP net (build_net) or a DDPM time U-Net preset (ddpm=True)."""

    name: str
    in_ch: int = 32
    out_ch: int = 3
    width: int | None = None
    depth: int | None = None
    ddpm: bool = False


SKIP = Net("skip")
SMALL = Net("skip", 8, 3, 16, 3)
UNET = Net("unet", 3)
SEGNET = Net("segnet", 3)
DDPM_SMALL = Net("small", 1, 1, ddpm=True)


@dataclass(frozen=True)
class Cost:
    flops: int  # one step (forward and backward; forward only for sampling)
    ops: int  # PyTorch operators called
    bytes_out: int  # bytes those operators wrote


@functools.cache
def step_cost(net: Net, size: int, batch: int = 1, backward: bool = True) -> Cost:
    """One step of `net` on a batch of size x size images, counted on the meta device."""
    model, args = _meta_model(net, size, batch)
    with FlopCounterMode(display=False) as fc, OpCounter() as oc:
        out = model(*args)
        if backward:
            F.mse_loss(out, torch.zeros_like(out)).backward()
    return Cost(int(fc.get_total_flops()), oc.ops, oc.bytes_out)


def _meta_model(net: Net, size: int, batch: int):
    if net.ddpm:
        from dipddpm.config import build
        from dipddpm.methods.ddpm_config import DdpmConfig
        from dipddpm.nn.time_unet import TimeUNet

        spec = build(DdpmConfig, {"net": net.name}).net_spec(net.in_ch, size)
        model = TimeUNet(spec).to("meta")
        return model, (torch.zeros(batch, net.in_ch, size, size, device="meta"),
                       torch.zeros(batch, dtype=torch.long, device="meta"))
    from dipddpm.nn import build_net

    model = build_net(net.name, net.in_ch, net.out_ch, net.width, net.depth).to("meta")
    return model, (torch.zeros(batch, net.in_ch, size, size, device="meta"),)


class OpCounter(TorchDispatchMode):
    """A dispatch mode counting the operators called and the bytes of their outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops, self.bytes_out = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self.bytes_out += sum(t.numel() * t.element_size() for t in tree_leaves(out)
                              if isinstance(t, torch.Tensor))
        return out


@dataclass(frozen=True)
class Work:
    """`iters` steps of `net` at `size`: `members` fused in one process, `procs` such
    processes at once on the GPU; `batch` images per member (DDPM)."""

    net: Net
    size: int
    iters: int
    precision: str = "fp32"
    members: int = 1
    procs: int = 1
    batch: int = 1
    backward: bool = True

    def step_s(self) -> tuple[float, float]:
        """(GPU seconds, host seconds) of one step of one process."""
        c = step_cost(self.net, self.size, self.batch, self.backward)
        k = self.members
        gpu = (k * c.flops / (EFFICIENCY[self.precision] * PEAK[self.precision])
               + MEMORY_PASSES * k * c.bytes_out / (MEMORY_EFFICIENCY * BANDWIDTH))
        host = (HOST_OPS_FACTOR * c.ops + MEMBER_OPS * k) * LAUNCH_S
        return gpu, host

    def seconds(self) -> float:
        gpu, host = self.step_s()
        return self.iters * max(self.procs * gpu, host)

    def flops(self) -> int:
        c = step_cost(self.net, self.size, self.batch, self.backward)
        return self.iters * self.members * self.procs * c.flops


@dataclass(frozen=True)
class PartPlan:
    name: str
    call: str
    work: tuple[Work, ...]
    waves: int = 1  # process start-ups one after the other
    autotunes: int = 0  # new (net, size, precision) configurations
    note: str = ""
    extra_s: float = 0.0  # what the counted work leaves out (named in the note)

    def estimate_s(self) -> float:
        return (self.waves * STARTUP_S + self.autotunes * AUTOTUNE_S + self.extra_s
                + sum(w.seconds() for w in self.work))

    def limit_s(self) -> float:
        return 2 * self.estimate_s()

    def row(self) -> dict:
        return {"part": self.name, "call": self.call, "tflop": sum(w.flops() for w in self.work)
                / 1e12, "estimate_s": round(self.estimate_s(), 1),
                "limit_s": round(self.limit_s(), 1), "note": self.note}


def _ks(ks, members_iters: int, net: Net, size: int, precision: str) -> list[Work]:
    return [Work(net, size, members_iters, precision, members=k) for k in ks]


def call_a() -> list[PartPlan]:
    ks = (1, 2, 4, 8, 16)
    fused = [w for size in (128, 256, 512) for w in _ks(ks, 12, SKIP, size, "fp32")]
    fused += [w for size in (64, 128, 256) for w in _ks(ks, 12, SMALL, size, "fp32")]
    packed = [Work(SMALL, 128, 25, "fp32", procs=k) for k in (2, 4, 8)]
    modes = [Work(SKIP, s, 2 * 60, p) for s in (256, 512) for p in ("fp32", "tf32")]
    modes += [Work(SKIP, s, 60, p) for s in (256, 512) for p in ("bf16", "tf32")]
    ddpm = Work(DDPM_SMALL, 32, 300, "bf16", batch=128)
    ddpm_val = Work(DDPM_SMALL, 32, 6 * 4, "bf16", batch=128, backward=False)  # 512 val / 6
    ddpm_fp = Work(DDPM_SMALL, 32, 300, "fp32", batch=128)
    sample = Work(DDPM_SMALL, 32, 50, "bf16", batch=64, backward=False)
    return [
        PartPlan("cuda_tests", "A", (Work(SMALL, 32, 2000),), extra_s=8,
                 note="pytest start-up and collection (extra 8 s); tiny fits, launch-bound"),
        PartPlan("dip_modes", "A", tuple(modes), autotunes=8, extra_s=4,
                 note="256² and 512², 4 modes, 10 warm-up + 50 timed steps (bare and ours); "
                      "graph capture 4 s (extra)"),
        PartPlan("fusion", "A", (*fused, *packed), waves=1 + 3,
                 note="K = 1..16 fused, 12 steps each (cuDNN benchmark off: no autotuning); "
                      "packing: K = 2, 4, 8 processes of the small net at 128², 25 steps"),
        PartPlan("ddpm_amp", "A", (ddpm, ddpm_val, sample), autotunes=2,
                 note="300 steps of batch 128 at 32² (bf16 autocast), val loss, 16 samples"),
        PartPlan("ddpm_fp32", "A", (ddpm_fp, ddpm_val, sample), autotunes=2,
                 note="the same in fp32 (TF32 off)"),
        PartPlan("ddpm_sample", "A", (sample,), autotunes=1, note="64 samples, 50 DDIM steps"),
    ]


def call_b(precision: str = "tf32") -> list[PartPlan]:
    p = precision
    f16 = (Work(SKIP, 512, 2000, p), Work(SKIP, 512, 2000, p, procs=4))
    cset9 = (Work(SKIP, 512, 1800, p, members=9),)
    butterfly = (Work(UNET, 128, 2000, p, procs=3), Work(SEGNET, 128, 2000, p, procs=3))
    return [
        PartPlan("repro_staged_f16", "B", f16, waves=2, autotunes=2,
                 note="the plain-DIP row, then the 4 staged rows as 4 processes (their "
                      "schedules differ: they cannot share one fused net)"),
        PartPlan("repro_cset9", "B", cset9, waves=1, autotunes=1,
                 note="one fused trial of the 9 images, 1800 steps"),
        PartPlan("repro_guided_butterfly", "B", butterfly, waves=1, autotunes=2,
                 note="6 rows at 128² as 6 processes (3 U-Net, 3 SegNet)"),
    ]


def plan(precision_b: str = "tf32") -> list[PartPlan]:
    return [*call_a(), *call_b(precision_b)]


def summary(parts: list[PartPlan]) -> dict:
    """Per call: the sum of its estimates, the suite's limit (the estimates x 1.3, rounded up
    to 10 s) and the device call's timeout_s (limit + SETUP_S + 60 s). Then the device time:
    both calls as estimated with two machine starts, the same at their limits (the worst case
    the limits allow), and what is left after the estimated case for a rerun (a part of a
    call, `device_run.sh A|B PART ...`, with a new machine start)."""
    calls = {}
    for c in CALLS:
        est = sum(p.estimate_s() for p in parts if p.call == c)
        limit = 10 * math.ceil(1.3 * est / 10)
        calls[c] = {"estimate_s": round(est, 1), "suite_limit_s": limit,
                    "timeout_s": int(limit + SETUP_S + 60)}
    starts = 2 * MACHINE_START_S
    expected = starts + sum(v["estimate_s"] + SETUP_S for v in calls.values())
    worst = starts + sum(v["suite_limit_s"] + SETUP_S for v in calls.values())
    left = DEVICE_MINUTES * 60 - expected
    rerun = [p.name for p in parts if MACHINE_START_S + SETUP_S + p.estimate_s() <= left]
    return {"calls": calls, "device_s": DEVICE_MINUTES * 60, "machine_start_s": MACHINE_START_S,
            "setup_s": SETUP_S, "both_expected_s": round(expected, 1),
            "both_at_limits_s": round(worst, 1), "left_for_a_rerun_s": round(left, 1),
            "parts_a_rerun_fits": rerun, "fits": worst <= DEVICE_MINUTES * 60}


def document() -> dict:
    parts = plan()
    fp32_b = {p.name: round(p.estimate_s(), 1) for p in call_b("fp32")}
    return {"model": {"peak_flops": PEAK, "bandwidth": BANDWIDTH, "efficiency": EFFICIENCY,
                      "memory_efficiency": MEMORY_EFFICIENCY, "memory_passes": MEMORY_PASSES,
                      "launch_s": LAUNCH_S, "host_ops_factor": HOST_OPS_FACTOR,
                      "member_ops": MEMBER_OPS, "startup_s": STARTUP_S,
                      "autotune_s": AUTOTUNE_S},
            "costs": [{"net": asdict(n), "size": s, **asdict(step_cost(n, s))}
                      for n, s in ((SKIP, 128), (SKIP, 256), (SKIP, 512), (SMALL, 64),
                                   (UNET, 128), (SEGNET, 128))],
            "parts": [p.row() for p in parts], "call_b_in_fp32_s": fp32_b,
            **summary(parts)}


def markdown(doc: dict) -> str:
    out = ["| call | part | work (TFLOP) | estimate (s) | limit (s) | what |",
           "|---|---|---:|---:|---:|---|"]
    out += [f"| {r['call']} | {r['part']} | {r['tflop']:.1f} | {r['estimate_s']:.0f} | "
            f"{r['limit_s']:.0f} | {r['note']} |" for r in doc["parts"]]
    for c, v in doc["calls"].items():
        out.append(f"\nCall {c}: estimate {v['estimate_s']:.0f} s, suite limit "
                   f"{v['suite_limit_s']} s, timeout_s {v['timeout_s']}.")
    out.append(f"\nDevice time ({doc['device_s']:.0f} s): both calls with two machine starts "
               f"(~{doc['machine_start_s']:.0f} s each) and set-up ({doc['setup_s']:.0f} s a "
               f"call) take about {doc['both_expected_s']:.0f} s as estimated, "
               f"{doc['both_at_limits_s']:.0f} s at their limits "
               f"({'within' if doc['fits'] else 'OVER'} the device time); "
               f"{doc['left_for_a_rerun_s']:.0f} s are left, enough to rerun any of: "
               f"{', '.join(doc['parts_a_rerun_fits']) or 'none'}.")
    return "\n".join(out)


def load() -> dict:
    """The committed plan (benchmarks/time_plan.json)."""
    return json.loads(PLAN_JSON.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {PLAN_JSON.name}")
    ap.add_argument("--out", type=Path, default=PLAN_JSON,
                    help="where --write writes the plan (a smoke run: elsewhere)")
    args = ap.parse_args(argv)
    doc = document()
    print(markdown(doc))
    if args.write:
        pv.write_json(args.out, doc)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
