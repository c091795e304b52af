"""The verdict of a family study (benchmarks/family.py): every arm, alone and as the ensemble
of its replicates, paired against plain DIP, BM3D and NL-means on the same observations.

Each arm's sweep is narrowed to its best configuration by the mean of its GT-free metric
over its observations (the arm's `metric:`, GT-free by benchmarks/family.py's rule); that
configuration's observations are paired by (image, replicate) with the other side's, and
the paired verdict is the library's (dipddpm.analysis.effect.paired: mean difference with a
95% BCa bootstrap CI, wins/ties/losses, Wilcoxon p, per image). Never computed here.

- Plain DIP, the reference arm, counts at the better of its two GT-free picks, raw
  (psnr_es) and smoothed (psnr_es_sm), whichever has the higher mean over the observations:
  so smoothing alone is never counted as another arm's gain.
- A baseline counts at its only output (psnr_gt_final), from the reference's sweep, which
  ran it once on the same observations.
- An arm's ensemble is its best configuration's ensemble rows (a study's pairs rows with
  `ensemble` true and `replicate` -1, one per image: the mean of the replicates' outputs at
  their GT-free picks), the configuration chosen by its single runs (so alone and ensemble
  are one configuration, and their difference is the ensemble's). The library pairs an
  ensemble's rows by observation (image and noise seed): each image's ensemble against the
  other side's rows of that observation, averaged (an ensemble of k against a single run).
- The oracle (psnr_gt_best, uses the ground truth) of the same configuration and rows stands
  beside the GT-free number; their difference is the arm's ES gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from dipddpm.analysis.effect import KEYS, paired, select
from dipddpm.analysis.load import Sweep
from dipddpm.errors import DipddpmError

REFERENCE_METRICS = ("psnr_es", "psnr_es_sm")  # plain DIP: the better of the two
BASELINE_METRIC = "psnr_gt_final"  # a baseline's one output
ORACLE = "psnr_gt_best"
ENSEMBLE_REPLICATE = -1  # the `replicate` of an ensemble row in a study's pairs table
VARIANTS = ("alone", "ensemble")
PAIRING = ("noise_seed", "ensemble", "height", "width")


@dataclass
class Side:
    """One side of a verdict: its observations (KEYS + height/width + value), what it is."""

    label: str
    metric: str
    obs: pd.DataFrame
    trial_ids: tuple[str, ...] = ()
    config: dict | None = None


def pair_rows(sweep: Sweep, metric: str) -> pd.DataFrame:
    """The pairs rows of the sweep's COMPLETED trials, with their configuration number."""
    trials = select(sweep, {}, "--b")
    rows = sweep.pairs()
    if metric not in rows:
        raise DipddpmError(f"sweep {sweep.name}: its pairs table has no {metric}")
    rows = rows[rows["trial_id"].isin(trials["trial_id"])].copy()
    number = dict(zip(trials["trial_id"], sweep.configurations().reindex(trials.index),
                      strict=True))
    rows["config"] = rows["trial_id"].map(number)
    return rows


def present(rows: pd.DataFrame) -> list[str]:
    """The columns the library pairs and checks by, besides (image, replicate), that the rows
    have: the observation's noise seed, whether a row is an ensemble's, its size."""
    return [c for c in PAIRING if c in rows]


def config_of(sweep: Sweep, trial_ids) -> dict:
    """The searched config values of a configuration (from its first trial)."""
    t = sweep.trials[sweep.trials["trial_id"].isin(list(trial_ids))]
    return {c.removeprefix("config."): _plain(t[c].iloc[0]) for c in sweep.varying_config()}


def _plain(v):
    return None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)


def arm_side(sweep: Sweep, metric: str, variant: str, label: str) -> Side | None:
    """The arm's best configuration (by its alone rows' mean of `metric`) and its rows of
    `variant`; None where the sweep has no such rows (an arm run without ensembles)."""
    rows = pair_rows(sweep, metric)
    alone = rows[rows["replicate"] != ENSEMBLE_REPLICATE]
    best = alone.groupby("config")[metric].mean().idxmax()
    pick = rows[rows["config"] == best]
    pick = pick[(pick["replicate"] == ENSEMBLE_REPLICATE) == (variant == "ensemble")]
    if pick.empty:
        return None
    ids = tuple(sorted(set(pick["trial_id"])))
    obs = pick[["trial_id", *KEYS, *present(pick), metric, ORACLE]].rename(
        columns={metric: "value"})
    return Side(label, metric, obs, ids, config_of(sweep, ids))


