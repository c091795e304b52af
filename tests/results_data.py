"""A small but real sweep result for the `dipddpm results` tests.

`make_sweep(dir)` runs tiny guided-DIP and DIP fits (32x32, 40 iterations, CPU) and writes
what the sweep runner writes (see the results layout in dipddpm/sweep/results.py): one trials
row per trial, the long metrics table, the output PNGs, the problem's clean and noisy images,
spec.resolved.yaml and an Optuna study. Trials: guided DIP over scheduler x beta schedule x
2 seeds (COMPLETED), one guided-DIP trial stopped at iteration 20 (PRUNED), one that raised
(FAILED) and a plain-DIP baseline (one stage at t = 0, 30 iterations).

All writing goes through `write_trial`, the one place that knows how files are written.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import yaml

PROBLEM = {"image": "skimage:astronaut", "size": 32, "sigma": 25.0, "seed": 0}
BASE = {"iters": 40, "width": 16, "depth": 3, "input_depth": 8, "report_every": 5,
        "psnr_threshold": 14.0}
GUIDED = {"stages": 4}
PRUNE_AT = 20


class Pruned(Exception):
    """Raised from the report callback to stop a trial early, as ASHA does."""


def write_trial(sweep_dir: Path, row: dict, metric_rows: list[dict], images: dict) -> None:
    """Write one trial in the results layout: artifacts, metrics, then the trials row.

    Written with pyarrow directly, to the layout's contract (metadata, atomic replace), until
    the sweep runner's writer (dipddpm/sweep/results.py) is available.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dipddpm.data.images import save_image
    from dipddpm.metrics import METRIC_DEFINITIONS

    sweep, trial_id = row["sweep"], row["trial_id"]
    meta = {"dipddpm.schema_version": "1", "dipddpm.sweep": sweep,
            "dipddpm.metric_definitions": json.dumps(METRIC_DEFINITIONS)}

    def write(table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table.replace_schema_metadata(meta), tmp)
        os.replace(tmp, path)

    for name, img in images.items():
        rel = Path("artifacts") / trial_id / f"{name}.png"
        (sweep_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        save_image(img, sweep_dir / rel)
        if name == "output":
            row["artifact_output"] = rel.as_posix()
    metrics = pa.table({
        "sweep": pa.array([sweep] * len(metric_rows), pa.string()),
        "trial_id": pa.array([trial_id] * len(metric_rows), pa.string()),
        "iter": pa.array([m["iter"] for m in metric_rows], pa.int64()),
        "metric": pa.array([m["metric"] for m in metric_rows], pa.string()),
        "value": pa.array([m["value"] for m in metric_rows], pa.float64())})
    write(metrics, sweep_dir / "metrics" / f"part-{trial_id}.parquet")
    schema = pa.schema([(k, _column_type(row, k)) for k in row])
    write(pa.Table.from_pylist([row], schema=schema),
          sweep_dir / "trials" / f"part-{trial_id}.parquet")


def _column_type(row: dict, key: str):
    """The typed column of the layout: from the value, or for a null from the column's kind."""
    import typing

    import pyarrow as pa

    from dipddpm.methods import METHODS

    v = row[key]
    if isinstance(v, bool):
        return pa.bool_()
    if isinstance(v, int):
        return pa.int64()
    if isinstance(v, float):
        return pa.float64()
    if isinstance(v, datetime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(v, str):
        return pa.string()
    if key.startswith("config."):
        hint = typing.get_type_hints(METHODS.get(row["method"]).config_cls)[key[7:]]
        args = set(typing.get_args(hint)) or {hint}
        for tp, arrow in ((bool, pa.bool_()), (int, pa.int64()), (float, pa.float64())):
            if tp in args:
                return arrow
        return pa.string()
    if key in ("error", "preset", "gpu", "artifact_output"):
        return pa.string()
    return pa.int64() if key.endswith("_iter") or key in ("iters", "n_backtracks") else \
        pa.float64()


def _config_columns(cfg) -> dict:
    from dataclasses import asdict

    out = {}
    for k, v in asdict(cfg).items():
        out[f"config.{k}"] = json.dumps(list(v)) if isinstance(v, tuple | list) else v
    return out


def _run_trial(name: str, trial_id: str, method_name: str, overrides: dict, seed: int,
               prune_at: int | None = None, fail: bool = False, summary_keys=()):
    import torch

    from dipddpm.config import build
    from dipddpm.methods import METHODS

    method = METHODS.get(method_name)
    cfg = build(method.config_cls, {**BASE, **overrides})
    problem = method.make_problem(PROBLEM, cfg)
    reports: list[tuple[int, dict]] = []

    def report(it, metrics, state):
        reports.append((it, dict(metrics)))
        if prune_at is not None and it >= prune_at:
            raise Pruned
        if fail and it >= 10:
            raise FloatingPointError(f"loss is nan at iteration {it}")

    started = datetime.now(timezone.utc)
    status, error, result = "COMPLETED", None, None
    try:
        result = method.run(cfg, problem, report=report, seed=seed, device="cpu")
    except Pruned:
        status = "PRUNED"
    except FloatingPointError as e:
        status, error = "FAILED", str(e)
    ended = datetime.now(timezone.utc)
    last = reports[-1][1]
    row = {
        "sweep": name, "trial_id": trial_id, "status": status, "error": error,
        "method": method_name, "preset": "tiny", "seed": seed, "retries": 0,
        "iters_done": int(last["iter"]), "objective": float(last["psnr_best"]),
        "wall_s": (ended - started).total_seconds(), "node_ip": "127.0.0.2",
        "hostname": platform.node(), "gpu": None, "started_at": started, "ended_at": ended,
        **_config_columns(cfg), **{f"problem.{k}": v for k, v in PROBLEM.items()},
        "artifact_output": None, "dipddpm_version": "0.1.0", "torch_version": torch.__version__,
        "ray_version": "2.60.0", "optuna_version": "5.0.0", "git_sha": "0" * 40,
        "python_version": platform.python_version(),
    }
    images = {}
    # the method's summary metrics (wall_s is the trial's own): null if it did not finish
    row.update({k: None for k in summary_keys if k != "wall_s"})
    if result is not None:
        row.update({k: v for k, v in result.metrics.items() if k != "wall_s"})
        images = {"output": result.images["output"], "output_sm": result.images["output_sm"]}
    metric_rows = [{"iter": it, "metric": k, "value": float(v)}
                   for it, m in reports for k, v in m.items() if k != "iter"]
    return row, metric_rows, images, problem, list(result.metrics) if result else []


def _write_study(sweep_dir: Path, name: str, rows: list[dict]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, direction="maximize",
                                storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    dists = {"scheduler": optuna.distributions.CategoricalDistribution(
                 ["uniform", "sharp_linear"]),
             "beta_schedule": optuna.distributions.CategoricalDistribution(
                 ["cosine", "linear"])}
    states = {"COMPLETED": optuna.trial.TrialState.COMPLETE,
              "PRUNED": optuna.trial.TrialState.PRUNED, "FAILED": optuna.trial.TrialState.FAIL}
    for row in rows:
        if row["config.stages"] == 1:  # the baseline is not in the searched space
            continue
        state = states[row["status"]]
        study.add_trial(optuna.trial.create_trial(
            params={k: row[f"config.{k}"] for k in dists}, distributions=dists,
            value=row["objective"] if state == optuna.trial.TrialState.COMPLETE else None,
            state=state, intermediate_values={row["iters_done"]: row["objective"]},
            user_attrs={"ray_trial_id": row["trial_id"]}))


def make_sweep(sweep_dir: Path, name: str = "fixture", study: bool = True) -> Path:
    """Run the fixture's trials and write their results under sweep_dir; returns sweep_dir."""
    from dipddpm.data.images import save_image

    sweep_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for scheduler in ("uniform", "sharp_linear"):
        for beta in ("cosine", "linear"):
            for seed in (0, 1):
                plan.append(("guided_dip", {**GUIDED, "scheduler": scheduler,
                                            "beta_schedule": beta}, seed, None, False))
    plan.append(("guided_dip", {**GUIDED, "scheduler": "uniform", "beta_schedule": "linear"},
                 2, PRUNE_AT, False))
    plan.append(("guided_dip", {**GUIDED, "scheduler": "sharp_linear",
                                "beta_schedule": "cosine"}, 3, None, True))
    # the DIP baseline: one stage at t = 0 (plain DIP through the guided loop), fewer iterations
    plan.append(("guided_dip", {"stages": 1, "t_max": 0, "t_min": 0, "t_drop_first": False,
                                "iters": 30}, 0, None, False))

    rows = []
    problem = None
    summary_keys: list[str] = []  # the method's Result.metrics keys, from a finished trial
    for i, (method, overrides, seed, prune_at, fail) in enumerate(plan):
        row, metric_rows, images, problem, result_keys = _run_trial(
            name, f"t{i:03d}", method, overrides, seed, prune_at, fail, summary_keys)
        summary_keys = summary_keys or list(result_keys)
        write_trial(sweep_dir, row, metric_rows, images)
        rows.append(row)

    (sweep_dir / "artifacts" / "problem").mkdir(parents=True, exist_ok=True)
    save_image(problem.clean, sweep_dir / "artifacts" / "problem" / "clean.png")
    save_image(problem.observed, sweep_dir / "artifacts" / "problem" / "noisy.png")
    spec = {"name": name, "method": "guided_dip", "problem": PROBLEM,
            "metric": "psnr_best", "mode": "max", "fixed": {**BASE, **GUIDED},
            "search": {"scheduler": {"choice": ["uniform", "sharp_linear"]},
                       "beta_schedule": {"choice": ["cosine", "linear"]}}}
    tmp = sweep_dir / ".spec.resolved.yaml.tmp"
    tmp.write_text(yaml.safe_dump(spec, sort_keys=False))
    os.replace(tmp, sweep_dir / "spec.resolved.yaml")
    if study:
        _write_study(sweep_dir, name, rows)
    return sweep_dir


_SHARED: dict[str, Path] = {}


def shared_sweep(tmp_path_factory) -> Path:
    """The fixture sweep, made once per test session. Tests must not change it (copy it)."""
    if "dir" not in _SHARED:
        _SHARED["dir"] = make_sweep(tmp_path_factory.mktemp("results") / "fixture")
    return _SHARED["dir"]
