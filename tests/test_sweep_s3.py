"""Sweeps on S3, against moto's standalone S3 server on loopback (a real S3 API over HTTP):
`sweep run --storage s3://bucket/prefix` with Tune's checkpoints and the Optuna study there, a
SIGKILL of the driver then `sweep resume` (nothing lost or doubled), `sweep status`, `results
summarize` / `results report` from the s3:// URI, pandas and polars reading the Parquet
straight from the bucket; and the one-line errors of a bad bucket, credentials or endpoint.

The drivers are separate processes with their own embedded Ray, as a user runs them, so the
trials see the AWS_* variables the driver was started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import s3_server
import yaml
from test_sweep_resume import SPEC, checkpointed_trial

BUCKET = "bkt"
PREFIX = f"s3://{BUCKET}/sweeps"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = s3_server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    server.make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def aws_env(s3, monkeypatch, tmp_path):
    """This process and its children talk to the moto server (no ~/.aws of the machine)."""
    for k, v in {**s3.env(), "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    return dict(os.environ)


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from dipddpm.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def listing(fs, path: str) -> set[tuple]:
    import pyarrow.fs as pafs

    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return {(i.path, i.size, i.mtime_ns) for i in fs.get_file_info(sel)}


def settle(fs, path: str, quiet_s: float = 3.0, limit_s: float = 60.0) -> None:
    """Wait until nothing under `path` changes for `quiet_s` (the killed driver's Ray is
    gone, its trials no longer upload)."""
    last, since, deadline = listing(fs, path), time.time(), time.time() + limit_s
    while time.time() - since < quiet_s and time.time() < deadline:
        time.sleep(0.5)
        now = listing(fs, path)
        if now != last:
            last, since = now, time.time()


@pytest.mark.ray
@pytest.mark.slow
def test_s3_sweep_killed_resumed_and_read_back(aws_env, s3, tmp_path):
    import optuna
    import pandas as pd
    import polars as pl
    import pyarrow.fs as pafs

    from dipddpm.dataset.storage import resolve

    spec_path = tmp_path / "killme.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "storage": PREFIX}, sort_keys=False))
    uri = f"{PREFIX}/killme"
    sweep = resolve(uri)
    fs, path = sweep.fs, sweep.path  # bkt/sweeps/killme on the moto server
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
         str(spec_path)], stdout=log, stderr=subprocess.STDOUT, env=aws_env)
    deadline = time.time() + 400
    while time.time() < deadline and driver.poll() is None:
        trials_files = [p for p, _, _ in listing(fs, f"{path}/trials")]
        if trials_files and checkpointed_trial(path, fs):
            break
        time.sleep(0.5)
    assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    settle(fs, f"{path}/tune")
    before = {p.rsplit("/", 1)[-1] for p, _, _ in listing(fs, f"{path}/trials")}
    assert 1 <= len(before) < 4
    assert not Path(path).exists() and not (tmp_path / "results").exists()  # all on S3

    r = cli("sweep", "resume", uri, "--json", env=aws_env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    tune_dirs = sorted(p.split("/tune/")[1].split("/")[0] for p, _, _ in
                       listing(fs, f"{path}/tune"))
    assert out["trials"] == 4 and out["completed"] == 4 and out["path"] == uri, (
        out, before, sorted(set(tune_dirs)), r.stderr[-4000:],
        (tmp_path / "driver.log").read_text()[-3000:])

    # pandas (through pyarrow's S3 filesystem) and polars (its own S3 client, the same
    # AWS_* variables) read the Parquet straight from the bucket
    trials = pd.read_parquet(f"{path}/trials", filesystem=fs)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all(), trials[["trial_id", "status", "error"]]
    assert before <= {f"part-{t}.parquet" for t in trials["trial_id"]}
    assert pl.read_parquet(f"{uri}/trials/*.parquet").height == 4
    m = pl.read_parquet(f"{uri}/metrics/*.parquet").to_pandas()
    assert not m.duplicated(["trial_id", "iter", "metric"]).any()
    iters = m[m.metric == "psnr_best"].groupby("trial_id")["iter"].apply(sorted)
    assert all(v == list(range(5, 151, 5)) for v in iters), iters  # every report once
    for rel in trials["artifact_output"]:
        assert fs.get_file_info(f"{path}/{rel}").type == pafs.FileType.File
    # Tune's checkpoints went to the bucket too
    assert any("/checkpoint_" in p for p, _, _ in listing(fs, f"{path}/tune"))

    # the study was published there: one finished Optuna trial per Tune trial, no copies
    db = tmp_path / "optuna.db"
    with fs.open_input_stream(f"{path}/optuna.db") as f:
        db.write_bytes(f.read())
    study = optuna.load_study(study_name="killme", storage=f"sqlite:///{db}")
    real = [t for t in study.trials if "orphaned" not in t.user_attrs]
    assert {t.user_attrs["ray_trial_id"] for t in real} == set(trials["trial_id"])
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in real)
    assert not [t for t in study.trials if "duplicate_of" in t.user_attrs]

    st = cli("sweep", "status", uri, "--json", env=aws_env)
    assert st.returncode == 0, st.stderr
    st = json.loads(st.stdout)
    assert st["trials"] == 4 and st["completed"] == 4 and st["resumable"]
    assert st["study"]["COMPLETE"] == 4

    s = cli("results", "summarize", uri, "--json", env=aws_env)
    assert s.returncode == 0, s.stderr
    s = json.loads(s.stdout)
    assert s["path"] == uri and s["counts"]["COMPLETED"] == 4
    assert s["top"][0]["trial_id"] in set(trials["trial_id"])
    html = tmp_path / "report.html"
    rep = cli("results", "report", uri, "--out", str(html), env=aws_env)
    assert rep.returncode == 0, rep.stderr
    page = html.read_text()
    assert uri in page or "killme" in page
    assert page.count("data:image/png") >= 3  # the problem images and trial outputs came too


def run_bad(uri: str, monkeypatch, spec_path: Path) -> tuple[int, str]:
    """`sweep run` in this process, with Ray's start replaced by a failure."""
    from typer.testing import CliRunner

    import dipddpm.cluster.local_ray as local_ray
    from dipddpm.cli import app

    def no_ray(*a, **k):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(local_ray, "ray_session", no_ray)
    r = CliRunner().invoke(app, ["sweep", "run", str(spec_path), "--storage", uri])
    return r.exit_code, r.output


