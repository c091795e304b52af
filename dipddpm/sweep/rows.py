"""The rows a trial leaves in the Parquet dataset, built from the results it reported.

A trial reports dicts of metrics with `iter` and an `info` block (the trainable's bookkeeping:
iteration budget, restarts, host, and on the last report the method's summary and the output
images it wrote). From the last one, `trial_row` builds the trial's one `trials` row; every
report gives `metric_rows` for the long `metrics` table. No Ray here: the recorder (a Tune
callback) and tests that write a dataset without Ray build the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dipddpm.dataset.columns import STATUSES
from dipddpm.sweep.spec import SweepSpec

TUNE_KEYS = {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "pid",
             "time_since_restore", "iterations_since_restore", "timesteps_total",
             "episodes_total", "timesteps_since_restore", "iter", "done", "info", "config",
             "trial_id", "date", "hostname", "node_ip", "experiment_tag",
             "checkpoint_dir_name", "should_checkpoint", "pairs"}
PAIR_KEYS = {"image", "replicate", "iter"}


def _numbers(d: Mapping[str, Any], skip: set[str]) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in d.items()
            if k not in skip and isinstance(v, int | float) and not isinstance(v, bool)]


def metric_rows(result: Mapping[str, Any]) -> list[dict]:
    """The long metrics rows of one report: the trial's values (image and replicate null),
    then a study's per-pair values (`pairs`) tagged with their image and replicate."""
    it = int(result["iter"])
    rows = [{"iter": it, "metric": k, "value": v, "image": None, "replicate": None}
            for k, v in _numbers(result, TUNE_KEYS)]
    for p in result.get("pairs") or ():
        rows += [{"iter": it, "metric": k, "value": v, "image": str(p["image"]),
                  "replicate": int(p["replicate"])} for k, v in _numbers(p, PAIR_KEYS)]
    return rows


def info(result: Mapping[str, Any], key: str) -> Any:
    """The trainable's bookkeeping value `key` (budget, error, batch, ...) of a result as a
    callback gets it (nested `info`) or as a searcher gets it (flattened `info/<key>`)."""
    nested = result.get("info")
    if isinstance(nested, Mapping) and key in nested:
        return nested[key]
    return result.get(f"info/{key}")


