"""Search efficiency: Optuna + ASHA vs running every grid point to its full budget.

Space (guided DIP, tiny skip net, 32x32): stage scheduler (4) x beta schedule (3) x stages
(3, 6) = 24 points, 150 iterations each. (a) The grid: every point run to the full budget
(in-process, no Ray; the same seed, so each point's curve is what a trial would report);
compute = 24 x 150 iterations, target = the grid's best psnr_best - 0.2 dB. (b) A sweep with
Optuna TPE + ASHA (grace 15, reduction 3) over the same space through `dipddpm sweep`; compute
= iterations its trials ran until the first trial within 0.2 dB of the grid's best ended (all
trials that started before then, counted in full), and the whole sweep's total. (b) runs once
per searcher seed: one lucky start-up draw would say little, so the headline is the median
over seeds (a seed that never gets within 0.2 dB counts as the whole grid's compute or more).
Goal: median (b) <= 30% of (a).

    python benchmarks/search_efficiency.py [--samples 10] [--iters 150] [--seeds 0 1 2 3 4]

Writes OUT/search_efficiency.json (OUT: --out, default benchmarks/results), with the rung rule
the sweeps ran under (guided DIP's default: dipddpm/sweep/spec/rung_rules.py). A smoke run
(about a minute, starts a local Ray): --samples 2 --iters 20 --seeds 0 --out DIR.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from provenance import stamp, write_json

SCHEDULERS = ["uniform", "sharp_linear", "log10_linspace", "exp_weighted"]
BETAS = ["linear", "cosine", "sigmoid"]
STAGES = [3, 6]
FIXED = {"width": 16, "depth": 3, "input_depth": 8, "report_every": 5, "sharp_linear_x": 10,
         "t_max": 500}
PROBLEM = {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0}


def grid(iters: int) -> list[dict]:
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    m = METHODS.get("guided_dip")
    rows = []
    for sch, beta, k in itertools.product(SCHEDULERS, BETAS, STAGES):
        values = {**m.presets["tiny"], **FIXED, "iters": iters, "scheduler": sch,
                  "beta_schedule": beta, "stages": k}
        cfg = build(m.config_cls, values)
        res = m.run(cfg, m.make_problem(PROBLEM, cfg), seed=0, device="cpu")
        rows.append({"scheduler": sch, "beta_schedule": beta, "stages": k,
                     "psnr_best": res.metrics["psnr_gt_best"], "iters": iters})
        print(f"grid {sch:>15} {beta:>8} K={k}: {rows[-1]['psnr_best']:.3f}", flush=True)
    return rows


def sweep(samples: int, iters: int, storage: Path, seed: int) -> list[dict]:
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = {"name": f"search_efficiency_s{seed}", "method": "guided_dip", "preset": "tiny",
            "problem": PROBLEM, "metric": "psnr_best", "mode": "max",
            "fixed": {**FIXED, "iters": iters},
            "search": {"scheduler": {"choice": SCHEDULERS},
                       "beta_schedule": {"choice": BETAS}, "stages": {"choice": STAGES}},
            "searcher": {"type": "optuna", "sampler": "tpe", "seed": seed, "max_concurrent": 2},
            "scheduler": {"type": "asha", "grace_period": 15, "reduction_factor": 3},
            "num_samples": samples, "checkpoint_every": 1000, "storage": str(storage)}
    path = storage / f"spec{seed}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = run_sweep(path, console=SweepConsole("psnr_best", "max"))
    t = pd.read_parquet(Path(out.path) / "trials")
    return t[["trial_id", "status", "iters_done", "objective", "started_at", "ended_at",
              "config.scheduler", "config.beta_schedule", "config.stages"]].to_dict("records")


def main(argv: list[str] | None = None) -> None:
    from dipddpm.sweep.spec.rung_rules import rule_for

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                    help="searcher seeds: one sweep each")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                    help="folder for search_efficiency.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    head = stamp("benchmarks/search_efficiency.py", argv)  # the code as it starts
    g = grid(args.iters)
    grid_compute = sum(r["iters"] for r in g)
    best = max(r["psnr_best"] for r in g)
    target = best - 0.2
    from dipddpm.cluster.local_ray import start_local

    start_local(num_cpus=2)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            trials = sweep(args.samples, args.iters, Path(tmp), seed)
            runs.append(outcome(seed, trials, target, grid_compute))
    fracs = sorted(r["fraction_of_grid_to_target"] if r["fraction_of_grid_to_target"]
                   is not None else float("inf") for r in runs)
    median = statistics.median(fracs)
    out = {"benchmark": "search_efficiency", **head, "space": {"scheduler": SCHEDULERS,
                                                       "beta_schedule": BETAS,
                                                       "stages": STAGES},
           "fixed": FIXED, "iters": args.iters, "problem": PROBLEM,
           "rung_rule": rule_for("guided_dip", None).name,
           "grid": g, "grid_best": best, "grid_compute_iters": grid_compute, "target": target,
           "grid_points_within_target": sum(r["psnr_best"] >= target for r in g),
           "runs": runs, "median_fraction_of_grid_to_target": median,
           "seeds_reaching_target": sum(r["sweep_iters_to_target"] is not None for r in runs),
           "goal": "median over searcher seeds <= 0.30", "met": median <= 0.30,
           "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(args.out / "search_efficiency.json", json.loads(json.dumps(out, default=str)))
    for r in runs:
        print(f"seed {r['seed']}: best {r['sweep_best']:.3f}; to within 0.2 dB: "
              f"{r['sweep_iters_to_target']} it; whole sweep {r['sweep_total_iters']} it")
    print(f"grid best {best:.3f} dB ({grid_compute} it, {out['grid_points_within_target']} "
          f"points within 0.2 dB); median fraction to target over {len(runs)} seeds: "
          f"{median:.3f} (goal <= 0.30)")


def outcome(seed: int, trials: list[dict], target: float, grid_compute: int) -> dict:
    """Compute one sweep used to get within 0.2 dB of the grid's best, and in all."""
    total = sum(int(r["iters_done"]) for r in trials)
    hits = sorted((r for r in trials if r["objective"] is not None
                   and r["objective"] >= target), key=lambda r: r["ended_at"])
    until = None
    if hits:
        first = hits[0]["ended_at"]
        until = sum(int(r["iters_done"]) for r in trials if r["started_at"] <= first)
    return {"seed": seed, "sweep_trials": [{**r, "started_at": str(r["started_at"]),
                                            "ended_at": str(r["ended_at"])} for r in trials],
            "sweep_best": max((r["objective"] or -1e9) for r in trials),
            "sweep_total_iters": total, "sweep_iters_to_target": until,
            "fraction_of_grid_to_target": None if until is None else until / grid_compute,
            "fraction_of_grid_total": total / grid_compute}


if __name__ == "__main__":
    main()