@pytest.mark.slow
def test_s3_bad_bucket_credentials_endpoint_one_line_each(aws_env, s3, tmp_path, monkeypatch):
    from dipddpm.dataset.storage import resolve

    spec_path = tmp_path / "bad.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "name": "bad"}, sort_keys=False))
    s3.make_bucket("clean")  # a bucket no other test writes to
    prefix = "s3://clean/sweeps"
    bucket = resolve(prefix)

    def nothing_written():
        return not listing(bucket.fs, "clean")

    assert nothing_written()
    code, out = run_bad("s3://nobucket/sweeps", monkeypatch, spec_path)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "s3://nobucket/sweeps" in out and "bucket 'nobucket' does not exist" in out

    for uri in ("s3://", "s3:///sweeps"):
        code, out = run_bad(uri, monkeypatch, spec_path)
        assert code == 2 and len(out.strip().splitlines()) == 1, out
        assert "no bucket in the URI" in out and uri in out

    down = f"http://{s3_server.HOST}:{s3_server.free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)
    code, out = run_bad(prefix, monkeypatch, spec_path)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert f"cannot reach the endpoint {down}" in out and prefix in out

    # a server that checks signatures: every key is unknown to it, or there is none at all
    strict = s3_server.start(tmp_path / "moto-auth.log", auth=True)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", strict.endpoint)
        code, out = run_bad(prefix, monkeypatch, spec_path)
        assert code == 2 and len(out.strip().splitlines()) == 1, out
        assert "credentials were refused" in out and prefix in out
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        code, out = run_bad(prefix, monkeypatch, spec_path)
        assert code == 2 and len(out.strip().splitlines()) == 1, out
        assert "no AWS credentials found" in out and prefix in out
    finally:
        strict.stop()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert nothing_written()


def test_storage_options_in_the_spec_set_the_endpoint(aws_env, s3, tmp_path, monkeypatch):
    """MinIO / Ceph users put the endpoint in the spec; it beats the environment's."""
    from dipddpm.errors import ConfigError
    from dipddpm.sweep.runner import prepare
    from dipddpm.sweep.spec import load_spec

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_server.HOST}:{s3_server.free_port()}")
    spec_path = tmp_path / "opts.yaml"
    spec_path.write_text(yaml.safe_dump(
        {**SPEC, "name": "opts", "storage": PREFIX,
         "storage_options": {"endpoint_url": s3.endpoint, "region": "us-east-1"}}))
    sweep = prepare(load_spec(spec_path))  # the probe reached moto through the spec's endpoint
    assert sweep.uri == f"{PREFIX}/opts"
    sweep.child("x.txt").write_text("hi")
    assert sweep.child("x.txt").read_text() == "hi"
    sweep.fs.delete_file(sweep.child("x.txt").path)
    bad = yaml.safe_load(spec_path.read_text())
    bad["storage_options"] = {"endpoint": s3.endpoint}
    spec_path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="storage_options.endpoint: unknown key"):
        load_spec(spec_path)