def reports_in(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every report a Tune result carries: those held back since the previous result
    (`info.batch`, oldest first), then the result itself."""
    return [*(info(result, "batch") or []), result]


def status_of(result: Mapping[str, Any], error: bool) -> str:
    """FAILED (raised, or `info.error`), PRUNED (ended before its iteration budget) or
    COMPLETED (reached its budget)."""
    if error or info(result, "error"):
        return "FAILED"
    if int(result.get("iter", 0)) < int(info(result, "budget") or 0):
        return "PRUNED"
    return "COMPLETED"


def trial_row(spec: SweepSpec, trial_id: str, params: Mapping[str, Any],
              result: Mapping[str, Any], *, status: str, error: str | None, retries: int,
              started: datetime, ended: datetime, provenance: Mapping[str, str],
              stopped_by: str | None = None) -> dict[str, Any]:
    """The trials row of a finished trial from its last result and decoded params."""
    from dipddpm.config import to_dict
    from dipddpm.dataset.parquet import config_value
    from dipddpm.sweep.reproduce import trial_command
    from dipddpm.sweep.trainable import trial_config

    info = result.get("info") or {}
    value = result.get(spec.metric)
    objective = float(value) if isinstance(value, int | float) and math.isfinite(
        value) else None
    summary = {k: v for k, v in (info.get("summary") or {}).items() if k != "wall_s"}
    if "wall_s" in (info.get("summary") or {}):  # the method loop's own time (all attempts)
        summary["loop_wall_s"] = float(info["summary"]["wall_s"])
    try:
        cfg = to_dict(trial_config(spec, params))
    except Exception:  # a config that breaks a rule is the trial's error; keep its values
        cfg = unbuilt_config(spec, params)
    # a trial that continued another's checkpoint (PBT's exploit) ran more than its config:
    # no command re-runs it
    reproduce = None if info.get("cloned_from") else trial_command(
        spec.method, spec.preset, cfg, spec.problem, spec.trial_seed(params))
    for d in spec.search:  # a conditional key that did not apply to this trial: null
        if d.key in cfg and not d.active(params):
            cfg[d.key] = None
    row: dict[str, Any] = {
        "sweep": spec.name, "trial_id": trial_id, "status": status, "error": error,
        "method": spec.method, "preset": spec.preset, "seed": spec.trial_seed(params),
        # restarts of the trial (crash or lost node) and the checkpoint the last one
        # continued from (0: it started from scratch)
        "retries": int(retries), "resumed_from_iter": int(info.get("resumed_from") or 0),
        "cloned_from": info.get("cloned_from"),
        "stopped_by": stopped_by,
        "iters_done": int(result.get("iter", 0)), "objective": objective,
        "wall_s": (ended - started).total_seconds(),
        "node_ip": result.get("node_ip") or info.get("node_ip"),
        "node_id": info.get("node_id"),
        "hostname": result.get("hostname") or info.get("hostname"),
        "gpu": info.get("gpu"), "gpu_uuid": info.get("gpu_uuid"),
        "started_at": started, "ended_at": ended,
    }
    row.update({f"config.{k}": config_value(spec.method, k, v) for k, v in cfg.items()})
    row.update({f"problem.{k}": v for k, v in spec.problem.items()})
    row["reproduce"] = reproduce  # `dipddpm fit ...` re-running this trial without Ray
    # the last report's values: a pruned or failed trial has no summary, but these
    row.update({f"last.{r['metric']}": r["value"] for r in metric_rows(result)
                if r["image"] is None})
    row.update(summary)
    # the method's extra result info (guided DIP's stage timesteps and counts), as JSON text
    row.update({f"extra.{k}": str(v) for k, v in (info.get("extra") or {}).items()})
    arts = info.get("artifacts") or {}
    row["artifact_output"] = arts.get("output", next(iter(arts.values()), None))
    row["artifact_iter"] = info.get("artifact_iter") if arts else None
    row.update(provenance)
    return row


def unbuilt_config(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial's config was built from (defaults, preset, fixed:, its params),
    for a row whose config broke a rule and so could not be built."""
    import dataclasses

    from dipddpm.methods import METHODS
    from dipddpm.sweep.trainable import config_values

    fields = dataclasses.fields(METHODS.get(spec.method).config_cls)
    values = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    values.update(config_values(spec, params))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}



def status_counts(rows: list[Mapping[str, Any]]) -> dict[str, int]:
    """Trials rows per status, lower-case keys: {completed, pruned, failed}."""
    return {st.lower(): sum(r["status"] == st for r in rows) for st in STATUSES}


def has_objective(row: Mapping[str, Any]) -> bool:
    v = row.get("objective")
    return v is not None and math.isfinite(v)


def ranked(rows, mode: str) -> list:
    """Trials rows best first (by `mode`), those without a finite objective last."""
    sign = -1 if mode == "max" else 1
    return sorted(rows, key=lambda r: (0, sign * r["objective"]) if has_objective(r) else (1, 0))


def ranked_good(rows, mode: str) -> list:
    """The trials that did not fail and have a finite objective, best first."""
    return [r for r in ranked(rows, mode) if r["status"] != "FAILED" and has_objective(r)]


def best_trial(rows: list[Mapping[str, Any]], spec: SweepSpec) -> dict[str, Any] | None:
    """The best finite objective among trials that did not fail, with its searched params."""
    good = ranked_good(rows, spec.mode)
    if not good:
        return None
    b = good[0]
    return {"trial_id": b["trial_id"], "value": b["objective"], "status": b["status"],
            "params": {d.key: b.get(f"config.{d.key}") for d in spec.search}}
