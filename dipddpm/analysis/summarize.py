"""The summary of one sweep: the best trials, and statistics per group of trials.

Per trial: the ranking metric (default `psnr_gt_best`, the best PSNR against the clean image;
`objective` for methods without it), the iteration of the best (`psnr_best_iter` and kin), the
first iteration reaching a PSNR threshold (`first_reach_iter`, or computed from the psnr_gt
curve for `--threshold`), iterations done and wall time.

Per group (`--by config.scheduler ...`): trial counts by status (COMPLETED / PRUNED / FAILED),
distinct configurations (every config value but the seed) and seeds, and over the COMPLETED
trials:

- best, best_trial, best_iter: the best value, its trial and the iteration of its best;
- seed_mean, seed_std, seed_n: mean, standard deviation (ddof 1) and number of the COMPLETED
  trials that share the best trial's configuration: the spread over seeds of one configuration;
- all_mean, all_std: the same over every COMPLETED trial of the group (the spread over seeds
  and over whatever else varies in the group);
- reach_iter, reached: the median iteration at which the threshold was reached, and by how many.

A trial for which a grouping key is null (a conditional search key that did not apply to it,
e.g. the stage scheduler of a plain-DIP trial) is in a group of its own, shown as "—".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dipddpm.analysis.groups import groups
from dipddpm.analysis.load import Sweep
from dipddpm.dataset.columns import is_metric
from dipddpm.errors import DipddpmError, closest

DEFAULT_METRICS = ("psnr_gt_best", "objective")
# name fragments of metrics where lower is better; anything else is maximised
LOWER_IS_BETTER = ("loss", "mse", "fid", "kid", "lpips", "wall", "seconds", "_iter", "iters")
# the iteration at which a trials column reached its best value
BEST_ITER = {"psnr_gt_best": "psnr_best_iter", "psnr_gt_sm_best": "psnr_gt_sm_best_iter",
             "psnr_best": "psnr_best_iter"}


def numeric_columns(sweep: Sweep) -> list[str]:
    """Trials columns one can rank by: numeric, and a metric by their declared role
    (dipddpm/dataset/columns.py), not config / problem / bookkeeping."""
    t = sweep.trials
    return [c for c in t.columns
            if pd.api.types.is_numeric_dtype(t[c]) and not pd.api.types.is_bool_dtype(t[c])
            and is_metric(c)]


def resolve_metric(sweep: Sweep, metric: str | None) -> str:
    """The trials column to rank by; the default is psnr_gt_best, else objective."""
    valid = numeric_columns(sweep)
    if metric is None:
        for m in DEFAULT_METRICS:
            if m in valid and sweep.trials[m].notna().any():
                return m
        raise DipddpmError(f"sweep {sweep.name!r} has no psnr_gt_best or objective values; "
                           f"pass --metric, one of: {', '.join(valid) or '(none)'}")
    if metric not in valid:
        raise DipddpmError(
            f"unknown metric {metric!r} for sweep {sweep.name!r}{closest(metric, valid)}; "
            f"expected a numeric trials column: {', '.join(valid)}")
    return metric


def metric_mode(sweep: Sweep, metric: str) -> str:
    """'max' or 'min': the spec's mode for its own metric / objective, else by the name."""
    spec = sweep.spec or {}
    if isinstance(spec, dict) and spec.get("mode") in ("max", "min") and (
            metric == "objective" or metric == spec.get("metric")):
        return spec["mode"]
    return "min" if any(s in metric for s in LOWER_IS_BETTER) else "max"


def best_iter_column(sweep: Sweep, metric: str) -> str | None:
    """The trials column holding the iteration of `metric`'s best value, if any."""
    cols = sweep.trials.columns
    spec_metric = (sweep.spec or {}).get("metric") if isinstance(sweep.spec, dict) else None
    name = spec_metric if metric == "objective" and spec_metric else metric
    for cand in (BEST_ITER.get(name), f"{name}_iter"):
        if cand and cand in cols:
            return cand
    return None


def reach_iters(sweep: Sweep, threshold: float, curve: str = "psnr_gt") -> pd.Series:
    """First reported iteration at which `curve` >= threshold, per trial_id (NA: never)."""
    sweep.require_metric(curve)
    m = sweep.metrics([curve])
    hit = m[m["value"] >= threshold]
    first = hit.groupby("trial_id")["iter"].min()
    return first.reindex(sweep.trials["trial_id"]).astype("Int64")


