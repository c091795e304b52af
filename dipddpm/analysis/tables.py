"""Tables for people and for programs: number formatting, display names, JSON records."""

from __future__ import annotations

import json
import math
import numbers

import numpy as np
import pandas as pd


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, numbers.Real) and math.isnan(v))


def _decimals(values) -> int | None:
    """Decimals for a numeric column: 0 when every value is whole, 2 when the values reach 1
    (dB, seconds), else 4 (SSIM); None for a non-numeric column."""
    present = [v for v in values if not _missing(v)]
    if any(not isinstance(v, numbers.Real) or isinstance(v, bool | np.bool_) for v in present):
        return None
    nums = [float(v) for v in present]
    if all(x.is_integer() for x in nums):
        return 0
    return 2 if max((abs(x) for x in nums), default=0) >= 1 else 4


def fmt(v, decimals: int | None = None) -> str:
    """A cell as text; numbers with `decimals` (default: 2 from 1 up, else 4, ints as ints)."""
    if _missing(v):
        return "—"
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, numbers.Integral) and decimals in (None, 0):
        return str(int(v))
    if isinstance(v, numbers.Real):
        if decimals is None:
            decimals = 2 if abs(float(v)) >= 1 or v == 0 else 4
        return f"{float(v):.{decimals}f}"
    return str(v)


# mean / std (/ count) columns shown as one "mean ± std" column, named for what it is over:
# the seeds of the group's best configuration, or all the group's COMPLETED trials
MEAN_STD = {"seed_mean": ("seed_std", "seed_n", "mean ± std over seeds"),
            "all_mean": ("all_std", None, "mean ± std over all")}
GROUP_NOTE = ("over seeds: the COMPLETED trials with the best trial's configuration (all but "
              "the seed the same); over all: every COMPLETED trial of the group")


def _mean_std(mean, std, n, decimals: int | None) -> str:
    text = fmt(mean, decimals) if _missing(std) else f"{fmt(mean, decimals)} ± {fmt(std, decimals)}"
    return text if n is None or _missing(mean) else f"{text} (n={n})"


def display(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as strings for a terminal or HTML table: one precision per column,
    `config.` dropped from column names, each mean and std pair merged into one column."""
    merged = {c: MEAN_STD[c] for c in df.columns if c in MEAN_STD and MEAN_STD[c][0] in df}
    hidden = {part for std, n, _ in merged.values() for part in (std, n) if part in df}
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c in hidden:
            continue
        values = list(df[c].astype(object))
        d = _decimals(values)
        if c in merged:
            std, n, label = merged[c]
            counts = df[n] if n in df else [None] * len(df)
            out[label] = [_mean_std(m, sd, k, d)
                          for m, sd, k in zip(values, df[std], counts, strict=True)]
            continue
        out[c.removeprefix("config.")] = [fmt(v, d) for v in values]
    return out


def records(df: pd.DataFrame) -> list[dict]:
    """JSON-ready rows (NaN/NA -> null, timestamps -> ISO 8601)."""
    return json.loads(df.to_json(orient="records", date_format="iso", double_precision=15))


def to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False)
