"""The one ranking of trials rows that `sweep run`'s table, `--json` and `sweep status` share."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from dipddpm.sweep.rows import best_trial, ranked, ranked_good, status_counts


def row(tid, status, objective, lr=0.01):
    return {"trial_id": tid, "status": status, "objective": objective, "config.lr": lr}


ROWS = [row("a", "COMPLETED", 20.0), row("b", "FAILED", 30.0), row("c", "PRUNED", 25.0),
        row("d", "COMPLETED", math.nan), row("e", "FAILED", None), row("f", "COMPLETED", 25.0)]


@pytest.mark.parametrize("mode, order", [("max", "bcfade"), ("min", "acfbde")])
def test_ranked_puts_missing_objectives_last_and_keeps_ties_in_order(mode, order):
    assert "".join(r["trial_id"] for r in ranked(ROWS, mode)) == order


def test_failed_and_nan_trials_never_win():
    assert [r["trial_id"] for r in ranked_good(ROWS, "max")] == ["c", "f", "a"]
    spec = SimpleNamespace(mode="min", search=[SimpleNamespace(key="lr")])
    assert best_trial(ROWS, spec) == {"trial_id": "a", "value": 20.0, "status": "COMPLETED",
                                      "params": {"lr": 0.01}}
    assert best_trial([row("x", "FAILED", 1.0), row("y", "PRUNED", math.nan)], spec) is None


def test_status_counts():
    assert status_counts(ROWS) == {"completed": 3, "pruned": 1, "failed": 2}
