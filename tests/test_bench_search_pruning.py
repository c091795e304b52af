"""benchmarks/search.py prunes as `sweep run` does: the same scheduler object (the spec's
`scheduler:` entry), on the same time axis (the spec's rung rule), fed the same reports
(benchmarks/sweep_scheduler.py). One small staged spec, under guided DIP's default rule
(`final`: rungs counted in final-stage iterations), runs both ways; the trials each stops, and
at which iteration, must be the same. The sweep's recorded curves are also replayed through the
benchmark's scheduler (deterministic: no second fit), and under the `total` rule those curves
are pruned differently, so the comparison can fail."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sweep_scheduler = importlib.import_module("sweep_scheduler")

ITERS = 24  # 3 uniform stages of 6, 12, 6: the final stage is iterations 19-24
SPEC = {"name": "prune_parity", "method": "guided_dip", "preset": "tiny", "metric": "psnr_best",
        "mode": "max", "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25},
        "fixed": {"width": 8, "depth": 2, "input_depth": 4, "report_every": 1,
                  "iters": ITERS, "stages": 3},
        "search": {"lr": {"loguniform": [0.0003, 0.1]}},
        "searcher": {"type": "optuna", "sampler": "random", "seed": 3, "max_concurrent": 1},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
        "resources": {"cpu": 1}, "num_samples": 8, "checkpoint_every": 1000}


def _write_spec(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "prune_parity.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "storage": str(tmp_path / "results")}))
    return path


def _sweep_decisions(path: Path) -> tuple[list[tuple], dict[str, list]]:
    """`sweep run`: per trial in start order, (lr, the iteration it was stopped at or None),
    and each trial's recorded reports (iteration, {psnr_best, iter_final})."""
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    out = run_sweep(path, console=SweepConsole("psnr_best", "max", quiet=True))
    t = pd.read_parquet(f"{out.path}/trials").sort_values("started_at")
    m = pd.read_parquet(f"{out.path}/metrics")
    m = m[m["metric"].isin(["psnr_best", "iter_final"]) & m["image"].isna()]
    curves = {}
    for tid, rows in m.groupby("trial_id"):
        wide = rows.pivot_table(index="iter", columns="metric", values="value").sort_index()
        curves[tid] = [(int(it), {k: float(v) for k, v in r.items()})
                       for it, r in wide.iterrows()]
    decisions = [(round(float(r["config.lr"]), 12),
                  int(r["iters_done"]) if r["status"] == "PRUNED" else None)
                 for _, r in t.iterrows()]
    return decisions, [curves[tid] for tid in t["trial_id"]]


def _replay(curves: list, rule: str | None) -> list[int | None]:
    from dipddpm.sweep.spec import parse_spec

    spec = parse_spec({**SPEC, "scheduler": {**SPEC["scheduler"], "rung_rule": rule}},
                      load_problem=False)
    s = sweep_scheduler.SweepScheduler.of(spec)
    return [s.replay(str(i), c, ITERS) for i, c in enumerate(curves)]


def _search_decisions(path: Path, out: Path) -> list[tuple]:
    import optuna

    search = importlib.import_module("search")
    from dipddpm.sweep.spec import load_spec

    assert search.main([str(path), "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    study = search.open_study(load_spec(path), out / "prune_parity.optuna.log")
    pruned = optuna.trial.TrialState.PRUNED
    return [(round(t.params["lr"], 12), t.user_attrs["pruned_at"] if t.state == pruned else None)
            for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.ray
@pytest.mark.slow
def test_search_benchmark_prunes_the_trials_sweep_run_prunes(ray_local, tmp_path):
    path = _write_spec(tmp_path)
    sweep, curves = _sweep_decisions(path)
    stops = [s for _, s in sweep]
    assert any(s is not None for s in stops) and any(s is None for s in stops), sweep
    # under the final rule nothing is judged before the final stage's grace (iteration 18 + 2)
    assert all(s is None or s >= 20 for s in stops), sweep
    # the benchmark's scheduler on the sweep's own reports: the same stops, report for report
    assert _replay(curves, None) == stops
    # ... and counting rungs in total iterations (the old benchmark's axis) prunes otherwise
    assert _replay(curves, "total") != stops
    # the benchmark run live: the same configurations (same seeded sampler), the same stops
    assert _search_decisions(path, tmp_path / "search") == sweep


def test_tune_result_carries_the_rung_rules_time_as_the_trainable_does():
    from dipddpm.sweep.spec.rung_rules import RUNG_RULES

    m = {"psnr_best": 20.0, "iter_final": 3.0}
    tr = sweep_scheduler.tune_result
    assert tr(RUNG_RULES.get("total"), 10, m) == {**m, "iter": 10}
    assert tr(RUNG_RULES.get("final"), 10, m)["iter_final"] == 3.0
    assert tr(RUNG_RULES.get("gated"), 10, m)["iter_gated"] == 10.0
    assert tr(RUNG_RULES.get("gated"), 10, {**m, "iter_final": 0.0})["iter_gated"] == 0.0
