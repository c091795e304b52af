"""Rung fidelity: does ASHA's early look at a trial predict where it ends, per method family,
and which rung rule loses least while saving most?

(a) A full-budget grid of the quick space (sweeps/quick.yaml's net and fixed values): plain DIP
and 4- and 8-stage guided DIP x 4 stage schedulers x 3 beta schedules x t_max {300, 600, 900},
every point fitted to its whole budget on each of >= 3 images (in-process, seed 0: each curve
is what a trial would report). A configuration's value is the set's: the mean over the images.
(b) Rank fidelity: per family (plain, 4-stage, 8-stage, each scheduler) and rung rule, the
Spearman correlation (scipy.stats.spearmanr) between the value at each ASHA rung (grace 100,
reduction 3: rungs 100 and 300) and the final value.
(c) Regret per compute: seeded TPE (the sweep's `tpe` sampler entry, dipddpm/sweep/samplers.py)
with the ASHA scheduler `sweep run` builds (its registry entry, the same grace, reduction and
max_t = the budget, driven by benchmarks/sweep_scheduler.py) replayed on the recorded curves,
20 trials per search, one search per seed: regret = grid best - search best (dB, set means),
compute = the iterations the search ran / the grid's.

Rung rules: the entries of dipddpm/sweep/spec/rung_rules.py (the time axis ASHA counts rungs
on; compute is always total iterations), each report's time computed by the entry from the
iteration and `iter_final` (iterations into the final stage) as the trainable reports it:
    total   iterations done
    final   iterations done in the final stage (the observation itself); 0 before it
    gated   iterations done, but 0 until the final stage begins (a staged trial is judged
            at its real cost, once it fits the observation)

    python benchmarks/rung_fidelity.py [--images 3] [--size 64] [--iters 400] [--workers 2]
    python benchmarks/rung_fidelity.py --from-curves benchmarks/results/rung_fidelity_curves.json

Writes OUT/rung_fidelity.json (OUT: --out, default benchmarks/results) and the curves
(OUT/rung_fidelity_curves.json, so (b) and (c) rerun without fitting). Goals: rung-1 Spearman
>= 0.7 for every staged family; regret <= 0.2 dB at <= 30% of the grid's compute.

A smoke run (seconds): --tiny --images 1 --size 32 --iters 30 --grace 5 --seeds 0 --trials 3
--workers 1 --out DIR (--tiny: plain DIP and the 4-stage uniform linear points, 4 in all).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from multiprocessing import Pool
from pathlib import Path

from provenance import rel, stamp, write_json

SCHEDULERS = ["uniform", "sharp_linear", "log10_linspace", "exp_weighted"]
BETAS = ["linear", "cosine", "sigmoid"]
T_MAX = [300, 600, 900]
STAGES = [4, 8]
FIXED = {"width": 32, "depth": 4, "input_depth": 16, "report_every": 10, "t_min": 0,
         "t_drop_first": True}
RULES = ("total", "final", "gated")
GRACE, RF = 100, 3  # ASHA: the first rung (iterations on the rule's axis), reduction factor
OUT = Path(__file__).parent / "results"


def grid_points(tiny: bool = False) -> list[dict]:
    points = [{"stages": 1}]
    for k, sch, beta, t in itertools.product(STAGES, SCHEDULERS, BETAS, T_MAX):
        points.append({"stages": k, "scheduler": sch, "beta_schedule": beta, "t_max": t})
    return points[:1 + len(T_MAX)] if tiny else points


def space_of(points) -> dict[str, list]:
    """The searched values the grid holds, in the grid's order (a --tiny grid: fewer)."""
    staged = [p for p in points if p["stages"] > 1]
    return {"stages": [1, *[k for k in STAGES if any(p["stages"] == k for p in staged)]],
            **{name: [v for v in values if any(p[name] == v for p in staged)]
               for name, values in (("scheduler", SCHEDULERS), ("beta_schedule", BETAS),
                                    ("t_max", T_MAX))}}


def key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def fit_one(job: tuple) -> dict:
    """One grid point on one image: its report curve (it, psnr_best) and its final stage's
    first iteration."""
    import torch

    from dipddpm.config import build
    from dipddpm.methods import METHODS

    torch.set_num_threads(1)
    point, image, size, iters = job
    m = METHODS.get("guided_dip")
    cfg = build(m.config_cls, {**m.presets["tiny"], **FIXED, "iters": iters, **point})
    problem = m.make_problem({"image": image, "size": size, "sigma": 25, "seed": 0}, cfg)
    curve: list[tuple[int, float]] = []
    m.run(cfg, problem, report=lambda it, mm, st: curve.append((it, mm["psnr_best"])),
          seed=0, device="cpu")
    return {"point": point, "image": image, "curve": curve,
            "final_start": iters - cfg.counts()[-1]}


