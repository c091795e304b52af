"""Paired verdicts: is B better than A on the same observations, and by how much?

A side is the trials matching `KEY=VALUE` filters; within a sweep it is narrowed to its best
configuration (the highest mean of the metric over its observations, trials that differ only in
their seed being one configuration). Its observations are its pairs: a study's `pairs/` table
(one row per trial x image x replicate) when the sweep has one, else each trial's own (problem
image, seed). A and B are paired by (image, replicate) and the verdict is on the paired
differences d = B - A:

    mean d with a 95% bootstrap CI (scipy.stats.bootstrap, BCa, 9999 resamples),
    wins / ties / losses of B (a tie: |d| <= TIE_DB),
    the Wilcoxon signed-rank p (scipy.stats.wilcoxon, two-sided),
    the mean d per image.

With fewer than 2 pairs there is no interval to give, and the verdict says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from dipddpm.analysis.load import Sweep
from dipddpm.config import NULLS
from dipddpm.errors import DipddpmError

TIE_DB = 1e-6  # |B - A| at or below this is a tie (identical outputs up to float noise)
KEYS = ["image", "replicate"]
SHAPE = ["height", "width"]  # the observation's size (a study's pairs and baselines carry it)


@dataclass
class Effect:
    metric: str
    a: str  # the sides as selected, for the report
    b: str
    n: int
    mean: float | None = None
    ci: tuple[float, float] | None = None
    wins: int = 0
    ties: int = 0
    losses: int = 0
    p_wilcoxon: float | None = None
    per_image: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict:
        return {"metric": self.metric, "a": self.a, "b": self.b, "n_pairs": self.n,
                "mean_delta": self.mean, "ci95": list(self.ci) if self.ci else None,
                "wins": self.wins, "ties": self.ties, "losses": self.losses,
                "p_wilcoxon": self.p_wilcoxon, "per_image_delta": self.per_image,
                "note": self.note}


def parse_filters(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DipddpmError(f"{flag} takes KEY=VALUE, got {item!r}; e.g. {flag} stages=1")
        out[key.strip()] = value.strip()
    return out


def _matches(column: pd.Series, value: str) -> pd.Series:
    """String comparison, so `stages=4` matches 4 and 4.0; null, none, ~ or — match nulls."""
    if value.lower() in (*NULLS, "—", ""):
        return column.isna()
    as_text = column.astype("string")
    num = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.notna(num):
        numeric = pd.to_numeric(column, errors="coerce")
        return (as_text == value) | (numeric == num)
    return as_text == value


def select(sweep: Sweep, filters: Mapping[str, str], flag: str) -> pd.DataFrame:
    """The COMPLETED trials matching every filter; none is one error naming the filter."""
    t = sweep.trials[sweep.trials["status"] == "COMPLETED"]
    for key, value in filters.items():
        t = t[_matches(t[sweep.column(key, what=f"{flag} key")], value).fillna(False)]
    if t.empty:
        shown = " ".join(f"{k}={v}" for k, v in filters.items()) or "(no filter)"
        raise DipddpmError(f"{flag} {shown}: no COMPLETED trial of sweep {sweep.name!r} "
                           f"matches; check the values with `dipddpm results summarize "
                           f"{sweep.path} --by KEY`")
    return t


def pairs(sweep: Sweep, trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(trial_id, image, replicate, value) of the trials' observations."""
    if sweep.pair_files:
        p = sweep.pairs()
        p = p[p["trial_id"].isin(trials["trial_id"])]
        if metric not in p:
            raise DipddpmError(f"--metric {metric}: not a column of the pairs table; use "
                               f"one of {', '.join(c for c in p.columns if c not in KEYS)}")
        shape = [c for c in SHAPE if c in p]
        return p[["trial_id", *KEYS, *shape, metric]].rename(columns={metric: "value"})
    if metric not in trials:
        raise DipddpmError(f"--metric {metric}: not a trials column of sweep {sweep.name!r}; "
                           f"e.g. psnr_gt_best, psnr_gt_final, ssim_gt_final")
    image = trials["problem.image"] if "problem.image" in trials else sweep.name
    return pd.DataFrame({"trial_id": trials["trial_id"], "image": image,
                         "replicate": trials["seed"], "value": trials[metric]})


def best_configuration(sweep: Sweep, trials: pd.DataFrame, metric: str,
                       mode: str) -> pd.DataFrame:
    """The observations of the side's best configuration (mean over them, `mode` max|min)."""
    obs = pairs(sweep, trials, metric)
    config = sweep.configurations().reindex(trials.index)
    obs["config"] = obs["trial_id"].map(dict(zip(trials["trial_id"], config, strict=True)))
    means = obs.groupby("config")["value"].mean()
    best = means.idxmax() if mode == "max" else means.idxmin()
    return obs[obs["config"] == best]


