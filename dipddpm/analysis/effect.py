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

An ensemble (`output: ensemble`, methods/study_ensemble.py) has its own rows in the pairs
table, one per image (`ensemble` true, replicate -1); a side's observations leave them out
unless it asks for them with the filter `ensemble=true` (a filter on the pair rows, not on
the trials). A side of ensemble rows is paired by observation (image, noise seed): each
image's ensemble against the other side's rows of that same observation, averaged (its
replicates, when they share it). So an ensemble of k compares with a single run:

    dipddpm results effect DIR --a output=ensemble --b output=ensemble --b ensemble=true
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
OBSERVATION = ["image", "noise_seed"]  # how ensemble rows pair: the observation itself
PAIR_FILTERS = ("ensemble",)  # filters on a study's pair rows, not on its trials
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


def _flag_value(value: str, key: str, flag: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise DipddpmError(f"{flag} {key}={value}: {key} is true or false")


def pairs(sweep: Sweep, trials: pd.DataFrame, metric: str,
          ensemble: bool = False) -> pd.DataFrame:
    """(trial_id, image, replicate, value) of the trials' observations (with noise_seed and
    ensemble where the pairs table has them); `ensemble`: the ensemble rows instead of the
    replicates' own."""
    if sweep.pair_files:
        p = sweep.pairs()
        p = p[p["trial_id"].isin(trials["trial_id"])]
        if "ensemble" in p:
            p = p[p["ensemble"].fillna(False).astype(bool) == ensemble]
        if ensemble and p.empty:
            raise DipddpmError(f"ensemble=true: sweep {sweep.name!r} has no ensemble rows for "
                               f"these trials (a trial with output: ensemble writes them)")
        if metric not in p:
            raise DipddpmError(f"--metric {metric}: not a column of the pairs table; use "
                               f"one of {', '.join(c for c in p.columns if c not in KEYS)}")
        extra = [c for c in ("noise_seed", "ensemble", *SHAPE) if c in p]
        return p[["trial_id", *KEYS, *extra, metric]].rename(columns={metric: "value"})
    if ensemble:
        raise DipddpmError(f"ensemble=true: sweep {sweep.name!r} is not a study (no pairs "
                           f"table), so it has no ensemble rows")
    if metric not in trials:
        raise DipddpmError(f"--metric {metric}: not a trials column of sweep {sweep.name!r}; "
                           f"e.g. psnr_gt_best, psnr_gt_final, ssim_gt_final")
    image = trials["problem.image"] if "problem.image" in trials else sweep.name
    return pd.DataFrame({"trial_id": trials["trial_id"], "image": image,
                         "replicate": trials["seed"], "value": trials[metric]})


def best_configuration(sweep: Sweep, trials: pd.DataFrame, metric: str,
                       mode: str, ensemble: bool = False) -> pd.DataFrame:
    """The observations of the side's best configuration (mean over them, `mode` max|min)."""
    obs = pairs(sweep, trials, metric, ensemble)
    config = sweep.configurations().reindex(trials.index)
    obs["config"] = obs["trial_id"].map(dict(zip(trials["trial_id"], config, strict=True)))
    means = obs.groupby("config")["value"].mean()
    best = means.idxmax() if mode == "max" else means.idxmin()
    return obs[obs["config"] == best]


def pair_keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """(image, replicate); by observation (image, noise seed) where a side holds ensemble
    rows and both sides know their noise seeds."""
    ens = any("ensemble" in x and x["ensemble"].fillna(False).astype(bool).any()
              for x in (a, b))
    return OBSERVATION if ens and all("noise_seed" in x for x in (a, b)) else KEYS


def paired(a: pd.DataFrame, b: pd.DataFrame, metric: str, label_a: str, label_b: str,
           seed: int = 0) -> Effect:
    """The verdict on d = B - A over the (image, replicate) both sides have (over the
    observations, where a side is an ensemble's rows)."""
    keys = pair_keys(a, b)
    check_same_observations(a, b, keys)
    joined = a.groupby(keys)["value"].mean().rename("a").to_frame().join(
        b.groupby(keys)["value"].mean().rename("b"), how="inner").dropna()
    d = joined["b"] - joined["a"]
    eff = Effect(metric=metric, a=label_a, b=label_b, n=len(d))
    eff.wins, eff.losses = int((d > TIE_DB).sum()), int((d < -TIE_DB).sum())
    eff.ties = eff.n - eff.wins - eff.losses
    eff.per_image = {str(k): float(v) for k, v in d.groupby(level="image").mean().items()}
    by_obs = " (paired by observation: image and noise seed)" if keys == OBSERVATION else ""
    if eff.n == 0:
        eff.note = f"A and B share no ({', '.join(keys)}): nothing to pair"
        return eff
    eff.mean = float(d.mean())
    eff.note = by_obs.strip(" ()")
    if eff.n < 2:
        eff.note = "1 pair: no confidence interval (a study needs >= 2 observations)" + by_obs
        return eff
    eff.ci = _bootstrap_ci(d.to_numpy(), seed)
    eff.p_wilcoxon = _wilcoxon(d.to_numpy())
    return eff


def check_same_observations(a: pd.DataFrame, b: pd.DataFrame, keys: list[str] = KEYS) -> None:
    """Where both sides record the observation's size, a pair must have one size: an image
    cropped differently has a different noise draw, so it is not the same observation."""
    if not all(c in a and c in b for c in SHAPE):
        return
    sa = a.groupby(keys)[SHAPE].first()
    sb = b.groupby(keys)[SHAPE].first()
    both = sa.join(sb, how="inner", lsuffix="_a", rsuffix="_b")
    bad = both[(both["height_a"] != both["height_b"]) | (both["width_a"] != both["width_b"])]
    if len(bad):
        (img, rep), r = next(iter(bad.iterrows()))
        raise DipddpmError(
            f"A and B saw differently cropped observations at {len(bad)} pair(s) (e.g. {img} "
            f"{keys[1].replace('_', ' ')} {rep}: {r.height_a}x{r.width_a} vs {r.height_b}x"
            f"{r.width_b}): not the "
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
    trial_filters = {k: v for k, v in filters.items() if k not in PAIR_FILTERS}
    ensemble = _flag_value(filters["ensemble"], "ensemble", flag) if "ensemble" in filters \
        else False
    return best_configuration(sweep, select(sweep, trial_filters, flag), metric, mode, ensemble)


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
    extra = [c for c in ("noise_seed", *SHAPE) if c in b]
    return b[KEYS + extra + [metric]].rename(columns={metric: "value"}).assign(
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