def run_grid(images: list[str], size: int, iters: int, workers: int,
             tiny: bool = False) -> list[dict]:
    jobs = [(p, im, size, iters) for p in grid_points(tiny) for im in images]
    out, t0 = [], time.perf_counter()
    with Pool(workers) as pool:
        for i, r in enumerate(pool.imap_unordered(fit_one, jobs), 1):
            out.append(r)
            if i % 20 == 0 or i == len(jobs):
                print(f"grid {i}/{len(jobs)} fits, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def iter_final(it: int, final_start: int) -> int:
    """Iterations into the final stage, as the fitting loop reports them (`iter_final`)."""
    return max(0, it - final_start)


def time_of(rule: str, it: int, final_start: int) -> int:
    """The report's time on the rung rule's axis (the rule's registry entry)."""
    from dipddpm.sweep.spec.rung_rules import RUNG_RULES

    return RUNG_RULES.get(rule).time(it, iter_final(it, final_start))


class SetCurves:
    """Per grid point, the set's (mean over images) psnr_best at every report, with each
    rule's time at that report."""

    def __init__(self, fits: list[dict]) -> None:
        by: dict[str, list[dict]] = {}
        for f in fits:
            by.setdefault(key(f["point"]), []).append(f)
        self.points = {k: v[0]["point"] for k, v in by.items()}
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self.final_start: dict[str, int] = {}
        for k, fs in by.items():
            its = [it for it, _ in fs[0]["curve"]]
            self.curves[k] = [(it, statistics.fmean(f["curve"][n][1] for f in fs))
                              for n, it in enumerate(its)]
            self.final_start[k] = fs[0]["final_start"]
        self.n_images = len(next(iter(by.values())))

    def final(self, k: str) -> float:
        return self.curves[k][-1][1]

    def at_rung(self, k: str, rule: str, rung: int) -> float | None:
        """The value at the first report whose time reaches the rung (None: never)."""
        for it, v in self.curves[k]:
            if time_of(rule, it, self.final_start[k]) >= rung:
                return v
        return None


def family_of(point: dict) -> list[str]:
    if point["stages"] == 1:
        return ["plain"]
    return [f"{point['stages']}-stage", f"staged/{point['scheduler']}"]


def fidelity(sc: SetCurves, rungs: list[int]) -> dict:
    from scipy.stats import spearmanr

    out: dict = {}
    families = sorted({f for p in sc.points.values() for f in family_of(p)})
    for rule in RULES:
        out[rule] = {}
        for fam in families:
            ks = [k for k, p in sc.points.items() if fam in family_of(p)]
            row = {}
            for rung in rungs:
                pairs = [(sc.at_rung(k, rule, rung), sc.final(k)) for k in ks]
                pairs = [(a, b) for a, b in pairs if a is not None]
                rho = spearmanr(*zip(*pairs, strict=True)).statistic if len(pairs) > 2 else None
                row[str(rung)] = {"spearman": None if rho is None else round(float(rho), 3),
                                  "n": len(pairs), "of": len(ks)}
            out[rule][fam] = row
    return out


def scheduler(rule: str, iters: int, grace: int):
    """The ASHA scheduler `sweep run` builds for a guided-DIP spec with this rung rule."""
    from sweep_scheduler import SweepScheduler

    from dipddpm.sweep.spec.schema import SchedulerSpec

    section = SchedulerSpec.parse({"type": "asha", "grace_period": grace,
                                   "reduction_factor": RF, "max_t": iters, "rung_rule": rule})
    return SweepScheduler(section, "guided_dip", "psnr_best", "max")


def replay(sc: SetCurves, rule: str, seed: int, trials: int, iters: int,
           grace: int = GRACE) -> dict:
    """One seeded TPE search over the grid space with the sweep's ASHA on the recorded
    curves: its regret (dB) and compute (fraction of the grid's iterations)."""
    import optuna

    from dipddpm.sweep.samplers import SAMPLERS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=SAMPLERS.get("tpe").make(seed, trials))
    asha = scheduler(rule, iters, grace)
    space = space_of(sc.points.values())
    spent = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        point = {"stages": trial.suggest_categorical("stages", space["stages"])}
        if point["stages"] > 1:
            point.update({name: trial.suggest_categorical(name, space[name])
                          for name in ("scheduler", "beta_schedule", "t_max")})
        k = key(point)
        reports = [(it, {"psnr_best": v, "iter_final": iter_final(it, sc.final_start[k])})
                   for it, v in sc.curves[k]]
        for it, m in reports:
            trial.report(m["psnr_best"], it)  # as the sweep's searcher records every report
        stop = asha.replay(str(trial.number), reports, iters)
        if stop is not None:
            spent += stop * sc.n_images
            raise optuna.TrialPruned()
        spent += iters * sc.n_images
        return sc.final(k)

    study.optimize(objective, n_trials=trials)
    done = [t.value for t in study.trials if t.value is not None]
    best_grid = max(sc.final(k) for k in sc.points)
    grid_compute = len(sc.points) * iters * sc.n_images
    return {"regret_db": best_grid - max(done) if done else None,
            "compute_fraction": spent / grid_compute, "completed": len(done)}


