"""The mistakes new users make, one table: every case must end in exit 2, exactly one line on
stderr, no traceback, the offending key, value or path named, and no file left behind.

A case is argv after `dipddpm` (with `{tmp}` for the case's own folder), the files to create
there first, the environment, and the words stderr must hold. The run is in-process (typer's
CliRunner), so the table costs what the commands cost, not 60 interpreter starts. The folder
is listed before and after: anything new in it is a half-written output.

Sections by kind; add a case to the kind it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app

# a small valid spec the cases below break one key at a time (plain DIP, tiny net, 32²)
BASE_SPEC = {
    "name": "bad", "method": "dip", "preset": "tiny",
    "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
    "metric": "psnr_best", "mode": "max",
    "fixed": {"iters": 20, "report_every": 5},
    "search": {"lr": {"loguniform": [0.001, 0.01]}},
    "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 1},
    "scheduler": {"type": "asha", "grace_period": 5, "reduction_factor": 2},
    "resources": {"cpu": 1, "gpu": 0}, "num_samples": 2, "storage": "results",
    "smoke": {"num_samples": 1},
}


def spec(*drop: str, **changes) -> str:
    """BASE_SPEC as YAML, with top-level `changes` (a dotted key as `a__b`) and `drop`ped keys."""
    data = yaml.safe_load(yaml.safe_dump(BASE_SPEC))
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    for key in drop:
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node[p]
        node.pop(last)
    return yaml.safe_dump(data, sort_keys=False)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # argv after `dipddpm`; `{tmp}` is the case's folder
    names: tuple[str, ...]  # what stderr must hold (the key, value or path at fault)
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # made under {tmp} first
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None  # more set-up than files (modes, folders)
    marks: tuple = ()


# --- the file system says no ------------------------------------------------------------------
FILESYSTEM: list[Case] = [
]

# --- numbers that are not numbers ---------------------------------------------------------------
NUMBERS: list[Case] = [
]

# --- YAML that is not quite YAML ----------------------------------------------------------------
YAML: list[Case] = [
    Case("spec-missing", ("sweep", "validate", "{tmp}/nope.yaml"), ("nope.yaml",)),
]

# --- storage URIs -------------------------------------------------------------------------------
STORAGE: list[Case] = [
]

# --- requests the machine cannot meet -----------------------------------------------------------
FEASIBILITY: list[Case] = [
]

# --- two options that disagree ------------------------------------------------------------------
CONFLICTS: list[Case] = [
]

# --- quantities with no meaning -----------------------------------------------------------------
MEANING: list[Case] = [
]

# --- messages that name what happened -----------------------------------------------------------
MESSAGES: list[Case] = [
]

# --- sweep directories: resume, status, locks ---------------------------------------------------
SWEEPS: list[Case] = [
]

# --- the tools' own options ---------------------------------------------------------------------
TOOLS: list[Case] = [
]

CASES = [*FILESYSTEM, *NUMBERS, *YAML, *STORAGE, *FEASIBILITY, *CONFLICTS, *MEANING, *MESSAGES,
         *SWEEPS, *TOOLS]


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=list(c.marks)) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch) -> None:
    for rel, content in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    if case.setup is not None:
        case.setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative outputs (results/, ./x.png) land in the case's folder
    before = listing(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()}
    r = CliRunner().invoke(app, args, env=env)
    lines = r.stderr.strip().splitlines()
    shown = f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.exit_code == 2, shown
    assert r.exception is None or isinstance(r.exception, SystemExit), shown
    assert "Traceback" not in r.stdout + r.stderr, shown
    assert len(lines) == 1, shown
    for name in case.names:
        assert name.replace("{tmp}", str(tmp_path)) in r.stderr, shown
    left = listing(tmp_path) - before
    assert not left, f"left behind: {sorted(left)}\n{shown}"


def test_every_kind_has_cases() -> None:
    """The table covers each kind of mistake, and no two cases share an id."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
