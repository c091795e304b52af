"""Tune overhead: DIP iterations per second inside a Ray Tune trial vs the same loop without Ray.

The same DIP config (tiny skip net, 64x64, reports every 10 iterations) runs (a) directly,
`run_dip(cfg, problem)`, and (b) as one trial of a sweep through `dipddpm.sweep` (embedded local
Ray, 1 CPU per trial: Tune reports every 10 iterations, a checkpoint every 100). Both measure
the method loop's own time (`Result.metrics["wall_s"]`, the trials row's `loop_wall_s`), one
thread each. Each repeat runs (a) and (b) back to back, in ABBA order, and gives one paired
ratio (b)/(a); the headline is the median paired ratio with its 95% bootstrap CI. Goal:
ratio >= 0.95, judged on the CI (met: the CI lies above 0.95; missed: below; else undecided).

    python benchmarks/tune_overhead.py [--iters 1000] [--repeats 10] [--size 64]

Writes OUT/tune_overhead.json (OUT: --out, default benchmarks/results). A smoke run (under a
minute, starts a local Ray): --iters 20 --repeats 2 --size 32 --out DIR.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
import yaml
from provenance import stamp, write_json

GOAL = 0.95
CFG = {"iters": 1000, "width": 16, "depth": 3, "input_depth": 8, "report_every": 10}


def direct(cfg_values: dict, problem_spec: dict) -> float:
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    m = METHODS.get("dip")
    cfg = build(m.config_cls, cfg_values)
    problem = m.make_problem(problem_spec, cfg)
    res = m.run(cfg, problem, seed=0, device="cpu")
    return cfg.iters / res.metrics["wall_s"]


def in_tune(cfg_values: dict, problem_spec: dict, storage: Path, name: str) -> float:
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = {"name": name, "method": "dip", "problem": problem_spec, "metric": "psnr_best",
            "fixed": {k: v for k, v in cfg_values.items() if k != "lr"},
            "search": {"lr": {"choice": [cfg_values.get("lr", 0.01)]}},
            "searcher": {"type": "optuna", "max_concurrent": 1}, "scheduler": {"type": "none"},
            "num_samples": 1, "checkpoint_every": 100, "storage": str(storage)}
    path = storage / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = run_sweep(path, console=SweepConsole("psnr_best", "max", quiet=True))
    row = pd.read_parquet(Path(out.path) / "trials").iloc[0]
    return float(row["config.iters"]) / float(row["loop_wall_s"])


def paired(cfg: dict, problem: dict, repeats: int, tmp: Path) -> list[tuple[float, float]]:
    """(direct, Tune) rates per repeat, in ABBA order (direct first on even repeats, Tune first
    on odd ones), so drift and the neighbours' load hit both sides alike."""
    pairs = []
    for i in range(repeats):
        if i % 2 == 0:
            a = direct(cfg, problem)
            b = in_tune(cfg, problem, tmp, f"overhead{i}")
        else:
            b = in_tune(cfg, problem, tmp, f"overhead{i}")
            a = direct(cfg, problem)
        pairs.append((a, b))
        print(f"repeat {i}: direct {a:.1f} it/s, in Tune {b:.1f} it/s, ratio {b / a:.3f}",
              flush=True)
    return pairs


def median_ci(ratios: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The median paired ratio and its 95% percentile bootstrap CI (scipy.stats.bootstrap)."""
    import numpy as np
    from scipy.stats import bootstrap

    r = np.asarray(ratios)
    ci = bootstrap((r,), np.median, confidence_level=0.95, n_resamples=9999,
                   method="percentile", random_state=seed).confidence_interval
    return float(np.median(r)), float(ci.low), float(ci.high)


def verdict(low: float, high: float, goal: float) -> str:
    """Met when the whole CI clears the goal, missed when it lies below, else undecided."""
    return "met" if low >= goal else "missed" if high < goal else "undecided"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                    help="folder for tune_overhead.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = {**CFG, "iters": args.iters}
    problem = {"image": "skimage:astronaut", "size": args.size, "sigma": 25, "seed": 0}
    from dipddpm.cluster.local_ray import start_local

    head = stamp("benchmarks/tune_overhead.py", argv)
    start_local(num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = paired(cfg, problem, args.repeats, Path(tmp))
    ratios = [b / a for a, b in pairs]
    med, low, high = median_ci(ratios)
    out = {"benchmark": "tune_overhead", **head, "config": cfg, "problem": problem,
           "direct_it_s": [a for a, _ in pairs], "tune_it_s": [b for _, b in pairs],
           "paired_ratios": ratios, "median_ratio": med, "ci95": [low, high],
           "goal": f">= {GOAL} (judged on the 95% bootstrap CI of the median paired ratio)",
           "verdict": verdict(low, high, GOAL), "met": low >= GOAL,
           "loadavg_1m_end": round(os.getloadavg()[0], 2),
           "note": "each repeat is a direct run and a Tune trial back to back (ABBA order); "
                   "the ratio is Tune/direct of that pair"}
    dest = args.out / "tune_overhead.json"
    write_json(dest, out)
    print(f"median paired ratio {med:.3f}, 95% CI [{low:.3f}, {high:.3f}] (goal >= {GOAL}: "
          f"{out['verdict']}) -> {dest}")


if __name__ == "__main__":
    main()
