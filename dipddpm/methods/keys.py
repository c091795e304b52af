"""The report and summary keys shared by the image methods and their baselines, declared once.

`FIT_METRICS`: the keys of every report of an image fit (DIP, guided DIP, BM3D's one report).
`FIT_SUMMARY`: the keys of its summary (`Result.metrics`): a baseline returns the same keys as
the fits it stands beside, so both sit in the same `pairs/` and `baselines/` tables. A method
entry names its keys (`Method.metrics`, `Method.summary`); `summary()` builds a summary that
has exactly the declared keys, so a method cannot drift from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FIT_METRICS = ("iter", "loss", "psnr_noisy", "psnr_gt", "psnr_gt_sm", "ssim_gt", "psnr_best",
               "psnr_best_iter", "psnr_es", "iter_es", "stage", "stage_t", "iter_final")
FIT_SUMMARY = ("iters", "wall_s", "psnr_noisy_input", "psnr_gt_final", "psnr_gt_best",
               "psnr_best_iter", "psnr_gt_sm_final", "psnr_gt_sm_best", "psnr_gt_sm_best_iter",
               "psnr_noisy_final", "ssim_gt_final", "ssim_gt_sm_final", "first_reach_iter",
               "n_backtracks", "iter_es", "psnr_es", "es_gap_db")


def summary(keys: Iterable[str], **values: Any) -> dict[str, Any]:
    """`values` as a summary with exactly `keys` (in their order), plus the method's own extra
    keys after them; a declared key left out is an error naming it."""
    keys = tuple(keys)
    missing = [k for k in keys if k not in values]
    if missing:
        raise KeyError(f"summary lacks the declared key(s) {', '.join(missing)}")
    return {**{k: values[k] for k in keys}, **{k: v for k, v in values.items() if k not in keys}}
