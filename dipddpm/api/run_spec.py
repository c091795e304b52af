"""`dipddpm.run`: run a sweep spec from Python (a notebook, a script) and get its Results.

The same path as `dipddpm sweep run SPEC [--smoke] [--storage DIR] [--set k=v ...]`: the spec
is read, overridden and validated before Ray starts, then run on an embedded local Ray (or
the cluster at `address`), and its Parquet results are loaded back.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dipddpm.api.results import Results

KEEP_WHOLE = ("search", "problem")  # overrides that replace a whole mapping (see `sets`)


def sets(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keyword overrides as `--set key=value` items: nested mappings become dotted keys (so
    `fixed={"iters": 30}` changes one value and keeps the others), values as JSON (which YAML
    reads). A domain under `search` and a `problem` naming an image are replaced whole.

    >>> sets({"num_samples": 3, "fixed": {"iters": 30, "lr": 0.01}})
    ['num_samples=3', 'fixed.iters=30', 'fixed.lr=0.01']
    >>> sets({"search": {"iters": {"choice": [20, 30]}}})
    ['search.iters={"choice": [20, 30]}']
    """
    out: list[str] = []
    for k, v in overrides.items():
        key = f"{prefix}{k}"
        nested = isinstance(v, Mapping) and v and prefix.rstrip(".") not in KEEP_WHOLE
        if nested and not (k == "problem" and {"image", "images", "dataset"} & set(v)):
            out += sets(v, prefix=f"{key}.")
        else:
            out.append(f"{key}={json.dumps(v)}")
    return out


def _spec_path(spec: str | Path | Mapping[str, Any], folder: str) -> Path:
    """A spec given as a mapping is written to a YAML file (named after it) first."""
    if not isinstance(spec, Mapping):
        return Path(spec)
    import yaml

    path = Path(folder) / f"{spec.get('name') or 'sweep'}.yaml"
    path.write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    return path


def run(spec_or_path: str | Path | Mapping[str, Any], smoke: bool = False,
        storage: str | None = None, *, address: str | None = None, resume: bool = False,
        quiet: bool = False, **overrides: Any) -> Results:
    """Run a sweep and return its results (`dipddpm sweep run` as a function).

    `spec_or_path`: a YAML spec's path, or the spec as a mapping. `smoke`: apply its
    `smoke:` block. `storage`: the results root (default: the spec's). `overrides`: spec keys,
    as `--set` sets them (`num_samples=4`, `fixed={"iters": 30}`). `address`: a Ray cluster
    (default: `$RAY_ADDRESS`, set inside a `ray job submit`, else an embedded local Ray).
    `resume`: continue the sweep if its folder holds one. `quiet`: no console lines. A bad
    spec raises a `DipddpmError` naming the key, before Ray starts.

    >>> import dipddpm
    >>> results = dipddpm.run("sweeps/quick.yaml", smoke=True, storage="results", quiet=True)
    >>> results.name, len(results.trials)
    ('quick-smoke', 3)
    """
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_spec
    from dipddpm.sweep.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="dipddpm-spec-") as folder:
        spec = load_spec(_spec_path(spec_or_path, folder), smoke=smoke, sets=sets(overrides),
                         storage=storage)
    console = SweepConsole(spec.metric, spec.mode, quiet=quiet)
    for w in spec.warnings:
        console.line(f"[yellow]warning[/]: {w}")
    address = address or os.environ.get("RAY_ADDRESS") or None  # as the CLI does
    outcome = run_spec(spec, address=address, resume=resume, console=console)
    from dipddpm.analysis import load_sweep

    return Results(load_sweep(outcome.path), outcome.path)