def trial_table(sweep: Sweep, metric: str, threshold: float | None = None) -> pd.DataFrame:
    """One row per trial: ids, status, searched params, the metric, best and reach iterations."""
    t = sweep.trials
    keys = ["trial_id", "status", "method", "seed", *sweep.varying_config()]
    out = t[[k for k in keys if k in t.columns]].copy()
    out[metric] = t[metric]
    it = best_iter_column(sweep, metric)
    out["best_iter"] = t[it].astype("Int64") if it else pd.array([pd.NA] * len(t), "Int64")
    if threshold is not None:
        out["reach_iter"] = reach_iters(sweep, threshold).set_axis(t.index)
    elif "first_reach_iter" in t.columns:
        out["reach_iter"] = t["first_reach_iter"].astype("Int64")
    else:
        out["reach_iter"] = pd.array([pd.NA] * len(t), "Int64")
    out["iters_done"] = t["iters_done"]
    if "wall_s" in t.columns:
        out["wall_s"] = t["wall_s"]
    return out


def top_trials(table: pd.DataFrame, metric: str, mode: str, n: int) -> pd.DataFrame:
    """The n best trials that have a value of the metric, best first (any status)."""
    ranked = table[table[metric].notna()]
    ranked = ranked.sort_values([metric, "trial_id"], ascending=[mode == "min", True],
                                kind="stable")
    return ranked.head(n).reset_index(drop=True)


def _mean_std(values: pd.Series) -> tuple[float, float | None]:
    return float(values.mean()), float(values.std()) if len(values) > 1 else None


def _group_stats(g: pd.DataFrame, metric: str, mode: str, configs: pd.Series) -> dict:
    done = g[(g["status"] == "COMPLETED") & g[metric].notna()]
    stats = {"trials": len(g), "completed": int((g["status"] == "COMPLETED").sum()),
             "pruned": int((g["status"] == "PRUNED").sum()),
             "failed": int((g["status"] == "FAILED").sum()),
             "configs": int(configs[g.index].nunique()),
             "seeds": int(g["seed"].nunique()) if "seed" in g else None,
             "best": None, "best_trial": None, "best_iter": None,
             "seed_mean": None, "seed_std": None, "seed_n": 0,
             "all_mean": None, "all_std": None, "reach_iter": None, "reached": 0}
    if len(done):
        best = done.loc[done[metric].idxmax() if mode == "max" else done[metric].idxmin()]
        same = done[configs[done.index] == configs[best.name]]  # its configuration's seeds
        seed_mean, seed_std = _mean_std(same[metric])
        all_mean, all_std = _mean_std(done[metric])
        reached = done["reach_iter"].dropna()
        stats.update(best=float(best[metric]), best_trial=best["trial_id"],
                     best_iter=None if pd.isna(best["best_iter"]) else int(best["best_iter"]),
                     seed_mean=seed_mean, seed_std=seed_std, seed_n=len(same),
                     all_mean=all_mean, all_std=all_std,
                     reach_iter=float(reached.median()) if len(reached) else None,
                     reached=len(reached))
    return stats


def group_table(table: pd.DataFrame, by: list[str], metric: str, mode: str,
                configs: pd.Series) -> pd.DataFrame:
    """Statistics per group of `by` values ([] = one row for the whole sweep), best first.
    `configs` numbers the configurations of the trials (indexed like `table`)."""
    out = pd.DataFrame([{**(key or {"group": "all"}), **_group_stats(g, metric, mode, configs)}
                        for key, g in groups(table, by)])
    if not by:
        return out.astype({"best_iter": "Int64"})
    for c in by:  # a key column with nulls keeps its type (ints stay ints)
        out[c] = out[c].astype(table[c].dtype)
    out["best_iter"] = out["best_iter"].astype("Int64")
    return out.sort_values("best", ascending=mode == "min", na_position="last",
                           kind="stable", ignore_index=True)


@dataclass
class Summary:
    sweep: Sweep
    metric: str
    mode: str
    by: list[str]
    threshold: float | None
    counts: dict[str, int]
    top: pd.DataFrame
    groups: pd.DataFrame


def summarize(sweep: Sweep, by: list[str] | None = None, metric: str | None = None,
              top: int = 10, threshold: float | None = None) -> Summary:
    """The best `top` trials and the per-group table of `sweep`."""
    if top < 1:
        raise DipddpmError(f"--top must be >= 1, got {top}")
    metric = resolve_metric(sweep, metric)
    mode = metric_mode(sweep, metric)
    cols = [sweep.column(k) for k in by or []]
    table = trial_table(sweep, metric, threshold)
    for c in cols:
        if c not in table.columns:
            table[c] = sweep.trials[c]
    return Summary(sweep=sweep, metric=metric, mode=mode, by=cols, threshold=threshold,
                   counts=sweep.counts(), top=top_trials(table, metric, mode, top),
                   groups=group_table(table, cols, metric, mode, sweep.configurations()))