def reference_side(sweep: Sweep, label: str) -> Side:
    """Plain DIP at the better (higher mean) of its raw and smoothed GT-free picks."""
    sides = []
    for m in REFERENCE_METRICS:
        try:
            sides.append(arm_side(sweep, m, "alone", label))
        except DipddpmError:
            continue  # a pick this sweep does not report (no smoothed pick before issue 25)
    if not sides:
        raise DipddpmError(f"sweep {sweep.name}: reports neither of {REFERENCE_METRICS}")
    return max(sides, key=lambda s: s.obs["value"].mean())


def baseline_side(sweep: Sweep, name: str) -> Side:
    b = sweep.baselines()
    if b.empty or name not in set(b["baseline"]):
        raise DipddpmError(f"sweep {sweep.name} ran no baseline {name}; give the family's "
                           f"base spec baselines: [{name}]")
    b = b[b["baseline"] == name]
    obs = b[[*KEYS, *present(b), BASELINE_METRIC]].rename(
        columns={BASELINE_METRIC: "value"}).assign(trial_id="baseline")
    return Side(name, BASELINE_METRIC, obs)


def verdict(a: Side, b: Side) -> dict:
    """B against A: the library's paired verdict (by image and replicate; by observation
    where a side is an ensemble's rows), as a dict."""
    metric = a.metric if a.metric == b.metric else f"{b.metric} - {a.metric}"
    return paired(a.obs, b.obs, metric, a.label, b.label).as_dict()


def row(side: Side, arm: str, method: str, variant: str, against: Mapping[str, Side],
        reference: str) -> dict:
    """One line of the verdict: the side's numbers and its verdicts against each of `against`
    (the reference's own alone line is not compared with itself; where it reports another
    output than its better GT-free pick, it is compared with that pick)."""
    o = side.obs
    vs = {name: (None if (arm == reference and variant == "alone" and name == reference
                          and side.metric == a.metric)
                 else verdict(a, side)) for name, a in against.items()}
    return {"label": side.label, "arm": arm, "method": method, "variant": variant,
            "metric": side.metric, "config": side.config, "n_obs": int(len(o)),
            "gt_free": float(o["value"].mean()), "oracle": float(o[ORACLE].mean()),
            "es_gap_db": float(o[ORACLE].mean() - o["value"].mean()), "vs": vs}


def run_info(sweep: Sweep) -> dict:
    """Where and how an arm's sweep ran: from its trials table."""
    t = sweep.trials
    return {"sweep": sweep.name, "git_sha": sorted(set(t["git_sha"].dropna())),
            "hostname": sorted(set(t["hostname"].dropna())), "trials": int(len(t)),
            "completed": int((t["status"] == "COMPLETED").sum()),
            "wall_s_sum": float(t["wall_s"].sum())}


def family_verdict(arms: Mapping[str, tuple[str, str, Sweep]], reference: str,
                   baselines: tuple[str, ...]) -> dict:
    """The verdict over `arms` (arm -> (method, metric, its loaded sweep)): a line per arm
    and variant, best first by the GT-free mean, each against the reference and the
    baselines; the baselines' own lines."""
    ref_sweep = arms[reference][2]
    against = {reference: reference_side(ref_sweep, f"{reference} (best GT-free pick)")}
    against.update({b: baseline_side(ref_sweep, b) for b in baselines})
    lines = []
    for arm, (method, metric, sweep) in arms.items():
        for variant in VARIANTS:
            label = arm if variant == "alone" else f"{arm} (ensemble)"
            side = arm_side(sweep, metric, variant, label)
            if side is not None:
                lines.append(row(side, arm, method, variant, against, reference))
    lines.sort(key=lambda r: -r["gt_free"])
    base_lines = [{"label": b, "metric": BASELINE_METRIC, "n_obs": int(len(against[b].obs)),
                   "mean": float(against[b].obs["value"].mean())} for b in baselines]
    ref = against[reference]
    return {"reference": {"arm": reference, "metric": ref.metric, "config": ref.config,
                          "mean": float(ref.obs["value"].mean())},
            "methods": lines, "baselines": base_lines,
            "runs": {arm: run_info(sweep) for arm, (_, _, sweep) in arms.items()}}
