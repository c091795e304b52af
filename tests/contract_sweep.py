"""What every contract suite does with an entry (and with a toy entry a test registers): the
smallest sweep that uses it goes through `dipddpm sweep validate`, one Ray run, and
`dipddpm results summarize`, with no other edit. The sweep is of the noop method (a score
from its config, no image, no net), so the runner around the entry is what is tested."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner


@contextmanager
def shipped(module: str) -> Iterator[None]:
    """A test module's functions and classes travel to Ray's workers by value while a toy
    entry is registered: the workers cannot import a test module, and the trial's process
    gets the entries it uses from the driver (sweep/trainable.py TrialParts)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[module])
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[module])


def noop_spec(name: str, storage: str | Path, **over: Any) -> dict[str, Any]:
    """A noop sweep of 2 trials, 12 iterations reported each, checkpoints every 4."""
    return {"name": name, "method": "noop", "problem": {}, "metric": "score",
            "fixed": {"iters": 12, "report_every": 1}, "search": {"x": {"grid": [0.1, 0.6]}},
            "searcher": {"type": "grid", "max_concurrent": 2},
            "scheduler": {"type": "none"}, "num_samples": 1, "checkpoint_every": 4,
            "resources": {"cpu": 0.5}, "storage": str(storage), **over}


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(*args: str) -> str:
    """A dipddpm command in this process; its output (exit 0 asserted)."""
    from dipddpm.cli import app

    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def validate(path: Path) -> dict[str, Any]:
    return json.loads(cli("sweep", "validate", str(path), "--json"))


def run(path: Path):
    """One sweep on the session's Ray (the caller holds the ray_local fixture)."""
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = yaml.safe_load(path.read_text())
    return run_sweep(path, console=SweepConsole(spec["metric"], "max", quiet=True))


def summarize(sweep_dir: str | Path) -> dict[str, Any]:
    return json.loads(cli("results", "summarize", str(sweep_dir), "--json"))


def through_everything(tmp_path: Path, spec: dict[str, Any]):
    """validate -> one Ray run -> results summarize; (validate's JSON, the outcome, the
    summary). Every trial ends with a status, and the summary counts them all."""
    from dipddpm.dataset.columns import STATUSES

    path = write_spec(tmp_path, spec)
    checked = validate(path)
    outcome = run(path)
    assert outcome.rows and all(r["status"] in STATUSES for r in outcome.rows)
    summary = summarize(outcome.path)
    assert sum(summary["counts"].values()) == len(outcome.rows), summary["counts"]
    return checked, outcome, summary
