"""The GPU verification run, in two device calls that each keep whatever they measured.

    python benchmarks/gpu_suite.py --call A|B [--limit-s S] [--only PART ...] [--out DIR]
    python benchmarks/gpu_suite.py --dry-run [--call A|B|all]   (the same parts shrunk, CPU)

On the GPU machine it runs inside benchmarks/device_run.sh (install, preflight, packing of the
results into the 8 files that come back); benchmarks/README.md gives the two device calls and
the time plan (benchmarks/time_plan.py: every part's FLOPs priced at an H100's published rates).

Call A, speed: the CUDA tests (`pytest -m gpu tests/test_gpu.py`); `dip_modes` at 256² and
512² (fp32, TF32, bf16 autocast + channels_last, CUDA graphs); fusion K-scaling with packing
beside it (K processes capped at 1/K of the GPU, no Ray); DDPM training with bf16 AMP and in
fp32, and sampling. Call B, science: staged DIP on F16 (the plain-DIP row, then the 4 staged
rows as 4 processes), DIP on CSet9 (one fused trial of the 9 images), the guided-DIP
butterfly table; all three in TF32 (recorded per row), which the time plan needs.

Each part runs in its own process group (`start_new_session`) with its own time limit,
min(time left, 2 x its estimate); at the limit the whole group is killed (a part's worker
processes too). A part whose estimate exceeds the time left is skipped with a note, as is a
reproduction without its benchmark images. gpu_suite.json is rewritten after every part, and
the parts write their own rows as they are measured, so a part stopped midway keeps its rows.
The dry run runs every part on CPU with the GPU run's arguments, shrunk (its argv is the GPU
argv with overrides appended; the reproductions use the `_mini` protocols).

Lines that still run only on CUDA (the dry run and the CPU tests cannot reach them; each
`path:line` holds the call it names, give or take 10 lines, which tests/test_gpu_suite.py
checks):

  graph capture (dip_modes' cuda_graphs mode; tests/test_gpu.py checks the step has no host
  sync on CPU, and replays one capture on CUDA):
    benchmarks/dip_modes.py:122   torch.cuda.Stream       side-stream warm-up before capture
    benchmarks/dip_modes.py:130   torch.cuda.CUDAGraph    the graph
    benchmarks/dip_modes.py:131   torch.cuda.graph(       capture
  capturable Adam (its CPU form reads the step count on the host):
    benchmarks/dip_modes.py:139   capturable=             Adam(capturable=True) for graphs
  the memory probes and caps:
    benchmarks/fusion.py:73       reset_peak_memory_stats  peak allocated per fused run
    benchmarks/fusion.py:86       max_memory_allocated     (CPU: the resident set instead)
    benchmarks/packing.py:70      set_per_process_memory_fraction  a packed process's 1/K cap
    benchmarks/device_preflight.py:81  mem_get_info      free memory, the CUDA context
    dipddpm/methods/fusion.py:134  mem_get_info          a fused run's memory numbers (the
    dipddpm/methods/fusion.py:138  memory_allocated      decision itself is tested on CPU)
    dipddpm/cluster/devices.py:56   set_per_process_memory_fraction  a fractional trial's cap
  out-of-memory handling (tests/test_gpu_suite.py raises the error on CPU to test the rows):
    benchmarks/dip_modes.py:229   empty_cache             an OOM row becomes a note
    benchmarks/fusion.py:165      empty_cache             an OOM row; larger K skipped
    dipddpm/methods/fusion.py:254  empty_cache            a fused run's OOM, as a rule error
  device facts and synchronisation before a clock is read:
    benchmarks/dip_modes.py:193   get_device_name         the roofline's peak
    benchmarks/provenance.py:48   get_device_name         every result's hardware
    benchmarks/dip_modes.py:92    synchronize             dip_modes' clocks
    benchmarks/fusion.py:97       synchronize             fusion's clocks
    benchmarks/packing.py:46      synchronize             the packed processes' clocks

Without CUDA and without --dry-run it stops at once with one line (exit 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as pv  # noqa: E402
import time_plan  # noqa: E402

PY = sys.executable
B = "benchmarks"
CALLS = tuple(time_plan.CALLS)


@dataclass(frozen=True)
class Part:
    name: str
    call: str  # A (speed) or B (science)
    estimate_s: float  # GPU: benchmarks/time_plan.json; dry run: 2 busy CPU cores
    argv: list[str]
    precision: str  # what the part computes in (benchmarks/precision.py's modes)
    env: dict = field(default_factory=dict)
    needs_data: bool = False  # the benchmark images (cset9/, butterfly/)


def _ddpm(out: Path, amp: bool, iters: int = 300) -> list[str]:
    return [PY, f"{B}/precision.py", "fp32", "--", "fit", "ddpm", "--dataset",
            "skimage-patches", "--out", str(out), "--set", "net=small", "--set",
            f"iters={iters}", "--set", f"amp={str(amp).lower()}", "--json"]


def _repro(protocol: str, *extra: str) -> list[str]:
    return [PY, f"{B}/reproduce.py", protocol, "--precision", "tf32", *extra]


def gpu_argv(r: Path) -> dict[str, list[str]]:
    """Every part's GPU command (repo-relative script paths; run from the repo root)."""
    ddpm = r / "ddpm_amp"
    return {
        "cuda_tests": [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                       "tests/test_gpu.py"],
        "dip_modes": [PY, f"{B}/dip_modes.py", "--sizes", "256", "512", "--iters", "50",
                      "--warmup", "10", "--out", str(r / "dip_modes-cuda.json")],
        "fusion": [PY, f"{B}/fusion.py", "--precision", "fp32", "--iters", "12", "--packing",
                   "procs", "--packing-at", "small:128", "--packing-ks", "2", "4", "8",
                   "--out", str(r / "fusion-cuda.json")],
        "ddpm_amp": _ddpm(ddpm, True),
        "ddpm_fp32": _ddpm(r / "ddpm_fp32", False),
        "ddpm_sample": [PY, f"{B}/precision.py", "fp32", "--", "sample", "--checkpoint",
                        str(ddpm / "ddpm.pt"), "--steps", "50", "--n", "64", "--out",
                        str(ddpm / "samples64.png"), "--json"],
        "repro_staged_f16": _repro("staged_dip_f16", "--device", "cuda", "--jobs", "4",
                                   "--out", str(r)),
        "repro_cset9": _repro("dip_cset9", "--device", "cuda", "--fuse", "--out", str(r)),
        "repro_guided_butterfly": _repro("guided_dip_butterfly", "--device", "cuda", "--jobs",
                                         "6", "--out", str(r)),
    }


