"""GPU packing: trials/hour and GPU utilisation of one bundled sweep at 1, 0.5 and 0.25 GPU
per trial (`resources.gpu`), on the GPUs of this machine.

Each fraction runs the same sweep (same spec, seed and trial count; no early stopping, so
every trial does the same work) with as many trials at once as fit:
min(GPUs / fraction, CPUs / cpu-per-trial). While it runs, `nvidia-smi` samples every GPU's
utilisation and memory every 0.5 s. Small DIP nets leave a GPU mostly idle, so packing
should raise both numbers until the GPU (or the CPU feeding it) saturates.

    python benchmarks/gpu_packing.py [--spec sweeps/beat_staged_f16_mini.yaml]
        [--fractions 1 0.5 0.25] [--num-samples 24] [--cpu 2] [--set KEY=VALUE ...]
        [--fake-gpus N]   (CPU dry run of the script: N pretend GPUs, no utilisation)

Writes benchmarks/results/gpu_packing-<gpu>.json (per fraction: trials/hour, wall time,
mean/median GPU utilisation, peak memory, trials at once, best objective).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import command, git_sha, now, write_json  # noqa: E402

QUERY = "index,name,utilization.gpu,memory.used,memory.total"


class GpuSampler:
    """`nvidia-smi -lms` in the background (our own child process), one row per GPU per tick."""

    def __init__(self, period_ms: int = 500) -> None:
        self.period_ms = period_ms
        self.rows: list[tuple[float, int, str, float, float, float]] = []
        self.proc = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi") is None:
            return self
        self.proc = subprocess.Popen(
            ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits",
             f"-lms={self.period_ms}"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 5:
                try:
                    self.rows.append((time.time(), int(parts[0]), parts[1], float(parts[2]),
                                      float(parts[3]), float(parts[4])))
                except ValueError:  # "[N/A]" on some virtualised GPUs
                    pass

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.thread.join(timeout=5)

    def summary(self) -> dict:
        if not self.rows:
            return {"gpu_util_mean": None, "gpu_util_median": None, "gpu_mem_peak_mib": None,
                    "gpu_samples": 0}
        util = [r[3] for r in self.rows]
        per_gpu = {}
        for r in self.rows:
            per_gpu.setdefault(r[1], []).append(r[3])
        return {"gpu_util_mean": statistics.fmean(util),
                "gpu_util_median": statistics.median(util),
                "gpu_util_mean_per_gpu": {i: statistics.fmean(v) for i, v in per_gpu.items()},
                "gpu_mem_peak_mib": max(r[4] for r in self.rows),
                "gpu_mem_total_mib": self.rows[0][5], "gpu_samples": len(self.rows)}


def run_fraction(args, fraction: float, gpus: float, cpus: float) -> dict:
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep
    from dipddpm.sweep.spec import load_spec

    at_once = max(1, min(int(gpus / fraction + 1e-9), int(cpus // args.cpu)))
    base = load_spec(args.spec, sets=args.set)
    sets = [*args.set, f"name={base.name}_gpu{fraction:g}", f"resources.gpu={fraction}",
            f"resources.cpu={args.cpu}", f"searcher.max_concurrent={at_once}",
            "scheduler={type: none}"]  # the whole section: no ASHA keys left under none
    storage = tempfile.mkdtemp(prefix="gpu_packing-")
    spec = load_spec(args.spec, sets=sets, num_samples=args.num_samples, storage=storage)
    print(f"gpu {fraction:g} per trial: {args.num_samples} trials, {at_once} at once",
          flush=True)
    with GpuSampler() as sampler:
        t0 = time.time()
        out = run_sweep(args.spec, storage=storage, num_samples=args.num_samples, sets=sets,
                        console=SweepConsole(spec.metric, spec.mode, quiet=True))
        wall = time.time() - t0
    rows = out.rows
    done = [r for r in rows if r["status"] == "COMPLETED"]
    objs = [r["objective"] for r in done if r["objective"] is not None]
    result = {"gpu_per_trial": fraction, "cpu_per_trial": args.cpu, "trials_at_once": at_once,
              "trials": len(rows), "completed": len(done),
              "failed": sum(r["status"] == "FAILED" for r in rows),
              "wall_s": wall, "trials_per_hour": len(done) / wall * 3600 if wall else None,
              "trial_wall_s_mean": statistics.fmean(r["wall_s"] for r in done) if done else None,
              "gpu_names": sorted({r["gpu"] for r in rows if r.get("gpu")}),
              "best_objective": (max if spec.mode == "max" else min)(objs) if objs else None,
              **sampler.summary()}
    shutil.rmtree(storage, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="sweeps/beat_staged_f16_mini.yaml")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    p.add_argument("--num-samples", type=int, default=24)
    p.add_argument("--cpu", type=float, default=2.0, help="CPUs per trial")
    p.add_argument("--set", action="append", default=[], help="spec override KEY=VALUE")
    p.add_argument("--fake-gpus", type=int, default=None,
                   help="CPU dry run: pretend this many GPUs (no utilisation is measured)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import ray
    import torch

    from dipddpm.cluster.local_ray import start_local

    if args.fake_gpus is None and not torch.cuda.is_available():
        sys.exit("gpu_packing: no CUDA GPU here; run it on a GPU machine "
                 "(or --fake-gpus 1 for a CPU dry run of the script)")
    start_local(num_gpus=args.fake_gpus)
    res = ray.cluster_resources()
    gpus, cpus = res.get("GPU", 0.0), res.get("CPU", 1.0)
    try:
        runs = [run_fraction(args, f, gpus, cpus) for f in args.fractions]
    finally:
        ray.shutdown()
    # the GPUs the trials themselves recorded (whichever Ray assigned, not blindly device 0)
    used = sorted({n for r in runs for n in r["gpu_names"]})
    name = "+".join(used) if used else "cpu-dry-run"
    meta = {"benchmark": "gpu_packing", "date": now(), **git_sha(),
            "command": command("benchmarks/gpu_packing.py", sys.argv[1:] if argv is None
                               else argv),
            "gpu": name, "gpus": gpus, "cpus": cpus, "spec": args.spec, "sets": args.set,
            "num_samples": args.num_samples, "ray": ray.__version__, "torch": torch.__version__,
            "dry_run": args.fake_gpus is not None}
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    out = Path(args.out or Path(__file__).parent / "results" / f"gpu_packing-{slug}.json")
    write_json(out, {"meta": meta, "rows": runs})
    for r in runs:
        util = r["gpu_util_mean"]
        print(f"gpu {r['gpu_per_trial']:g}/trial: {r['trials_at_once']} at once, "
              f"{r['trials_per_hour']:.0f} trials/h, GPU util "
              + (f"{util:.0f}%" if util is not None else "n/a")
              + f", {r['completed']}/{r['trials']} completed")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
