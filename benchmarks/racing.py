"""Racing over a study's pairs (scheduler: {type: race}) against the unraced study, on
sweeps/study_guided_vs_dip.yaml: how much compute it saves, what it costs in regret, and
whether the verdict stays the same.

(a) Fit: every configuration of the study's space (plain DIP and 4- and 8-stage guided DIP x 4
stage schedulers x 3 beta schedules: 25) on every (image, replicate) pair of its problem, each
to its whole budget, in-process with the spec's preset, fixed values, noise seeds and fit seeds
(methods/study_pairs.py), recording each pair's psnr_gt curve. A serial (chunked) study trial
fits each pair with exactly this call, so the replay below is exact for it; a fused study's
pairs agree to float rounding.
(b) Replay, one race per seed (>= 5): the configurations arrive in a seeded random order (as the
spec's random sampler hands them out), `max_concurrent` at a time, each fitting its pairs a
block at a time in a seeded pair order; after every block the same decision the race
scheduler makes (dipddpm/trial_schedulers/race.py RaceBook: one-sided paired t-test against
the incumbent, Holm over the racing trials, at alpha) may stop it.
    compute  = pairs fitted in the race / pairs fitted unraced (every configuration, every pair)
    regret   = the unraced study's best objective - the raced study's best (dB; objective =
               psnr_best: the best of the set's mean psnr_gt curve, over every pair)
    verdict  = the best configuration, and its delta against plain DIP (stages 1) in each
               pair's best psnr_gt, with a 95% bootstrap CI over the pairs (scipy.stats
               .bootstrap, paired); in the raced study over the pairs plain DIP kept;
    same verdict = the raced study's verdict has the unraced one's sign, and its CI excludes 0
               exactly when the unraced CI does.
Plain DIP is the study's reference and is never raced out (`scheduler.keep: {stages: 1}`);
--no-keep races it like any other configuration (then a verdict may rest on 2 pairs).
Goal: the same best configuration, or regret <= 0.1 dB, at <= 50% of the compute.

    python benchmarks/racing.py                                # the study (CPU: ~30 min)
    python benchmarks/racing.py --from-curves benchmarks/results/racing_curves.json \
        [--alpha 0.2] [--seeds 10] [--no-keep] --out benchmarks/results/racing-alpha0.2.json
    python benchmarks/racing.py --tiny                         # smoke: its smoke block, seconds

Writes benchmarks/results/racing.json (racing-tiny.json for --tiny) and the fits beside it
(NAME_curves.json, with the same provenance), which --from-curves replays.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from provenance import stamp

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "sweeps" / "study_guided_vs_dip.yaml"
OUT = Path(__file__).parent / "results"


def configurations(spec) -> list[dict]:
    """Every point of the spec's (choice-only) space, its conditional keys only where they
    apply: plain DIP first."""
    domains = list(spec.search)
    out = []
    for values in itertools.product(*(d.values for d in domains)):
        params = dict(zip((d.key for d in domains), values, strict=True))
        live = {d.key: params[d.key] for d in domains if d.active(params)}
        if live not in out:
            out.append(live)
    return out


def fit_one(job: tuple) -> dict:
    """One configuration on one pair: its psnr_gt curve [(iter, value)]."""
    import torch

    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import build_pairs
    from dipddpm.sweep.spec.load import load_spec
    from dipddpm.sweep.trainable import trial_config

    torch.set_num_threads(1)
    spec_path, smoke, params, index = job
    spec = load_spec(spec_path, smoke=smoke)
    method = METHODS.get(spec.method)
    cfg = trial_config(spec, params)
    pair = build_pairs(method, dict(spec.problem), cfg, spec.trial_seed(params))[index]
    curve: list[tuple[int, float]] = []
    method.run(cfg, pair.problem, report=lambda it, m, st: curve.append((it, m["psnr_gt"])),
               seed=pair.seed, device="cpu")
    return {"params": params, "pair": index, "image": pair.spec.image,
            "replicate": pair.spec.replicate, "curve": curve}


def fit_all(spec_path: Path, smoke: bool, limit: int | None, workers: int) -> dict:
    from dipddpm.methods.study_pairs import pair_specs
    from dipddpm.sweep.spec.load import load_spec

    spec = load_spec(spec_path, smoke=smoke)
    configs = configurations(spec)[:limit]
    n_pairs = len(pair_specs(dict(spec.problem), spec.seed))
    jobs = [(str(spec_path), smoke, p, i) for p in configs for i in range(n_pairs)]
    fits, t0 = [], time.perf_counter()
    with Pool(workers) as pool:
        for n, r in enumerate(pool.imap_unordered(fit_one, jobs), 1):
            fits.append(r)
            if n % 10 == 0 or n == len(jobs):
                print(f"fits {n}/{len(jobs)}, {time.perf_counter() - t0:.0f} s", flush=True)
    fits.sort(key=lambda f: (configs.index(f["params"]), f["pair"]))
    return {"spec": str(spec_path.relative_to(REPO)), "smoke": smoke, "configs": configs,
            "n_pairs": n_pairs, "max_concurrent": spec.searcher.max_concurrent,
            "fit_s": time.perf_counter() - t0, "fits": fits}


class Study:
    """Per configuration, each pair's curve; the set's objective over any pairs."""

    def __init__(self, data: dict) -> None:
        self.configs = [json.dumps(p, sort_keys=True) for p in data["configs"]]
        self.n_pairs = data["n_pairs"]
        self.curves = {c: [None] * self.n_pairs for c in self.configs}
        for f in data["fits"]:
            self.curves[json.dumps(f["params"], sort_keys=True)][f["pair"]] = f["curve"]

    def pair_best(self, c: str, i: int) -> float:
        return max(v for _, v in self.curves[c][i])

    def objective(self, c: str) -> float:
        """psnr_best of the whole set: the best of the mean curve over every pair."""
        cs = self.curves[c]
        return max(statistics.fmean(cv[n][1] for cv in cs) for n in range(len(cs[0])))


def race(study: Study, seed: int, block: int, alpha: float, concurrent: int,
         keep: str | None = None) -> dict:
    """One replayed race (see the module docstring): who survived, pairs fitted."""
    from dipddpm.trial_schedulers.race import RaceBook

    rng = random.Random(seed)
    order = rng.sample(study.configs, len(study.configs))
    pairs = rng.sample(range(study.n_pairs), study.n_pairs)
    book = RaceBook(alpha=alpha, kept={keep} if keep else set())
    queue, running, fitted, clock = list(order), [], 0, 0
    while queue or running:
        while queue and len(running) < concurrent:
            running.append([queue.pop(0), 0, clock])  # config, pairs done, start
        running.sort(key=lambda r: (r[2] + r[1] + block, study.configs.index(r[0])))
        c, done, start = running[0]
        n = min(block, study.n_pairs - done)
        fitted, clock = fitted + n, max(clock, start + done + n)
        running[0][1] = done = done + n
        book.add(c, [study.pair_best(c, i) for i in pairs[:done]], study.n_pairs)
        if book.decide(c) or done == study.n_pairs:
            running.pop(0)
    survivors = [c for c in study.configs if c not in book.stopped]
    return {"seed": seed, "fitted": fitted, "survivors": survivors, "pairs_order": pairs,
            "values": book.values}


def delta_ci(study: Study, best: str, plain: str, pairs: list[int]) -> dict:
    from scipy.stats import bootstrap

    d = [study.pair_best(best, i) - study.pair_best(plain, i) for i in pairs]
    out = {"delta_db": statistics.fmean(d), "n_pairs": len(d)}
    if len(d) >= 2 and len(set(d)) > 1:
        ci = bootstrap((d,), statistics.fmean, confidence_level=0.95, method="percentile",
                       random_state=0).confidence_interval
        out["ci95"] = [float(ci.low), float(ci.high)]
    return out


def same_verdict(a: dict, b: dict) -> bool:
    """The same sign (0 counts as no gain), and a CI excluding 0 in both or in neither."""
    def decided(v: dict) -> bool:
        ci = v.get("ci95")
        return bool(ci) and (ci[0] > 0 or ci[1] < 0)

    return (a["delta_db"] > 0) == (b["delta_db"] > 0) and decided(a) == decided(b)


def summarize(data: dict, seeds: int, block: int, alpha: float, keep: bool = True) -> dict:
    study = Study(data)
    plain = next(c for c in study.configs if json.loads(c).get("stages") == 1)
    best = max(study.configs, key=study.objective)
    full = len(study.configs) * study.n_pairs
    unraced = {"best": json.loads(best), "objective": study.objective(best),
               "verdict_vs_plain": delta_ci(study, best, plain, list(range(study.n_pairs)))}
    rows = []
    for seed in range(seeds):
        r = race(study, seed, block, alpha, data["max_concurrent"], plain if keep else None)
        win = max(r["survivors"], key=study.objective)
        kept = sorted(r["pairs_order"][:len(r["values"][plain])])  # plain DIP's, in pair order
        rows.append({"seed": seed, "compute_fraction": r["fitted"] / full,
                     "regret_db": study.objective(best) - study.objective(win),
                     "best": json.loads(win), "same_best": win == best,
                     "plain_survived": plain in r["survivors"],
                     "survivors": len(r["survivors"]),
                     "verdict_vs_plain": delta_ci(study, win, plain, kept)})
        rows[-1]["same_verdict"] = same_verdict(rows[-1]["verdict_vs_plain"],
                                                unraced["verdict_vs_plain"])
    frac = [r["compute_fraction"] for r in rows]
    regret = [r["regret_db"] for r in rows]
    met = all((r["same_best"] or r["regret_db"] <= 0.1) and r["compute_fraction"] <= 0.5
              for r in rows)
    return {"block": block, "alpha": alpha, "keep_plain": keep,
            "configurations": len(study.configs),
            "pairs": study.n_pairs, "unraced": unraced, "races": rows,
            "compute_fraction_mean": statistics.fmean(frac), "compute_fraction_max": max(frac),
            "regret_db_mean": statistics.fmean(regret), "regret_db_max": max(regret),
            "same_best_in": sum(r["same_best"] for r in rows),
            "same_verdict_in": sum(r["same_verdict"] for r in rows),
            "goal": "same best or regret <= 0.1 dB, at <= 50% compute, in every race",
            "goal_met": met}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the spec's smoke block, 4 configs")
    ap.add_argument("--configs", type=int, default=None,
                    help="the first N configurations only (default: all; --tiny: 4)")
    ap.add_argument("--from-curves", type=Path, help="replay recorded fits (no fitting)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-keep", action="store_true",
                    help="race plain DIP too (default: never, as scheduler.keep: {stages: 1})")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    head = stamp("benchmarks/racing.py", argv if argv is not None else sys.argv[1:])
    name = "racing-tiny" if args.tiny else "racing"
    out = args.out or OUT / f"{name}.json"
    if args.from_curves:
        data = json.loads(args.from_curves.read_text())
    else:
        data = {**head, **fit_all(SPEC, args.tiny, args.configs or (4 if args.tiny else None),
                                  args.workers)}
        (out.parent / f"{out.stem}_curves.json").write_text(json.dumps(data))
    res = {**head, "spec": data["spec"], "smoke": data["smoke"], "fit_s": data["fit_s"],
           "seeds": args.seeds,
           "by_block": [summarize(data, args.seeds, b, args.alpha, not args.no_keep)
                        for b in args.blocks
                        if b <= data["n_pairs"]]}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out)
    for b in res["by_block"]:
        print(f"block {b['block']}: compute {b['compute_fraction_mean']:.2f} (max "
              f"{b['compute_fraction_max']:.2f}), regret {b['regret_db_mean']:.3f} dB (max "
              f"{b['regret_db_max']:.3f}), same best in {b['same_best_in']}/{args.seeds}, "
              f"same verdict in {b['same_verdict_in']}/{args.seeds}, "
              f"goal met: {b['goal_met']}")
    return res


if __name__ == "__main__":
    main()