def dry_argv(r: Path) -> dict[str, list[str]]:
    """The dry run: each GPU command with overrides appended (later options win), or the
    reproduction's `_mini` protocol with the same flags. A `--set` key is given once (the
    fit commands refuse a key set twice), so the DDPM parts are rebuilt with the dry run's
    iterations."""
    g = gpu_argv(r)
    shrink_ddpm = ["--size", "16", "--data", "count=256", "--data", "eval_count=64",
                   "--set", "batch_size=8", "--set",
                   "val_max=32", "--set", "sample_count=4", "--set", "sample_steps=5", "--set",
                   "amp_cpu=true", "--device", "cpu"]
    return {
        "cuda_tests": g["cuda_tests"],
        "dip_modes": [*g["dip_modes"], "--device", "cpu", "--tiny", "--sizes", "32",
                      "--iters", "10", "--out", str(r / "dip_modes-cpu.json")],
        "fusion": [*g["fusion"], "--device", "cpu", "--nets", "small", "--sizes", "64",
                   "--ks", "1", "2", "--iters", "4", "--packing-at", "small:64",
                   "--packing-ks", "2", "--packing-iters", "5", "--packing-warmup", "2",
                   "--out", str(r / "fusion-cpu.json")],
        "ddpm_amp": [*_ddpm(r / "ddpm_amp", True, iters=10), *shrink_ddpm],
        "ddpm_fp32": [*_ddpm(r / "ddpm_fp32", False, iters=10), *shrink_ddpm],
        "ddpm_sample": [*g["ddpm_sample"], "--steps", "3", "--n", "4", "--device", "cpu"],
        "repro_staged_f16": _repro("staged_dip_f16_mini", "--device", "cpu", "--jobs", "2",
                                   "--threads", "1", "--out", str(r), "--only", "dip",
                                   "uniform"),  # both waves: the baseline, then a staged row
        "repro_cset9": _repro("dip_cset9_mini", "--device", "cpu", "--fuse", "--threads", "1",
                              "--out", str(r)),
        "repro_guided_butterfly": _repro("guided_dip_butterfly_mini", "--device", "cpu",
                                         "--jobs", "2", "--threads", "1", "--out", str(r),
                                         "--only", "dip_unet", "segnet_cosine"),
    }


