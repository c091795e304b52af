"""The spec's `tracking:` key and the checks before Ray starts (no Ray here): names from the
registry with "did you mean", each entry's own options, a missing package named with its extra,
an unreachable MLflow server one line before Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dipddpm.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "sweeps" / "quick.yaml"


def load(tracking):
    from dipddpm.sweep.spec import load_spec

    return load_spec(SMOKE, smoke=True, sets=[f"tracking={yaml.safe_dump(tracking).strip()}"]
                     if not isinstance(tracking, str) else [f"tracking={tracking}"])


def test_tracking_forms_parse_to_one_mapping_that_round_trips():
    from dipddpm.sweep.spec import parse_spec

    a = load(["mlflow", "tensorboard"])
    assert list(a.tracking) == ["mlflow", "tensorboard"]
    assert a.tracking["mlflow"]["experiment"] is None and a.tracking["mlflow"]["images"]
    b = load({"mlflow": {"experiment": "dip"}, "wandb": {"project": "x", "mode": "offline"}})
    assert b.tracking["mlflow"]["experiment"] == "dip" and b.tracking["wandb"]["mode"] == "offline"
    c = load(["tensorboard", {"mlflow": {"timeout_s": 2}}])
    assert c.tracking["mlflow"]["timeout_s"] == 2
    # the resolved spec stores every option and parses back to the same spec
    text = yaml.safe_dump(b.resolved_dict(), sort_keys=False)
    again = parse_spec(yaml.safe_load(text), load_problem=False)
    assert again.tracking == b.tracking
    assert load("null").tracking == {} and load([]).tracking == {}


@pytest.mark.parametrize("tracking, words", [
    ("[mlfow]", ["unknown tracking backend 'mlfow'", "did you mean 'mlflow'", "tensorboard"]),
    ("[tensorbord]", ["did you mean 'tensorboard'"]),
    ("{mlflow: {experimnt: x}}", ["tracking.mlflow", "did you mean 'experiment'"]),
    ("{wandb: {mode: onlin}}", ["tracking.wandb", "mode", "'online'"]),
    ("[mlflow, mlflow]", ["listed twice"]),
    ("3", ["tracking must be a list of names"]),
    ("{mlflow: 3}", ["tracking.mlflow: options must be a mapping"]),
    ("[[mlflow]]", ["each item is a name"]),
])
def test_bad_tracking_is_one_error_naming_the_key(tracking, words):
    with pytest.raises(ConfigError) as e:
        load(tracking)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_no_backend_is_compared_by_name_outside_its_entry():
    """The runner and the callback ask the registry; no file names a backend in code."""
    import re

    for path in (REPO / "dipddpm").rglob("*.py"):
        if path.parent.name == "tracking" and path.name.endswith("_tracker.py"):
            continue
        text = path.read_text()
        for name in ("mlflow", "wandb", "tensorboard"):
            assert not re.search(rf"""==\s*["']{name}["']|["']{name}["']\s*(==|in\s)""", text), (
                path, name)


def run_cli(tmp_path: Path, env: dict, *prelude: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "t.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "t", "method": "noop", "problem": {}, "metric": "score", "fixed": {"iters": 4},
        "num_samples": 1, "scheduler": {"type": "none"}, "storage": str(tmp_path / "res"),
        "tracking": ["mlflow"]}))
    code = "; ".join([*prelude, "from dipddpm.cli import main", "main()"])
    return subprocess.run([sys.executable, "-c", code, "sweep", "run", str(spec)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


@pytest.mark.slow  # a fresh interpreter importing the CLI: about 6 s
def test_mlflow_missing_is_one_line_naming_the_extra(tmp_path):
    # `import mlflow` fails as it does where the package is not installed
    r = run_cli(tmp_path, {}, "import sys", "sys.modules['mlflow'] = None")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "mlflow" in lines[0] and "pip install 'dipddpm[tracking]'" in lines[0]
    assert not (tmp_path / "res" / "t").exists()  # nothing half-written


@pytest.mark.slow  # a fresh interpreter importing the CLI and mlflow: about 7 s
def test_unreachable_tracking_server_is_one_line_before_ray(tmp_path):
    import socket
    import time

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    t = time.monotonic()
    r = run_cli(tmp_path, {"MLFLOW_TRACKING_URI": uri})
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tracking: the MLflow server"), lines
    assert uri in lines[0] and "MLFLOW_TRACKING_URI" in lines[0] and "does not answer" in lines[0]
    assert not (tmp_path / "res" / "t").exists()  # Ray never started: no sweep folder
    assert "ray" not in r.stdout.lower()
    assert time.monotonic() - t < 60


def test_remote_sweep_without_a_tracking_server_is_refused():
    from dipddpm.errors import DipddpmError
    from dipddpm.tracking import preflight

    spec = load(["mlflow"])
    env = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        with pytest.raises(DipddpmError, match="needs a tracking server"):
            preflight(spec, "s3://bucket/sweeps/quick-smoke")
    finally:
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env


def test_wandb_is_offline_without_an_api_key(tmp_path, monkeypatch):
    from dipddpm.tracking.wandb_tracker import WandbOptions, run_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert run_mode(WandbOptions()) == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert run_mode(WandbOptions()) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert run_mode(WandbOptions()) == "offline"
    assert run_mode(WandbOptions(mode="online")) == "online"


def test_tracking_is_not_part_of_what_a_sweep_runs():
    """A sweep folder written before (or with other) tracking holds the same sweep: adding a
    backend to a spec does not make `sweep run` refuse its folder."""
    from dipddpm.sweep.runner import resolved_yaml, same_spec

    plain, tracked = load([]), load(["mlflow"])
    stored = yaml.safe_load(resolved_yaml(plain))
    stored.pop("tracking")  # as a folder written before the key existed
    assert same_spec(yaml.safe_dump(stored), tracked)
    assert not same_spec(yaml.safe_dump({**stored, "num_samples": 99}), tracked)
