"""Which GT-free pick of the *smoothed* output is better (issue 25, item 2)?

The variance rule (Wang et al., "Early Stopping for Deep Image Prior", arXiv:2112.06074) was
shown for DIP's raw outputs o_j. The smoothed output o_sm <- s o_sm + (1 - s) o_j is worth
more (about 2 dB at 128^2), so a user without the ground truth wants a pick of it. Two ways:

    at_raw_stop  the smoothed output at the raw rule's pick: o_sm at iter_es
    own_rule     the same rule run on the smoothed sequence itself: its own pick of o_sm

On a study's pairs (the images x replicates of `problem`, the same observations a sweep gets:
methods/study_pairs.py), plain DIP is fitted once per pair (all pairs as one fused net, the
fitting loop as a sweep runs it) and every iteration's output is seen by a forward hook: the
smoothing (the loop's formula) and both rules (the library's early_stop.ES_RULES) run on it,
and each pick is scored against the clean image. The oracle best smoothed output and the raw
pick (psnr_es) are given beside them, and the loop's own psnr_es_sm (the shipped way, SHIPPED:
at_raw_stop, which won the first measurement by 1.7 dB) is checked against the offline pick of
the same way.

    python benchmarks/es_smoothed.py [--iters 1200] [--size 64] [--out PATH]

Writes benchmarks/results/es_smoothed.json: per pair the PSNRs and iterations, the mean of
each way, and the paired difference own_rule - at_raw_stop (mean, wins, 95% bootstrap CI).
Timings are not the point here and are from a shared machine (not quiet): `loadavg_1m`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as pv  # noqa: E402

pv.ensure_repo_on_path()
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dipddpm.config import build  # noqa: E402
from dipddpm.early_stop import ES_RULES, EsParams  # noqa: E402
from dipddpm.methods import METHODS  # noqa: E402
from dipddpm.methods.dip import DipConfig, dip_plan  # noqa: E402
from dipddpm.methods.fitting import Member, fit_members  # noqa: E402
from dipddpm.methods.study_pairs import build_pairs  # noqa: E402
from dipddpm.nn.skip import SkipNet  # noqa: E402

OUT = Path(__file__).parent / "results" / "es_smoothed.json"
IMAGES = ["skimage:astronaut", "skimage:chelsea", "skimage:coffee"]
WAYS = ("at_raw_stop", "own_rule")
SHIPPED = "at_raw_stop"  # the way the fitting loop's psnr_es_sm picks (methods/fitting.py)


def _psnr(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(K,) PSNR of a (K,C,H,W) clipped to [0, 1] against ref."""
    mse = (a.clamp(0, 1).double() - ref.double()).square().flatten(1).mean(1)
    return -10 * torch.log10(mse)


class Watcher:
    """Sees every training forward of the fused net: smoothing and both rules, online."""

    def __init__(self, cfg, clean: torch.Tensor) -> None:
        self.cfg, self.clean, self.j = cfg, clean, 0
        self.o_sm = None
        params = EsParams(cfg.es_window, cfg.es_patience)
        self.raw = ES_RULES.get(cfg.es_rule)(params, clean)
        self.own = ES_RULES.get(cfg.es_rule)(params, clean)
        self.sm_curve: list[torch.Tensor] = []  # (K,) PSNR of o_sm vs clean per iteration

    def __call__(self, module, args, out) -> None:
        if not module.training or not isinstance(module, SkipNet):  # the whole net only
            return
        K = self.clean.shape[0]
        o = out.detach().view(K, -1, *out.shape[-2:])
        self.j += 1
        s = self.cfg.smoothing
        self.o_sm = o.clone() if self.o_sm is None else s * self.o_sm + (1 - s) * o
        self.raw.update(self.j, o)
        self.own.update(self.j, self.o_sm)
        self.sm_curve.append(_psnr(self.o_sm, self.clean))