# precision per part, and the dry run's estimates (seconds on 2 CPU cores shared with other
# work: a loaded CI machine takes 2-3 x a quiet one's time; the limit is twice these)
PRECISION = {"cuda_tests": "PyTorch's defaults (cuDNN TF32 on)", "dip_modes": "per row",
             "fusion": "fp32", "ddpm_amp": "bf16 autocast, TF32 off", "ddpm_fp32": "fp32",
             "ddpm_sample": "bf16 autocast, TF32 off", "repro_staged_f16": "tf32",
             "repro_cset9": "tf32", "repro_guided_butterfly": "tf32"}
DRY_ESTIMATE_S = {"cuda_tests": 60, "dip_modes": 30, "fusion": 60, "ddpm_amp": 60,
                  "ddpm_fp32": 60, "ddpm_sample": 20, "repro_staged_f16": 60,
                  "repro_cset9": 40, "repro_guided_butterfly": 60}


def parts(out: Path, dry: bool) -> list[Part]:
    plan = {r["part"]: r for r in time_plan.load()["parts"]}
    argv = (dry_argv if dry else gpu_argv)(out)
    # the dry run: one torch thread per process (2 shared cores: more threads than free cores
    # spin, and a DDPM step took 5 x longer with 2), the GPU tests' bodies on CPU
    env = {"cuda_tests": {"DIPDDPM_TEST_DEVICE": "cpu"}} if dry else {}
    threads = {"OMP_NUM_THREADS": "1"} if dry else {}
    return [Part(name, plan[name]["call"],
                 DRY_ESTIMATE_S[name] if dry else plan[name]["estimate_s"], cmd,
                 PRECISION[name], {**threads, **env.get(name, {})}, name.startswith("repro_"))
            for name, cmd in argv.items()]


def part_env(part: Part) -> dict:
    """The environment of a part: ours, the repo first on PYTHONPATH (never replacing what is
    there: the device's carried wheels live on it), and the part's own variables."""
    old = os.environ.get("PYTHONPATH")
    path = str(pv.REPO) + (os.pathsep + old if old else "")
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **part.env}


