"""`dipddpm.run` and `dipddpm.resume`: run (or continue) a sweep from Python (a notebook, a
script) and get its Results.

`dipddpm sweep run SPEC [--smoke] [--storage DIR] [--set k=v ...]` is `run` and
`dipddpm sweep resume DIR` is `resume`: the spec is read, overridden and validated before Ray
starts, then run on an embedded local Ray (or the cluster at `address`); its Parquet results
are loaded back when first asked for, and `Results.outcome` holds what `--json` prints.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dipddpm.api.results import Results

KEEP_WHOLE = ("search", "problem")  # overrides that replace a whole mapping (see `sets`)


def as_sets(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keyword overrides as `--set key=value` items: nested mappings become dotted keys (so
    `fixed={"iters": 30}` changes one value and keeps the others), values as JSON (which YAML
    reads). A domain under `search`, a `problem` naming an image and a section naming its
    `type` (another scheduler or searcher has other keys) are replaced whole.

    >>> as_sets({"num_samples": 3, "fixed": {"iters": 30, "lr": 0.01}})
    ['num_samples=3', 'fixed.iters=30', 'fixed.lr=0.01']
    >>> as_sets({"search": {"iters": {"choice": [20, 30]}}})
    ['search.iters={"choice": [20, 30]}']
    >>> as_sets({"scheduler": {"type": "none"}})
    ['scheduler={"type": "none"}']
    """
    out: list[str] = []
    for k, v in overrides.items():
        key = f"{prefix}{k}"
        nested = isinstance(v, Mapping) and v and prefix.rstrip(".") not in KEEP_WHOLE
        whole = "type" in v if nested else False
        if nested and not whole and not (k == "problem" and {"image", "images", "dataset"}
                                         & set(v)):
            out += as_sets(v, prefix=f"{key}.")
        else:
            out.append(f"{key}={json.dumps(v)}")
    return out


sets = as_sets  # its first name


def _spec_path(spec: str | Path | Mapping[str, Any], folder: str) -> Path:
    """A spec given as a mapping is written to a YAML file (named after it) first."""
    if not isinstance(spec, Mapping):
        return Path(spec)
    import yaml

    path = Path(folder) / f"{spec.get('name') or 'sweep'}.yaml"
    path.write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    return path


def outcome_record(out: Any) -> dict[str, Any]:
    """A driver's outcome as `sweep run --json` / `sweep resume --json` print it: path, trial
    counts by status, the metric, the best trial, whether it was finished already, and the
    files `drop_orphans` deleted."""
    from dipddpm.sweep.rows import best_trial, status_counts

    return {"path": out.path, "trials": len(out.rows), **status_counts(out.rows),
            "metric": out.spec.metric, "best": best_trial(out.rows, out.spec),
            "already_finished": out.finished, "dropped": out.dropped}


def run(spec_or_path: str | Path | Mapping[str, Any], smoke: bool = False,
        storage: str | None = None, *, address: str | None = None, resume: bool = False,
        quiet: bool = False, dashboard: bool = False, sets: Sequence[str] | None = None,
        num_samples: int | None = None, on_warning: Callable[[str], None] | None = None,
        **overrides: Any) -> Results:
    """Run a sweep and return its results (`dipddpm sweep run` as a function).

    `spec_or_path`: a YAML spec's path, or the spec as a mapping. `smoke`: apply its
    `smoke:` block. `storage`: the results root (default: the spec's). `overrides`: spec keys,
    as `--set` sets them (`num_samples=4`, `fixed={"iters": 30}`); `sets`: `--set` items as
    text (`"fixed.iters=30"`, values as YAML); `num_samples`: `--num-samples`. `address`: a
    Ray cluster (default: `$RAY_ADDRESS`, set inside a `ray job submit`, else an embedded local
    Ray). `resume`: continue the sweep if its folder holds one. `dashboard`: start Ray's
    dashboard (embedded Ray only). `quiet`: no console lines. `on_warning`: called with each
    of the spec's warnings (default: a console line). A bad spec raises a `DipddpmError`
    naming the key, before Ray starts. The results are read when first asked for;
    `.outcome` is the run's summary (`sweep run --json`).

    >>> import dipddpm
    >>> results = dipddpm.run("sweeps/quick.yaml", smoke=True, storage="results", quiet=True)
    >>> results.name, len(results.trials), results.outcome["trials"]
    ('quick-smoke', 3, 3)
    """
    from dipddpm.cluster.local_ray import choose_address
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_spec
    from dipddpm.sweep.spec import load_spec

    items = [*(sets or []), *as_sets(overrides)]
    with tempfile.TemporaryDirectory(prefix="dipddpm-spec-") as folder:
        spec = load_spec(_spec_path(spec_or_path, folder), smoke=smoke, sets=items,
                         num_samples=num_samples, storage=storage)
    console = SweepConsole(spec.metric, spec.mode, quiet=quiet)
    warn = on_warning or (lambda w: console.line(f"[yellow]warning[/]: {w}"))
    for w in spec.warnings:
        warn(w)
    outcome = run_spec(spec, address=choose_address(address), resume=resume,
                       dashboard=dashboard, console=console)
    return Results(None, outcome.path, outcome=outcome_record(outcome))


def resume(sweep_dir: str | Path, *, address: str | None = None, drop_orphans: bool = False,
           quiet: bool = False) -> Results:
    """Continue a sweep whose driver stopped (`dipddpm sweep resume` as a function): no trial
    is lost or run twice, the Optuna study continues; a finished sweep is left as it is
    (`.outcome["already_finished"]`). `address` as in `run`. `drop_orphans`: delete the
    trials that ended after Tune's last saved state, so Tune runs their places again (without
    it such a resume is refused). Returns the sweep's Results, `.outcome` as in `run`.

    >>> import dipddpm
    >>> dipddpm.resume("results/nowhere")
    Traceback (most recent call last):
    dipddpm.errors.DipddpmError: ...
    """
    from dipddpm.cluster.local_ray import choose_address
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import load_sweep_spec, resume_sweep

    spec, _ = load_sweep_spec(str(sweep_dir), load_problem=False)  # the console's metric
    outcome = resume_sweep(str(sweep_dir), address=choose_address(address),
                           console=SweepConsole(spec.metric, spec.mode, quiet=quiet),
                           drop_orphans=drop_orphans)
    return Results(None, outcome.path, outcome=outcome_record(outcome))