def run(cfg, problem: dict, seed: int) -> dict:
    pairs = build_pairs(METHODS.get("dip"), problem, cfg, seed)
    members = [Member(p.problem, dip_plan(cfg, p.problem), p.seed) for p in pairs]
    clean = torch.stack([p.problem.clean for p in pairs])
    watch = Watcher(cfg, clean)
    handle = torch.nn.modules.module.register_module_forward_hook(watch)
    t0 = time.perf_counter()
    try:
        results = fit_members(cfg, members)
    finally:
        handle.remove()
    wall = time.perf_counter() - t0
    curve = torch.stack(watch.sm_curve)  # (N, K)
    raw_it, own_it = watch.raw.best_iter.tolist(), watch.own.best_iter.tolist()
    rows = []
    for i, (p, r) in enumerate(zip(pairs, results, strict=True)):
        m = r.metrics
        assert raw_it[i] in (0, m["iter_es"]), (raw_it[i], m["iter_es"])  # the loop's rule
        at_raw = float(curve[raw_it[i] - 1, i]) if raw_it[i] else float(curve[-1, i])
        own = float(curve[own_it[i] - 1, i]) if own_it[i] else float(curve[-1, i])
        rows.append({
            "image": p.spec.image, "replicate": p.spec.replicate, "seed": p.seed,
            "psnr_es": m["psnr_es"], "iter_es": m["iter_es"],
            "psnr_gt_sm_best": m["psnr_gt_sm_best"], "psnr_gt_best": m["psnr_gt_best"],
            "at_raw_stop": at_raw, "iter_at_raw_stop": raw_it[i],
            "own_rule": own, "iter_own_rule": own_it[i],
            "loop_psnr_es_sm": m.get("psnr_es_sm"), "loop_iter_es_sm": m.get("iter_es_sm")})
    return {"rows": rows, "wall_s": wall}


def verdict(rows: list[dict]) -> dict:
    from scipy.stats import bootstrap

    d = np.array([r["own_rule"] - r["at_raw_stop"] for r in rows])
    out = {"mean_at_raw_stop": float(np.mean([r["at_raw_stop"] for r in rows])),
           "mean_own_rule": float(np.mean([r["own_rule"] for r in rows])),
           "mean_psnr_es": float(np.mean([r["psnr_es"] for r in rows])),
           "mean_psnr_gt_sm_best": float(np.mean([r["psnr_gt_sm_best"] for r in rows])),
           "delta_own_minus_at_raw_stop": float(d.mean()),
           "wins_own": int((d > 1e-6).sum()), "losses_own": int((d < -1e-6).sum())}
    if len(d) >= 2 and np.ptp(d) > 0:
        ci = bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=9999,
                       random_state=0).confidence_interval
        out["ci95"] = [float(ci.low), float(ci.high)]
    out["better"] = WAYS[int(out["mean_own_rule"] > out["mean_at_raw_stop"])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    head = pv.stamp("benchmarks/es_smoothed.py")
    cfg = build(DipConfig, {"iters": args.iters, "width": 32, "depth": 4, "input_depth": 16,
                            "report_every": 100})
    problem = {"images": IMAGES, "replicates": args.replicates, "size": args.size,
               "sigma": 25, "seed": 0}
    got = run(cfg, problem, seed=0)
    for r in got["rows"]:  # the loop's own pick is the shipped way's, computed offline
        assert math.isclose(r["loop_psnr_es_sm"], r[SHIPPED], abs_tol=1e-3), r
    pv.write_json(args.out, {
        **head, "timing_note": "wall_s from a shared 2-core machine, not a quiet one",
        "config": {"method": "dip", "iters": args.iters, "width": 32, "depth": 4,
                   "input_depth": 16, "smoothing": cfg.smoothing, "es_rule": cfg.es_rule,
                   "es_window": cfg.es_window, "es_patience": cfg.es_patience},
        "problem": problem, "wall_s": got["wall_s"], "shipped": SHIPPED,
        "verdict": verdict(got["rows"]), "pairs": got["rows"]})
    print(pv.rel(args.out))


if __name__ == "__main__":
    main()