def kill_group(proc: subprocess.Popen) -> None:
    """End the part's whole process group (its workers too): TERM, then KILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait or None)
        except subprocess.TimeoutExpired:
            continue


def run_part(part: Part, timeout_s: float, log: Path) -> dict:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(part.argv, cwd=pv.REPO, stdout=fh, stderr=subprocess.STDOUT,
                                env=part_env(part), start_new_session=True)
        try:
            rc, note = proc.wait(timeout=timeout_s), None
        except subprocess.TimeoutExpired:
            rc, note = None, f"stopped at its time limit after {timeout_s:.0f} s"
        kill_group(proc)  # what a finished part left behind, or the whole running group
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return {"part": part.name, "call": part.call, "command": shown(part), "rc": rc,
            "wall_s": round(time.perf_counter() - t0, 1), "estimate_s": part.estimate_s,
            "limit_s": round(timeout_s, 1), "precision": part.precision, "note": note,
            "log": log.name, "tail": tail}


def shown(part: Part) -> str:
    env = " ".join(f"{k}={v}" for k, v in part.env.items())
    return " ".join(x for x in (env, "python", *part.argv[1:]) if x)


def skip(part: Part, note: str) -> dict:
    print(f"[suite] {part.name}: skipped ({note})", flush=True)
    return {"part": part.name, "call": part.call, "rc": None, "skipped": True, "note": note,
            "estimate_s": part.estimate_s, "command": shown(part)}


def run_suite(parts: list[Part], limit_s: float, out: Path, save=None) -> list[dict]:
    """Run the parts in order within limit_s; `save(rows)` after every part."""
    start, done = time.perf_counter(), []
    data = pv.bench_data()
    for part in parts:
        left = limit_s - (time.perf_counter() - start)
        if part.needs_data and not (data / "cset9").is_dir():
            done.append(skip(part, f"no benchmark images at {data} (cset9/, butterfly/); set "
                                   "DIPDDPM_BENCH_DATA"))
        elif part.estimate_s > left:
            done.append(skip(part, f"needs about {part.estimate_s:.0f} s, {max(left, 0):.0f} "
                                   f"s left of {limit_s:.0f} s"))
        else:
            limit = min(left, 2 * part.estimate_s)
            print(f"[suite] {part.name} (about {part.estimate_s:.0f} s, limit {limit:.0f} s, "
                  f"{left:.0f} s left)", flush=True)
            row = run_part(part, limit, out / f"{part.name}.log")
            done.append(row)
            print(f"[suite] {part.name}: rc {row['rc']} in {row['wall_s']} s"
                  + (f" ({row['note']})" if row["note"] else ""), flush=True)
        if save is not None:
            save(done)
    return done


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the parts shrunk, on CPU")
    ap.add_argument("--call", choices=[*CALLS, "all"], default="all",
                    help="A (speed), B (science) or all")
    ap.add_argument("--limit-s", type=float, default=None,
                    help="time limit (default: the call's from benchmarks/time_plan.json; "
                         "dry run 900 s)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these parts")
    ap.add_argument("--out", default=None, help="results folder (default: benchmarks/results; "
                    "dry run: a new temporary folder)")
    return ap.parse_args(argv)


def default_limit(call: str, dry: bool) -> float:
    if dry:
        return 900.0
    calls = time_plan.load()["calls"]
    return float(sum(v["suite_limit_s"] for c, v in calls.items() if call in (c, "all")))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("error: gpu_suite.py needs a CUDA device (none here); use --dry-run to run the "
              "same parts shrunk on CPU", file=sys.stderr)
        return 2
    limit = args.limit_s or default_limit(args.call, args.dry_run)
    out = Path(args.out) if args.out else (
        Path(tempfile.mkdtemp(prefix="gpu_suite_dry_")) if args.dry_run
        else pv.REPO / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in parts(out, args.dry_run) if args.call in (p.call, "all")
              and (args.only is None or p.name in args.only)]
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    head = {"benchmark": "gpu_suite", "dry_run": args.dry_run, "call": args.call,
            "limit_s": limit, **pv.stamp("benchmarks/gpu_suite.py", sys.argv[1:] if argv is
                                         None else argv, dev), "data": str(pv.bench_data())}
    path = out / "gpu_suite.json"
    rows = run_suite(chosen, limit, out, lambda rows: pv.write_json(path, {**head,
                                                                          "parts": rows}))
    pv.write_json(path, {**head, "parts": rows})
    failed = [r["part"] for r in rows if not r.get("skipped") and (r["rc"] != 0 or r["note"])]
    print(f"[suite] wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
