"""Side-by-side tables across sweeps (and groups), in the shape of the source reports.

One row per sweep, or per (sweep, group) with `--by`. Each row describes the best COMPLETED
trial of its group (ranked by the metric, default psnr_gt_best), as the sources report one run
per configuration, plus the number of trials behind it. Trials for which a `--by` key is null
(a conditional key that did not apply to them) are a group of their own, shown as "—".

- "iterations to reach max PSNR / SSIM": the best PSNR against the clean image and the
  iteration where it happened (exact, from the trial's psnr_best_iter), the best SSIM and its
  iteration (from the ssim_gt curve, so at the report interval).
- "final vs best PSNR and best iteration": final and best PSNR, the best iteration, the gap
  best - final (what early stopping at the best iteration would have gained), the final SSIM and
  the PSNR of the noisy input for reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dipddpm.analysis.groups import groups
from dipddpm.analysis.load import Sweep
from dipddpm.analysis.summarize import metric_mode, resolve_metric
from dipddpm.errors import DipddpmError

REACH_COLUMNS = ["max_psnr", "max_psnr_iter", "max_ssim", "max_ssim_iter"]
FINAL_COLUMNS = ["final_psnr", "best_psnr", "best_iter", "gap_db", "final_ssim", "noisy_psnr"]


@dataclass
class Comparison:
    metric: str
    by: list[str]
    reach_max: pd.DataFrame  # iterations to reach max PSNR / SSIM
    final_best: pd.DataFrame  # final vs best PSNR and best iteration


def labels(sweeps: list[Sweep]) -> list[str]:
    """Sweep names, or their paths where two sweeps share a name."""
    names = [s.name for s in sweeps]
    return [s.uri if names.count(s.name) > 1 else s.name for s in sweeps]


def _value(row: pd.Series, col: str):
    v = row.get(col)
    return None if v is None or pd.isna(v) else v


def _ssim_max(sweep: Sweep, trial_id: str) -> tuple[float | None, int | None]:
    if "ssim_gt" not in sweep.metric_names:
        return None, None
    c = sweep.metrics(["ssim_gt"], [trial_id])
    if c.empty:
        return None, None
    i = c["value"].idxmax()  # first iteration at the maximum
    return float(c.loc[i, "value"]), int(c.loc[i, "iter"])


def _psnr_max(sweep: Sweep, row: pd.Series) -> tuple[float | None, int | None]:
    best, it = _value(row, "psnr_gt_best"), _value(row, "psnr_best_iter")
    if best is not None:
        return float(best), None if it is None else int(it)
    if "psnr_gt" in sweep.metric_names:  # methods whose rows lack it: from the curve
        c = sweep.metrics(["psnr_gt"], [row["trial_id"]])
        if not c.empty:
            i = c["value"].idxmax()
            return float(c.loc[i, "value"]), int(c.loc[i, "iter"])
    return None, None


def _rows(sweep: Sweep, label: str, by_cols: list[str | None], by: list[str],
          metric: str) -> list[tuple[dict, dict]]:
    t = sweep.trials.copy()
    for key, col in zip(by, by_cols, strict=True):
        t[key] = t[col] if col else None
    mode = metric_mode(sweep, metric)
    out = []
    for key, g in groups(t, by):  # a null value: the key did not apply
        ident = {"sweep": label, **key}
        done = g[(g["status"] == "COMPLETED") & g[metric].notna()]
        ident.update(trials=len(g), completed=len(done), best_trial=None)
        reach = dict.fromkeys(REACH_COLUMNS)
        final = dict.fromkeys(FINAL_COLUMNS)
        if len(done):
            row = done.loc[done[metric].idxmax() if mode == "max" else done[metric].idxmin()]
            ident["best_trial"] = row["trial_id"]
            p, p_it = _psnr_max(sweep, row)
            s, s_it = _ssim_max(sweep, row["trial_id"])
            reach.update(max_psnr=p, max_psnr_iter=p_it, max_ssim=s, max_ssim_iter=s_it)
            fin = _value(row, "psnr_gt_final")
            final.update(final_psnr=fin, best_psnr=p, best_iter=p_it,
                         gap_db=None if p is None or fin is None else p - fin,
                         final_ssim=_value(row, "ssim_gt_final"),
                         noisy_psnr=_value(row, "psnr_noisy_input"))
        out.append(({**ident, **reach}, {**ident, **final}))
    return out


def compare(sweeps: list[Sweep], by: list[str] | None = None,
            metric: str | None = None) -> Comparison:
    """The two source-style tables over `sweeps`, one row per sweep or (sweep, group)."""
    if not sweeps:
        raise DipddpmError("compare needs at least one sweep directory")
    by = list(by or [])
    by_cols: list[list[str | None]] = []
    for key in by:
        found = []
        for s in sweeps:
            try:
                found.append(s.column(key))
            except DipddpmError:
                found.append(None)
        if not any(found):
            sweeps[0].column(key)  # raises the unknown-key error with its hints
        by_cols.append(found)
    names = [k.removeprefix("config.") for k in by]
    metrics = [resolve_metric(s, metric) for s in sweeps]
    reach, final = [], []
    for i, (s, label) in enumerate(zip(sweeps, labels(sweeps), strict=True)):
        for r, f in _rows(s, label, [cols[i] for cols in by_cols], names, metrics[i]):
            reach.append(r)
            final.append(f)
    return Comparison(metric=metrics[0], by=names, reach_max=_typed(pd.DataFrame(reach), names),
                      final_best=_typed(pd.DataFrame(final), names))


def _typed(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Iteration columns as integers, and key columns with nulls keeping ints as ints."""
    for c in ("max_psnr_iter", "max_ssim_iter", "best_iter"):
        if c in df:
            df[c] = df[c].astype("Int64")
    for c in by:
        df[c] = pd.Series(list(df[c]), index=df.index, dtype=object).convert_dtypes()
    return df