def analyse(fits: list[dict], iters: int, seeds: list[int], trials: int,
            grace: int = GRACE) -> dict:
    sc = SetCurves(fits)
    rungs = [grace * RF**k for k in range(4) if grace * RF**k < iters]
    searches = {}
    for rule in RULES:
        runs = [replay(sc, rule, s, trials, iters, grace) for s in seeds]
        regrets = [r["regret_db"] for r in runs if r["regret_db"] is not None]
        fracs = [r["compute_fraction"] for r in runs]
        searches[rule] = {
            "median_regret_db": statistics.median(regrets) if regrets else None,
            "mean_regret_db": statistics.fmean(regrets) if regrets else None,
            "median_compute_fraction": statistics.median(fracs),
            "regret_per_compute": (statistics.median(regrets) / statistics.median(fracs)
                                   if regrets else None),
            "runs": runs}
    best = max(sc.points, key=sc.final)
    return {"rungs": rungs, "fidelity": fidelity(sc, rungs), "searches": searches,
            "grid_best": {"point": sc.points[best], "psnr_best": sc.final(best)},
            "plain_final": sc.final(key({"stages": 1})), "n_points": len(sc.points),
            "n_images": sc.n_images}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3, help="first N of skimage-set:photos")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--trials", type=int, default=20, help="trials per replayed search")
    ap.add_argument("--grace", type=int, default=GRACE, help="ASHA's first rung")
    ap.add_argument("--tiny", action="store_true",
                    help="plain DIP and the three 4-stage uniform linear points (a smoke run)")
    ap.add_argument("--from-curves", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the JSON files")
    return ap.parse_args(argv)


def fit_grid(args, head: dict) -> tuple[list[dict], dict]:
    """Fit the grid and write its curves (OUT/rung_fidelity_curves.json)."""
    from dipddpm.data.image_sets import SKIMAGE_SETS

    images = list(SKIMAGE_SETS["photos"][:args.images])
    t0 = time.perf_counter()
    fits = run_grid(images, args.size, args.iters, args.workers, args.tiny)
    grid = {"images": images, "size": args.size, "iters": args.iters, "fixed": FIXED,
            "tiny": args.tiny, "wall_s": time.perf_counter() - t0}
    write_json(args.out / "rung_fidelity_curves.json", {**head, "grid": grid, "fits": fits})
    return fits, grid


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    head = stamp("benchmarks/rung_fidelity.py", argv)
    curves = None
    if args.from_curves:
        saved = json.loads(args.from_curves.read_text())
        fits, grid = saved["fits"], saved["grid"]
        curves = {"file": rel(args.from_curves), "git_sha": saved.get("git_sha"),
                  "date": saved.get("date"), "command": saved.get("command")}
    else:
        fits, grid = fit_grid(args, head)
    result = {**head, "grid": grid, "curves_from": curves,
              **analyse(fits, grid["iters"], args.seeds, args.trials, args.grace),
              "grace": args.grace, "reduction_factor": RF, "seeds": args.seeds,
              "trials_per_search": args.trials}
    write_json(args.out / "rung_fidelity.json", result)
    for rule, s in result["searches"].items():
        regret = s["median_regret_db"]
        print(f"{rule:>6}: median regret "
              f"{'–' if regret is None else f'{regret:.3f}'} dB at "
              f"{s['median_compute_fraction']:.1%} of the grid's compute")


if __name__ == "__main__":
    main()
