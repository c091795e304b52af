"""A study trial's numbers for its set of pairs, from the pairs' own.

At every report the set reports, beside each pair's metrics:
    every metric: the mean over the pairs at this iteration (psnr_gt: the set's mean curve)
    psnr_best:    the best-so-far of that mean curve (one stopping iteration for the whole set,
                  so it stays honest), psnr_best_iter its iteration
    psnr_best_pairmean: the mean of the pairs' own best-so-far (each its own oracle stop)
The summary likewise: means over the pairs, except psnr_gt_best / psnr_best_iter (the mean
curve's best, at report granularity) and psnr_gt_best_pairmean, es_gap_db (psnr_gt_best -
psnr_es of the row; es_gap_db_pairmean: the mean of the pairs' own gaps); first_reach_iter is the
iteration by which every pair reached the threshold (null unless all did).
A set of one pair is that pair, unchanged (psnr_best_pairmean = psnr_best).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SAME_IN_EVERY_PAIR = ("iter", "stage", "stage_t", "iter_final")  # the shared schedule's position


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v is not None


def mean_of(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per key present in every row: the mean of the numbers (None if any is missing)."""
    out: dict[str, Any] = {}
    for k in rows[0]:
        vals = [r.get(k) for r in rows]
        if all(_number(v) for v in vals):
            out[k] = math.fsum(vals) / len(vals)
        elif all(v is None for v in vals):
            out[k] = None
    return out


class SetCurve:
    """The set's report from its pairs' reports; keeps the mean curve's best (checkpointed)."""

    def __init__(self) -> None:
        self.best, self.best_iter = -math.inf, 0

    def state_dict(self) -> dict:
        return {"best": self.best, "best_iter": self.best_iter}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.best, self.best_iter = float(s["best"]), int(s["best_iter"])

    def __call__(self, it: int, pairs: list[Mapping[str, Any]]) -> dict[str, Any]:
        if len(pairs) == 1:
            m = dict(pairs[0])
            if "psnr_best" in m:
                m["psnr_best_pairmean"] = m["psnr_best"]
            return m
        m = mean_of(pairs)
        for k in SAME_IN_EVERY_PAIR:
            if k in pairs[0]:
                m[k] = pairs[0][k]
        if m.get("psnr_gt") is not None:
            if m["psnr_gt"] > self.best:
                self.best, self.best_iter = m["psnr_gt"], it
            if "psnr_best" in m:
                m["psnr_best_pairmean"] = m["psnr_best"]
            m["psnr_best"], m["psnr_best_iter"] = self.best, self.best_iter
        return m

    def summary(self, pairs: list[Mapping[str, Any]]) -> dict[str, Any]:
        """The set's summary metrics from the pairs' summaries."""
        if len(pairs) == 1:
            m = dict(pairs[0])
            if "psnr_gt_best" in m:
                m["psnr_gt_best_pairmean"] = m["psnr_gt_best"]
            return {**m, "n_pairs": 1}
        m = mean_of(pairs)
        for k, v in m.items():  # iteration counts stay whole numbers
            if v is not None and (k.endswith("_iter") or k in ("iters", "n_backtracks")):
                m[k] = int(round(v))
        if "first_reach_iter" in pairs[0]:
            reach = [p.get("first_reach_iter") for p in pairs]
            m["first_reach_iter"] = None if None in reach else max(reach)
        if "psnr_gt_best" in m and self.best > -math.inf:
            m["psnr_gt_best_pairmean"] = m["psnr_gt_best"]
            m["psnr_gt_best"], m["psnr_best_iter"] = self.best, self.best_iter
            if m.get("es_gap_db") is not None and m.get("psnr_es") is not None:
                m["es_gap_db_pairmean"] = m["es_gap_db"]  # each pair against its own oracle
                m["es_gap_db"] = m["psnr_gt_best"] - m["psnr_es"]  # the set's, as the row
        m["n_pairs"] = len(pairs)
        return m
