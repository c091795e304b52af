"""A small but real sweep result for the `dipddpm results` tests.

`make_sweep(dir)` runs tiny guided-DIP fits (32x32, 30-40 iterations, CPU) and writes them with the
sweep runner's own code: the spec is parsed by `dipddpm.sweep.spec`, each trial's config is built
by `trial_config`, its row by the recorder's own `rows.trial_row`, and every file is written by
`dipddpm.dataset.parquet` (write_metrics, write_trial_row, harmonize), `dipddpm.dataset.artifacts`
(write_artifact) and the runner (spec.resolved.yaml, the problem's clean and noisy images). So the
analysis is tested against the schema a real sweep has. Only Ray is left out: the trials run in
this process.

The spec searches `stages` (1 = plain DIP, 4 = guided DIP), `iters`, the trial `seed`, and, only
when stages is 4 (`when:`), the stage `scheduler` and the `beta_schedule`. Trials:

- guided DIP, scheduler x beta schedule x seeds 0 and 1, 40 iterations (COMPLETED)
- guided DIP, uniform / linear, seed 2, stopped at iteration 20 (PRUNED)
- guided DIP, sharp_linear / cosine, seed 3, a non-finite loss at iteration 10 (FAILED)
- plain DIP (one stage at t = 0), 30 iterations, seeds 0 and 1 (COMPLETED): scheduler and
  beta_schedule are inactive for them, so their config columns are null

Every 10 iterations (a checkpoint) the trial's output is kept, as the trainable keeps it.

optuna.db holds a study of the guided trials over scheduler and beta_schedule.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

PROBLEM = {"image": "skimage:astronaut", "size": 32, "sigma": 25.0, "seed": 0}
# sharp_linear_x 9: with the default 10, the space's corner stages 4 / iters 30 would give the
# final stage (the observation itself) no iterations, which validation refuses
FIXED = {"width": 16, "depth": 3, "input_depth": 8, "report_every": 5, "psnr_threshold": 14.0,
         "t_min": 0, "t_drop_first": True, "sharp_linear_x": 9}
SCHEDULERS = ["uniform", "sharp_linear"]
BETAS = ["cosine", "linear"]
SEEDS = [0, 1, 2, 3]
PRUNE_AT = 20
CHECKPOINT_EVERY = 10
FAIL_AT = 10


def spec_dict(name: str) -> dict:
    guided = {"stages": [4]}
    return {"name": name, "method": "guided_dip", "preset": "tiny", "problem": PROBLEM,
            "metric": "psnr_best", "mode": "max", "fixed": FIXED,
            "search": {"stages": {"choice": [1, 4]},
                       "scheduler": {"choice": SCHEDULERS, "when": guided},
                       "beta_schedule": {"choice": BETAS, "when": guided},
                       "iters": {"choice": [30, 40]},
                       "seed": {"choice": SEEDS}},
            "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0},
            "scheduler": {"type": "asha", "grace_period": 10}, "num_samples": 12,
            "summary_by": "stages"}


def plan() -> list[tuple[dict, str | None]]:
    """(searched params, how the trial ends early: None, 'prune' or 'fail') per trial."""
    trials: list[tuple[dict, str | None]] = []
    for scheduler in SCHEDULERS:
        for beta in BETAS:
            for seed in (0, 1):
                trials.append(({"stages": 4, "scheduler": scheduler, "beta_schedule": beta,
                                "iters": 40, "seed": seed}, None))
    trials.append(({"stages": 4, "scheduler": "uniform", "beta_schedule": "linear",
                    "iters": 40, "seed": 2}, "prune"))
    trials.append(({"stages": 4, "scheduler": "sharp_linear", "beta_schedule": "cosine",
                    "iters": 40, "seed": 3}, "fail"))
    for seed in (0, 1):
        trials.append(({"stages": 1, "iters": 30, "seed": seed}, None))
    return trials


class Pruned(Exception):
    """Raised from the report callback to stop a trial early, as ASHA does."""


def run_trial(spec, sweep_dir: Path, trial_id: str, params: dict, ends: str | None) -> dict:
    """Run one trial in this process; write its metrics and images; return its trials row."""
    import torch

    from dipddpm.dataset import artifacts
    from dipddpm.dataset import parquet as results
    from dipddpm.methods import METHODS
    from dipddpm.sweep.rows import metric_rows, status_of, trial_row
    from dipddpm.sweep.trainable import snapshot_images, trial_config

    method = METHODS.get(spec.method)
    cfg = trial_config(spec, params)
    problem = method.make_problem(dict(spec.problem), cfg)
    reports: list[dict] = []

    def report(it, metrics, state):
        reports.append({**metrics, "iter": it})
        if it % CHECKPOINT_EVERY == 0:  # the trainable keeps the output at each checkpoint
            images = snapshot_images(state())
            artifacts.write_history(sweep_dir, trial_id, it, images["output"])
        if ends == "prune" and it >= PRUNE_AT:
            raise Pruned
        if ends == "fail" and it >= FAIL_AT:
            raise FloatingPointError(f"loss is nan at iteration {it}")

    started = datetime.now(timezone.utc)
    res, error = None, None
    try:
        res = method.run(cfg, problem, report=report, seed=spec.trial_seed(params),
                         device="cpu")
    except Pruned:
        pass
    except FloatingPointError as e:  # the trainable's message for a non-finite metric
        error = f"{type(e).__name__}: {e}"
    ended = datetime.now(timezone.utc)
    last = reports[-1]
    rows = [r for rep in reports for r in metric_rows(rep)]
    results.write_metrics(sweep_dir, spec.name, trial_id, rows)

    # the last result as the trainable reports it; the row as the recorder builds it
    info = {"budget": cfg.iters, "retries": 0, "resumed_from": 0, "node_ip": "127.0.0.2",
            "node_id": "0" * 56, "hostname": platform.node(), "gpu": None}
    if error:
        info["error"] = error
    if res is not None:  # the summary: only a trial whose loop returned has one
        info["summary"] = dict(res.metrics)
        info["artifacts"] = {name: artifacts.write_artifact(sweep_dir, trial_id, name,
                                                          res.images[name])
                             for name in ("output", "output_sm")}
        info["artifact_iter"] = cfg.iters
    result = {**last, "info": info}
    status = status_of(result, error=False)
    provenance = {"dipddpm_version": "0.1.0", "torch_version": torch.__version__,
                  "ray_version": "2.60.0", "optuna_version": "5.0.0", "git_sha": "0" * 40,
                  "python_version": platform.python_version()}
    row = trial_row(spec, trial_id, params, result, status=status, error=error, retries=0,
                    started=started, ended=ended, provenance=provenance,
                    stopped_by="scheduler" if status == "PRUNED" else None)
    results.write_trial_row(sweep_dir, row)
    return row


def write_study(sweep_dir: Path, name: str, rows: list[dict]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, direction="maximize",
                                storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    dists = {"scheduler": optuna.distributions.CategoricalDistribution(SCHEDULERS),
             "beta_schedule": optuna.distributions.CategoricalDistribution(BETAS)}
    states = {"COMPLETED": optuna.trial.TrialState.COMPLETE,
              "PRUNED": optuna.trial.TrialState.PRUNED, "FAILED": optuna.trial.TrialState.FAIL}
    for row in rows:
        if row["config.stages"] == 1:  # plain DIP: scheduler and beta_schedule do not apply
            continue
        state = states[row["status"]]
        study.add_trial(optuna.trial.create_trial(
            params={k: row[f"config.{k}"] for k in dists}, distributions=dists,
            value=row["objective"] if state == optuna.trial.TrialState.COMPLETE else None,
            state=state, intermediate_values={row["iters_done"]: row["objective"]},
            user_attrs={"ray_trial_id": row["trial_id"]}))


def make_sweep(sweep_dir: Path, name: str = "fixture", study: bool = True) -> Path:
    """Run the fixture's trials and write their results under sweep_dir; returns sweep_dir."""
    from dipddpm.dataset.parquet import harmonize
    from dipddpm.dataset.storage import resolve
    from dipddpm.sweep.runner import SPEC_FILE, resolved_yaml, write_problem_images
    from dipddpm.sweep.spec import parse_spec

    spec = parse_spec(spec_dict(name))
    loc = resolve(str(sweep_dir))
    loc.makedirs()
    loc.child(SPEC_FILE).write_text(resolved_yaml(spec))
    write_problem_images(spec, loc)
    rows = [run_trial(spec, sweep_dir, f"t{i:03d}", params, ends)
            for i, (params, ends) in enumerate(plan())]
    harmonize(loc)  # as the runner does when the sweep ends
    if study:
        write_study(sweep_dir, name, rows)
    return sweep_dir


_SHARED: dict[str, Path] = {}


def shared_sweep(tmp_path_factory) -> Path:
    """The fixture sweep, made once per test session. Tests must not change it (copy it)."""
    if "dir" not in _SHARED:
        _SHARED["dir"] = make_sweep(tmp_path_factory.mktemp("results") / "fixture")
    return _SHARED["dir"]
