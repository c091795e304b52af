"""The verdict of sweeps/study_guided_vs_dip.yaml: paired effects (results effect) over its
3 images x 2 replicates, each with its 95% bootstrap CI, Wilcoxon p and per-image deltas.

    dipddpm sweep run sweeps/study_guided_vs_dip.yaml          # the study (CPU, minutes)
    python benchmarks/study_verdict.py results/study_guided_vs_dip

Verdicts: plain DIP (stages 1) against the best 4-stage and the best 8-stage configuration, by
the oracle best (psnr_gt_best) and the last output (psnr_gt_final); BM3D (the study's
baseline, on the same observations) against plain DIP (also by its GT-free pick, psnr_es) and
against the best configuration. B is the best
of its group on these same pairs, so its lead over A is biased upwards (winner's curse).
Writes benchmarks/results/study_guided_vs_dip.json (or --out), with the study's own
provenance: the git sha and host its trials ran on, from the trials table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from provenance import stamp, write_json

from dipddpm.analysis.effect import effect
from dipddpm.analysis.load import load_sweep

OUT = Path(__file__).parent / "results" / "study_guided_vs_dip.json"
VERDICTS = [
    ({"stages": "1"}, {"stages": "4"}, "psnr_gt_best"),
    ({"stages": "1"}, {"stages": "8"}, "psnr_gt_best"),
    ({"stages": "1"}, {"stages": "4"}, "psnr_gt_final"),
    ({"stages": "1"}, {"stages": "8"}, "psnr_gt_final"),
    ({"baseline": "bm3d"}, {"stages": "1"}, "psnr_es"),
    ({"baseline": "bm3d"}, {"stages": "1"}, "psnr_gt_best"),
    ({"baseline": "bm3d"}, {}, "psnr_gt_best"),
]


def configurations(sweep) -> list[dict]:
    """Every COMPLETED configuration's set numbers, best first."""
    t = sweep.trials[sweep.trials["status"] == "COMPLETED"]
    cols = ["config.stages", "config.scheduler", "config.beta_schedule", "psnr_gt_best",
            "psnr_gt_best_pairmean", "psnr_es", "psnr_gt_final", "loop_wall_s"]
    rows = t[[c for c in cols if c in t]].sort_values("psnr_gt_best", ascending=False)
    return json.loads(rows.to_json(orient="records"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, default=OUT, help="the verdicts' JSON")
    args = ap.parse_args(argv)
    head = stamp("benchmarks/study_verdict.py", argv)
    sweep = load_sweep(args.sweep)
    t = sweep.trials
    out = {**head, "study": sweep.name,
           "study_run": {"git_sha": sorted(set(t["git_sha"].dropna())),
                         "hostname": sorted(set(t["hostname"].dropna())),
                         "trials": int(len(t)), "completed": int((t["status"] == "COMPLETED")
                                                                  .sum()),
                         "wall_s_sum": float(t["wall_s"].sum())},
           "verdicts": [], "configurations": configurations(sweep)}
    for a, b, metric in VERDICTS:
        e = effect(sweep, sweep, a, b, metric=metric)
        out["verdicts"].append(e.as_dict())
        ci = "—" if e.ci is None else f"[{e.ci[0]:+.3f}, {e.ci[1]:+.3f}]"
        print(f"{metric:>13}: B ({e.b}) - A ({e.a}) = {e.mean:+.3f} dB, CI {ci}, "
              f"W/T/L {e.wins}/{e.ties}/{e.losses}, p {e.p_wilcoxon}")
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