def paired(a: pd.DataFrame, b: pd.DataFrame, metric: str, label_a: str, label_b: str,
           seed: int = 0) -> Effect:
    """The verdict on d = B - A over the (image, replicate) both sides have."""
    check_same_observations(a, b)
    joined = a.groupby(KEYS)["value"].mean().rename("a").to_frame().join(
        b.groupby(KEYS)["value"].mean().rename("b"), how="inner").dropna()
    d = joined["b"] - joined["a"]
    eff = Effect(metric=metric, a=label_a, b=label_b, n=len(d))
    eff.wins, eff.losses = int((d > TIE_DB).sum()), int((d < -TIE_DB).sum())
    eff.ties = eff.n - eff.wins - eff.losses
    eff.per_image = {str(k): float(v) for k, v in d.groupby(level="image").mean().items()}
    if eff.n == 0:
        eff.note = "A and B share no (image, replicate): nothing to pair"
        return eff
    eff.mean = float(d.mean())
    if eff.n < 2:
        eff.note = "1 pair: no confidence interval (a study needs >= 2 observations)"
        return eff
    eff.ci = _bootstrap_ci(d.to_numpy(), seed)
    eff.p_wilcoxon = _wilcoxon(d.to_numpy())
    return eff


def check_same_observations(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Where both sides record the observation's size, a pair must have one size: an image
    cropped differently has a different noise draw, so it is not the same observation."""
    if not all(c in a and c in b for c in SHAPE):
        return
    sa = a.groupby(KEYS)[SHAPE].first()
    sb = b.groupby(KEYS)[SHAPE].first()
    both = sa.join(sb, how="inner", lsuffix="_a", rsuffix="_b")
    bad = both[(both["height_a"] != both["height_b"]) | (both["width_a"] != both["width_b"])]
    if len(bad):
        (img, rep), r = next(iter(bad.iterrows()))
        raise DipddpmError(
            f"A and B saw differently cropped observations at {len(bad)} pair(s) (e.g. {img} "
            f"replicate {rep}: {r.height_a}x{r.width_a} vs {r.height_b}x{r.width_b}): not the "
            f"same observations; give the study a size: (or nets of one size rule)")


def _bootstrap_ci(d, seed: int) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap

    if np.ptp(d) == 0:  # every difference the same: the interval is that value
        return float(d[0]), float(d[0])
    res = bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=9999, method="BCa",
                    random_state=seed)
    low, high = res.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa degenerate on tiny samples
        res = bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=9999,
                        method="percentile", random_state=seed)
        low, high = res.confidence_interval
    return float(low), float(high)


def _wilcoxon(d) -> float | None:
    import numpy as np
    from scipy.stats import wilcoxon

    if np.all(np.abs(d) <= TIE_DB):
        return 1.0  # no difference at all
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def side(sweep: Sweep, filters: Mapping[str, str], flag: str, metric: str,
         mode: str) -> pd.DataFrame:
    """A side's observations: `baseline=NAME` is the study's baseline on its observations
    (sweep/baselines.py); any other filters select trials, narrowed to the best configuration."""
    if set(filters) == {"baseline"}:
        return baseline_side(sweep, filters["baseline"], metric, flag)
    return best_configuration(sweep, select(sweep, filters, flag), metric, mode)


def baseline_side(sweep: Sweep, name: str, metric: str, flag: str) -> pd.DataFrame:
    b = sweep.baselines()
    names = sorted(set(b["baseline"])) if len(b) else []
    if name not in names:
        raise DipddpmError(f"{flag} baseline={name}: sweep {sweep.name!r} has "
                           f"{'baselines ' + ', '.join(names) if names else 'no baselines'}; "
                           f"add `baselines: [bm3d]` to a study's spec")
    b = b[b["baseline"] == name]
    if metric not in b:
        raise DipddpmError(f"--metric {metric}: not a column of the baselines table; e.g. "
                           f"psnr_gt_final, psnr_gt_best, ssim_gt_final")
    shape = [c for c in SHAPE if c in b]
    return b[KEYS + shape + [metric]].rename(columns={metric: "value"}).assign(
        trial_id="baseline")


def effect(a_sweep: Sweep, b_sweep: Sweep, a_filters: Mapping[str, str],
           b_filters: Mapping[str, str], metric: str = "psnr_gt_best",
           mode: str = "max") -> Effect:
    """B's best configuration against A's, paired by (image, replicate)."""
    a = side(a_sweep, a_filters, "--a", metric, mode)
    b = side(b_sweep, b_filters, "--b", metric, mode)

    def label(sweep: Sweep, filters: Mapping[str, str]) -> str:
        keys = " ".join(f"{k}={v}" for k, v in filters.items()) or "all trials"
        return keys if a_sweep is b_sweep else f"{sweep.name}: {keys}"

    return paired(a, b, metric, label(a_sweep, a_filters), label(b_sweep, b_filters))
