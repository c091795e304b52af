"""The storage contract (dipddpm/dataset/storage_backends.py), over every registered backend
and a toy one registered here: the smallest noop sweep stored there goes through `dipddpm sweep
validate`, one Ray run and `dipddpm results summarize` with no other edit, and its Parquet is
read back from the store.

- local: on the session's Ray, in this process.
- s3: against moto's S3 server on loopback. The driver is a process of its own with its own
  embedded Ray, as a user runs it: the trials need the AWS_* variables, and the session's Ray
  workers were started without them.
- a backend with no local server to run against (gs: no GCS emulator ships with the test
  extras): its spec validates offline, and `sweep validate` against an endpoint where nothing
  listens is one line naming the endpoint, within the probe's wait (no traffic leaves the
  loopback).
- the toy (a `toyfs://` scheme over a local folder): registered here, on the session's Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import s3_server
from contract_sweep import noop_spec, shipped, through_everything, write_spec
from test_storage_backends import closed_port

from dipddpm.dataset.storage_backends import STORAGE_BACKENDS, Backend

BUCKET = "contract-bkt"


def read_trials(uri: str):
    import pandas as pd

    from dipddpm.dataset.storage import resolve

    loc = resolve(uri)
    return pd.read_parquet(loc.child("trials").path, filesystem=loc.fs)


def check_sweep(uri: str, summary: dict, trials: int = 2) -> None:
    """Every trial of the 2-trial noop sweep ended COMPLETED, once, and is read back."""
    assert {k: v for k, v in summary["counts"].items() if v} == {"COMPLETED": trials}, summary
    rows = read_trials(uri)
    assert len(rows) == trials and rows["trial_id"].is_unique
    assert (rows["status"] == "COMPLETED").all() and (rows["iters_done"] == 12).all()


# ---------------------------------------------------------------- how each entry is run
def on_local(tmp_path: Path, request, monkeypatch) -> None:
    request.getfixturevalue("ray_local")
    _, outcome, summary = through_everything(tmp_path, noop_spec("store-local",
                                                                 tmp_path / "results"))
    check_sweep(str(outcome.path), summary)


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from dipddpm.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def on_s3(tmp_path: Path, request, monkeypatch) -> None:
    """The driver (and its embedded Ray) in a process of its own, as a user runs it."""
    server = s3_server.start(tmp_path / "moto.log")
    request.addfinalizer(server.stop)
    server.make_bucket(BUCKET)
    for k, v in {**server.env(), "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)  # this process reads the bucket back with the same variables
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    env = dict(os.environ)
    path = write_spec(tmp_path, noop_spec("store-s3", f"s3://{BUCKET}/sweeps"))
    for args in (("sweep", "validate", str(path), "--json"), ("sweep", "run", str(path))):
        r = cli(*args, env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    uri = f"s3://{BUCKET}/sweeps/store-s3"
    r = cli("results", "summarize", uri, "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    check_sweep(uri, json.loads(r.stdout))
    assert not (tmp_path / "results").exists()  # all of it went to the bucket


def offline(name: str, tmp_path: Path, monkeypatch) -> None:
    """A backend without a local server: its scheme validates offline, and a store that does
    not answer is one line naming its endpoint, within the wait. It must take an endpoint
    (pointed at a closed loopback port here, so nothing leaves the machine); one that does not
    is run against a live store: name it in RUNS."""
    from typer.testing import CliRunner

    from dipddpm.cli import app
    from dipddpm.sweep.spec import parse_spec

    entry = STORAGE_BACKENDS.get(name)
    assert "endpoint_url" in entry.options, f"{name}: no endpoint to point at loopback; add " \
                                            f"it to RUNS with a live store"
    uri = f"{entry.schemes[0]}://bkt/sweeps"
    raw = noop_spec("store-off", uri,
                    storage_options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    assert parse_spec(raw).storage == uri
    monkeypatch.setenv("DIPDDPM_STORAGE_TIMEOUT", "2")
    t0 = time.monotonic()
    r = CliRunner().invoke(app, ["sweep", "validate", str(write_spec(tmp_path, raw))],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "127.0.0.1" in r.output, r.output
    assert time.monotonic() - t0 < 30


RUNS = {"local": on_local, "s3": on_s3}  # the entries a live store runs here for


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", STORAGE_BACKENDS.names())
def test_every_backend_holds_a_sweep_through_validate_run_and_summarize(
        name, request, tmp_path, monkeypatch):
    run = RUNS.get(name)
    if run is None:
        return offline(name, tmp_path, monkeypatch)
    run(tmp_path, request, monkeypatch)


# ---------------------------------------------------------------- a toy, registered here
@pytest.fixture
def toy(tmp_path):
    """`toyfs://bucket/...`: an fsspec filesystem (a local folder, written as an object store
    is: a file's folders come with it), seen through pyarrow as a remote store is (the runner
    hands Tune its filesystem), with no option it takes."""
    root = tmp_path / "store"
    (root / "bucket").mkdir(parents=True)

    def open_toy(uri, options):
        import pyarrow.fs as pafs
        from fsspec.implementations.dirfs import DirFileSystem
        from fsspec.implementations.local import LocalFileSystem

        fs = DirFileSystem(path=str(root), fs=LocalFileSystem(auto_mkdir=True))
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), uri[len("toyfs://"):]

    STORAGE_BACKENDS.register("toy")(Backend(("toyfs",), open_toy, "a test toy"))
    try:
        with shipped(__name__):
            yield root
    finally:
        STORAGE_BACKENDS.unregister("toy")
    assert "toy" not in STORAGE_BACKENDS


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_backend_holds_a_sweep_with_no_other_edit(toy, ray_local, tmp_path):
    spec = noop_spec("store-toy", "toyfs://bucket/sweeps")
    _, outcome, summary = through_everything(tmp_path, spec)
    check_sweep("toyfs://bucket/sweeps/store-toy", summary)
    sweep = toy / "bucket" / "sweeps" / "store-toy"
    assert list((sweep / "trials").glob("*.parquet")) and (sweep / "tune").is_dir()
    assert not (tmp_path / "results").exists()  # nothing went to a local default
