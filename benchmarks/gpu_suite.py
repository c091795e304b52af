"""The GPU verification run: one command, at most 8 minutes on one GPU, cheapest and most
informative parts first.

    python benchmarks/gpu_suite.py [--limit-s 480] [--only PART ...]
    python benchmarks/gpu_suite.py --dry-run      (the same pipeline shrunk, on CPU, < 2 min)

Parts, in order: the CUDA tests (`pytest -m gpu`); `dip_modes` at 256² and 512² (fp32, TF32,
bf16 autocast + channels_last, CUDA graphs); the fusion K-scaling with Ray fractional-GPU
packing beside it; DDPM training (bf16 AMP and fp32) and sampling speed; the full-size
reproductions (guided butterfly, staged-DIP F16, CSet9: one process per fit, `--jobs`, until
the image sets of the studies issue let them run fused); the ledger (benchmarks/RESULTS.md).
Before each part the suite checks the time: a part whose estimate would overrun the limit is
skipped with a note, and a running part is stopped at the limit. Every part's command, exit
status and wall time go to benchmarks/results/gpu_suite.json (dry run: into --out, a
temporary folder by default, so the committed results stay as they are).

Without CUDA and without --dry-run it stops at once with one line (exit 2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as pv  # noqa: E402

PY = sys.executable
CLI = [PY, "-c", "from dipddpm.cli import main; main()"]  # the `dipddpm` command
GPU_TESTS = ["tests/test_gpu.py", "tests/test_fusion.py", "tests/test_ddpm.py"]


@dataclass(frozen=True)
class Part:
    name: str
    estimate_s: float  # expected wall time on one H100-class GPU (dry run: on 2 CPU cores)
    argv: list[str]


def gpu_parts(out: Path) -> list[Part]:
    r, b = str(out), "benchmarks"
    ddpm = str(out / "ddpm_amp")
    return [
        Part("cuda_tests", 60, [PY, "-m", "pytest", "-q", "-m", "gpu", *GPU_TESTS]),
        Part("dip_modes", 60, [PY, f"{b}/dip_modes.py", "--sizes", "256", "512",
                               "--out", f"{r}/dip_modes-cuda.json"]),
        Part("fusion", 150, [PY, f"{b}/fusion.py", "--packing", "--budget-s", "140",
                             "--out", f"{r}/fusion-cuda.json"]),
        Part("ddpm_amp", 40, [*CLI, "fit", "ddpm", "--dataset", "skimage-patches",
                              "--out", ddpm, "--set", "net=small", "--set", "iters=300",
                              "--set", "amp=true", "--json"]),
        Part("ddpm_fp32", 40, [*CLI, "fit", "ddpm", "--dataset",
                               "skimage-patches", "--out", ddpm + "_fp32", "--set", "net=small",
                               "--set", "iters=300", "--set", "amp=false", "--json"]),
        Part("ddpm_sample", 20, [*CLI, "sample", "--checkpoint",
                                 f"{ddpm}/ddpm.pt", "--steps", "50", "--n", "64", "--out",
                                 f"{ddpm}/samples64.png", "--json"]),
        Part("repro_guided_butterfly", 60, [PY, f"{b}/reproduce.py", "guided_dip_butterfly",
                                            "--device", "cuda", "--out", r]),
        Part("repro_staged_f16", 90, [PY, f"{b}/reproduce.py", "staged_dip_f16", "--device",
                                      "cuda", "--out", r]),
        Part("repro_cset9", 120, [PY, f"{b}/reproduce.py", "dip_cset9", "--device", "cuda",
                                  "--out", r]),
        Part("ledger", 5, [PY, f"{b}/ledger.py", "--results", r]),
    ]


def dry_parts(out: Path) -> list[Part]:
    """The same pipeline, shrunk to run on CPU in under 2 minutes."""
    r, b = str(out), "benchmarks"
    ddpm = str(out / "ddpm_amp")
    return [
        Part("cuda_tests", 20, [PY, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py"]),
        Part("dip_modes", 10, [PY, f"{b}/dip_modes.py", "--device", "cpu", "--tiny",
                               "--sizes", "32", "--iters", "3", "--out",
                               f"{r}/dip_modes-cpu.json"]),
        Part("fusion", 15, [PY, f"{b}/fusion.py", "--device", "cpu", "--nets", "small",
                            "--sizes", "64", "--ks", "1", "2", "--iters", "3", "--packing",
                            "--out", f"{r}/fusion-cpu.json"]),
        Part("ddpm_amp", 15, [*CLI, "fit", "ddpm", "--dataset", "skimage-patches",
                              "--out", ddpm, "--preset", "tiny", "--set", "iters=10",
                              "--device", "cpu", "--json"]),
        Part("ddpm_sample", 10, [*CLI, "sample", "--checkpoint",
                                 f"{ddpm}/ddpm.pt", "--steps", "3", "--n", "4", "--out",
                                 f"{ddpm}/samples.png", "--device", "cpu", "--json"]),
        Part("repro_cset9", 15, [PY, f"{b}/reproduce.py", "dip_cset9_mini", "--device", "cpu",
                                 "--out", r, "--only", "F16"]),
        Part("ledger", 5, [PY, f"{b}/ledger.py", "--results", r, "--out", f"{r}/RESULTS.md"]),
    ]


def run_part(part: Part, timeout_s: float, log: Path) -> dict:
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(pv.REPO)}
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(part.argv, cwd=pv.REPO, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout_s, env=env).returncode
            note = None
        except subprocess.TimeoutExpired:
            rc, note = None, f"stopped at the time limit after {timeout_s:.0f} s"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    shown = ["dipddpm", *part.argv[3:]] if part.argv[:3] == CLI else part.argv[1:]
    return {"part": part.name, "command": " ".join(shown), "rc": rc,
            "wall_s": round(time.perf_counter() - t0, 1), "note": note, "tail": tail}


def run_suite(parts: list[Part], limit_s: float, out: Path) -> list[dict]:
    start, done = time.perf_counter(), []
    for part in parts:
        left = limit_s - (time.perf_counter() - start)
        if part.estimate_s > left:
            done.append({"part": part.name, "rc": None, "skipped": True,
                         "note": f"skipped: needs about {part.estimate_s:.0f} s, "
                                 f"{max(left, 0):.0f} s left of {limit_s:.0f} s"})
            print(f"[suite] {part.name}: skipped ({done[-1]['note']})", flush=True)
            continue
        print(f"[suite] {part.name} (about {part.estimate_s:.0f} s, {left:.0f} s left)",
              flush=True)
        row = run_part(part, left, out / f"{part.name}.log")
        done.append(row)
        print(f"[suite] {part.name}: rc {row['rc']} in {row['wall_s']} s"
              + (f" ({row['note']})" if row["note"] else ""), flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the pipeline shrunk, on CPU")
    ap.add_argument("--limit-s", type=float, default=None,
                    help="time limit (default 480 s; dry run 110 s)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these parts")
    ap.add_argument("--out", default=None, help="results folder (default: benchmarks/results; "
                    "dry run: a new temporary folder)")
    args = ap.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("error: gpu_suite.py needs a CUDA device (none here); use --dry-run to run the "
              "same pipeline shrunk on CPU", file=sys.stderr)
        return 2
    limit = args.limit_s or (110.0 if args.dry_run else 480.0)
    out = Path(args.out) if args.out else (
        Path(tempfile.mkdtemp(prefix="gpu_suite_dry_")) if args.dry_run
        else pv.REPO / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    parts = (dry_parts if args.dry_run else gpu_parts)(out)
    if args.only is not None:
        parts = [p for p in parts if p.name in args.only]
    if args.dry_run and not (pv.bench_data() / "cset9").is_dir():
        parts = [p for p in parts if not p.name.startswith("repro")]
        print("[suite] reproductions left out: no benchmark data (shared/data/cset9)")
    rows = run_suite(parts, limit, out)
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    pv.write_json(out / "gpu_suite.json", {
        "benchmark": "gpu_suite", "dry_run": args.dry_run, "limit_s": limit,
        "hardware": pv.hardware(dev), "date": pv.now(), **pv.git_sha(),
        "command": pv.command("benchmarks/gpu_suite.py", sys.argv[1:] if argv is None
                              else argv), "parts": rows})
    failed = [r["part"] for r in rows if r.get("rc") not in (0, None) or r.get("note")
              and not r.get("skipped")]
    print(f"[suite] wrote {out / 'gpu_suite.json'}" + (f"; failed: {', '.join(failed)}"
                                                      if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
