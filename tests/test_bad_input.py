"""The mistakes new users make, one table: every case must end in exit 2, exactly one line on
stderr, no traceback, the offending key, value or path named, and no file left behind.

A case is argv after `dipddpm` (with `{tmp}` for the case's own folder), the files to create
there first, the environment, and the words stderr must hold. The run is in-process (typer's
CliRunner), so the table costs what the commands cost, not 60 interpreter starts. The folder
is listed before and after: anything new in it is a half-written output.

Sections by kind; add a case to the kind it belongs to.
"""

from __future__ import annotations

import os
import socket
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
# a sweep directory `sw` as `sweep run` leaves it (a resolved noop spec of 3 trials), with
# trials written and Tune's state as each case needs
RESOLVED = {"name": "sw", "method": "noop", "problem": {}, "metric": "score", "mode": "max",
            "fixed": {"iters": 4}, "search": {"x": {"uniform": [0.0, 1.0]}},
            "searcher": {"type": "optuna", "sampler": "random", "seed": 0,
                         "max_concurrent": 1},
            "scheduler": {"type": "none"}, "num_samples": 3}


def sweep_dir(trials: int = 0, tune: Mapping[str, bytes] | None = None, lock: bool = False,
              spec: Mapping | None = None, storage_spec: bool = False):
    """A set-up making {tmp}/sw: its spec.resolved.yaml, `trials` part files, tune/ files,
    a driver lock held by this (live) process, and a spec file {tmp}/sw.yaml whose storage is
    {tmp} (for `sweep run --resume`)."""

    def make(tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from dipddpm.sweep.lock import LOCK_FILE, Holder
        from dipddpm.sweep.runner import resolved_yaml
        from dipddpm.sweep.spec import load_spec

        sw = tmp / "sw"
        (sw / "trials").mkdir(parents=True)
        (sw / "spec.resolved.yaml").write_text(yaml.safe_dump(dict(spec or RESOLVED)))
        if storage_spec:  # and the sweep as that spec runs it
            (tmp / "sw.yaml").write_text(yaml.safe_dump({**RESOLVED, "storage": str(tmp)}))
            (sw / "spec.resolved.yaml").write_text(resolved_yaml(load_spec(tmp / "sw.yaml")))
        for i in range(trials):
            pq.write_table(pa.table({"sweep": ["sw"], "trial_id": [f"t{i}"],
                                     "status": ["COMPLETED"]}),
                           sw / "trials" / f"part-t{i}.parquet")
        for name, content in (tune or {}).items():
            (sw / "tune").mkdir(exist_ok=True)
            (sw / "tune" / name).write_bytes(content)
        if lock:
            (sw / LOCK_FILE).write_bytes(Holder.me(str(sw)).dump())

    return make


SWEEPS: list[Case] = [
    Case("resume-not-a-sweep", ("sweep", "resume", "{tmp}"), ("{tmp}", "not a sweep directory")),
    Case("resume-no-such-dir", ("sweep", "resume", "{tmp}/nope"),
         ("{tmp}/nope", "no such directory")),
    Case("resume-a-spec-file", ("sweep", "resume", "{tmp}/quick.yaml"),
         ("{tmp}/quick.yaml", "is a file, not a sweep directory"),
         files={"quick.yaml": "name: quick\n"}),
    Case("status-of-a-file", ("sweep", "status", "{tmp}/x.txt"),
         ("{tmp}/x.txt", "is a file"), files={"x.txt": "hello\n"}),
    Case("status-empty-dir", ("sweep", "status", "{tmp}/empty"),
         ("{tmp}/empty", "no spec.resolved.yaml"),
         setup=lambda tmp: (tmp / "empty").mkdir()),
    Case("status-no-such-dir", ("sweep", "status", "{tmp}/gone"), ("{tmp}/gone",)),
    Case("resume-spec-not-yaml", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "not valid YAML at line"),
         files={"sw/spec.resolved.yaml": "name: sw\nmethod: [noop\n"}),
    Case("resume-spec-not-a-mapping", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "holds a list"),
         files={"sw/spec.resolved.yaml": "- name\n- sw\n"}),
    Case("status-spec-latin1", ("sweep", "status", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "not UTF-8"),
         files={"sw/spec.resolved.yaml": b"name: caf\xe9\n"}),
    Case("resume-spec-bad-method", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/spec.resolved.yaml", "nosuch"),
         setup=sweep_dir(spec={**RESOLVED, "method": "nosuch"})),
    Case("resume-spec-is-a-folder", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw", "no spec.resolved.yaml file"),
         setup=lambda tmp: (tmp / "sw" / "spec.resolved.yaml").mkdir(parents=True)),
    Case("resume-tune-missing-trials-left", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/tune is missing", "1 of the sweep's 3 trials ended",
          "Put the tune/ folder back"),
         setup=sweep_dir(trials=1)),
    Case("run-resume-tune-missing-trials-left", ("sweep", "run", "{tmp}/sw.yaml", "--resume"),
         ("{tmp}/sw/tune is missing", "2 of the sweep's 3 trials"),
         setup=sweep_dir(trials=2, storage_spec=True)),
    Case("resume-tune-unreadable", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw/tune is unreadable", "1 of the sweep's 3 trials"),
         setup=sweep_dir(trials=1, tune={"tuner.pkl": b"not a pickle",
                                         "experiment_state-2026-01-01_00-00-00.json": b"{"})),
    Case("resume-tune-without-tuner-pkl", ("sweep", "resume", "{tmp}/sw", "--drop-orphans"),
         ("{tmp}/sw/tune is incomplete (no tuner.pkl)",),
         setup=sweep_dir(trials=2, tune={"search_gen_state-x.json": b"{}"})),
    Case("resume-held-by-a-live-driver", ("sweep", "resume", "{tmp}/sw"),
         ("{tmp}/sw is held by driver pid", f"pid {os.getpid()} on {socket.gethostname()}"),
         setup=sweep_dir(trials=1, lock=True)),
    Case("run-held-by-a-live-driver", ("sweep", "run", "{tmp}/sw.yaml"),
         ("{tmp}/sw is held by driver pid", f"pid {os.getpid()}"),
         setup=sweep_dir(lock=True, storage_spec=True)),
    Case("resume-no-room-for-the-reserve", ("sweep", "resume", "{tmp}/sw"),
         ("no space for the sweep in {tmp}/sw", "DIPDDPM_MIN_FREE_MIB"),
         setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "1e12"}),
    Case("resume-reserve-not-a-number", ("sweep", "resume", "{tmp}/sw"),
         ("DIPDDPM_MIN_FREE_MIB", "'lots'"),
         setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "lots"}),
    Case("resume-reserve-nan", ("sweep", "resume", "{tmp}/sw"),
         ("DIPDDPM_MIN_FREE_MIB", "'nan'"), setup=sweep_dir(), env={"DIPDDPM_MIN_FREE_MIB": "nan"}),
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
