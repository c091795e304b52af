"""A real multi-node Ray cluster on this machine (cluster/local-cluster.sh: a head and two
workers on 127.0.0.41-43, one CPU each): doctor sees every node, the storage check names a
node that cannot see the storage, `sweep run --address` stops before any trial when only one
node reaches the storage, a smoke sweep with --address spreads trials over nodes, and a sweep
survives a worker whose raylet is killed mid-run (its trial restarts from its checkpoint on
another node; Parquet holds every trial and iteration exactly once).

local-cluster.sh runs each node in its own directory ($LOCAL_CLUSTER_DIR/<node>), so a path
through /proc/self/cwd names a different directory on each node: storage one node reaches.

Drivers run as `dipddpm` subprocesses: this pytest process may hold the session's embedded
Ray (`ray_local`), and one process joins one Ray. The cluster is stopped at the end, by the
PIDs the script recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "local-cluster.sh"
BIN = Path(sys.executable).parent
HEAD, W1, W2 = "127.0.0.41", "127.0.0.42", "127.0.0.43"


@dataclass
class Loopback:
    dir: Path
    env: dict  # environment of a driver: RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
    pids: dict  # node name -> pid of its `ray start --block` (leader of its process group)

    def run(self, *args, timeout=300, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "dipddpm"), *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def loopback():
    if shutil.which("setsid") is None or not (BIN / "ray").exists():
        pytest.skip("needs setsid and the ray command")
    d = Path(tempfile.mkdtemp(prefix="dlc", dir="/tmp"))  # short: Ray's socket paths live here
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_") or k == "RAY_DEDUP_LOGS"}
    env.update(LOCAL_CLUSTER_DIR=str(d), LOCAL_CLUSTER_IP_BASE="41", RAY=str(BIN / "ray"),
               PATH=f"{BIN}:{env.get('PATH', '')}")
    try:
        up = subprocess.run([str(SCRIPT), "up", "--workers", "2", "--head-cpus", "1",
                             "--worker-cpus", "1"], env=env, capture_output=True, text=True,
                            timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        for line in (d / "env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        pids = {ln.split()[0]: int(ln.split()[3]) for ln in (d / "nodes").read_text().splitlines()}
        yield Loopback(d, env, pids)
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True,
                              timeout=180)
        assert down.returncode == 0, down.stderr
        shutil.rmtree(d, ignore_errors=True)


def write_spec(path: Path, name: str, iters: int, size: int, width: int, samples: int,
               smoke: dict | None = None, image: str = "skimage:astronaut") -> Path:
    spec = {"name": name, "method": "dip", "metric": "psnr_best",
            "problem": {"image": image, "size": size, "sigma": 25, "seed": 0},
            "fixed": {"iters": iters, "width": width, "depth": 2, "input_depth": 4,
                      "report_every": 10},
            "search": {"lr": {"loguniform": [0.001, 0.01]}},
            "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 3},
            "scheduler": {"type": "none"}, "resources": {"cpu": 1, "gpu": 0},
            "num_samples": samples, "checkpoint_every": 50, "max_failures": 2}
    if smoke:
        spec["smoke"] = smoke
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def read(sweep: Path, table: str):
    import pandas as pd

    return pd.read_parquet(sweep / table)


def write_png(path: Path) -> Path:
    import skimage.data
    import skimage.io

    skimage.io.imsave(path, skimage.data.astronaut()[::8, ::8], check_contrast=False)
    return path


def test_doctor_sees_every_node_and_the_shared_storage(loopback, tmp_path):
    image = write_png(tmp_path / "photo.png")
    spec = write_spec(tmp_path / "s.yaml", "doc", 20, 32, 8, 3, image=str(image))
    res = loopback.run("cluster", "doctor", spec, "--address", "auto", "--json",
                       "--storage", tmp_path / "store")
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr
    assert {n["ip"] for n in report["nodes"] if n["alive"]} == {HEAD, W1, W2}
    assert report["cpus"] == 3 and report["spec"]["fit"] == 3
    assert report["spec"]["per_node"] == {HEAD: 1, W1: 1, W2: 1}
    assert report["inputs"] == {"files": [str(image)], "missing": {}}
    assert sorted(report["storage"]["nodes"]) == [HEAD, W1, W2]


def test_doctor_flags_an_image_path_only_the_driver_resolves(loopback, tmp_path):
    """A relative image path resolves against the driver's directory when the spec is
    loaded, but trials open it from the Ray worker's directory on their node."""
    write_png(tmp_path / "photo.png")
    spec = write_spec(tmp_path / "s.yaml", "doc", 20, 32, 8, 3, image="photo.png")
    res = loopback.run("cluster", "doctor", spec, "--address", "auto", "--json",
                       cwd=tmp_path)
    report = json.loads(res.stdout)
    assert res.returncode == 1, res.stderr
    assert report["spec"]["schedulable"] and report["ok"] is False
    assert report["inputs"]["missing"] == {HEAD: "photo.png", W1: "photo.png",
                                           W2: "photo.png"}


def test_storage_check_names_the_node_that_cannot_reach_it(loopback, tmp_path):
    """One worker sees the storage path as a directory of its own (a per-node disk)."""
    code = textwrap.dedent(f"""
        import json, ray
        from dipddpm.errors import DipddpmError
        from dipddpm.cluster.doctor import check_storage_on_all_nodes
        ray.init(address="auto", log_to_driver=False)
        view = lambda uri, ip: uri.replace("/shared", "/local-" + ip) if ip == "{W1}" else uri
        try:
            check_storage_on_all_nodes("{tmp_path}/shared/sweep", view=view, timeout_s=60)
            print(json.dumps({{"error": None}}))
        except DipddpmError as e:
            print(json.dumps({{"error": str(e)}}))
    """)
    res = subprocess.run([sys.executable, "-c", code], env=loopback.env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    error = json.loads(res.stdout.strip().splitlines()[-1])["error"]
    assert error and "1 of 3 node(s) cannot use it" in error
    assert f"{W1} (" in error and f"{HEAD} (" not in error and f"{W2} (" not in error
    assert f"local-{W1}" in error and "FileNotFoundError" in error
    assert not (tmp_path / "shared").exists()  # the check leaves nothing behind


def test_sweep_run_stops_before_any_trial_when_only_the_head_reaches_the_storage(
        loopback, tmp_path):
    """The driver runs in the head node's directory and stores under /proc/self/cwd/store: the
    driver and the head see one directory, each worker its own (as with a per-node disk)."""
    head_dir = loopback.dir / "head"
    spec = write_spec(tmp_path / "s.yaml", "unshared", 20, 32, 8, 3)
    res = loopback.run("sweep", "run", spec, "--address", "auto",
                       "--storage", "/proc/self/cwd/store", cwd=head_dir, timeout=180)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-2000:]  # one line (Ray's own log lines aside)
    (error,) = errors
    assert "/proc/self/cwd/store/unshared is not shared by every node" in error
    assert "2 of 3 node(s) cannot use it" in error and "FileNotFoundError" in error
    assert f"{W1} (" in error and f"{W2} (" in error and f"{HEAD} (" not in error
    # stopped before any trial: no sweep directory (no trials/ Parquet, no tune/) on any node
    assert not any((loopback.dir / node / "store").exists() for node in loopback.pids)


@dataclass
class FaultSweep:
    rc: int
    log: str
    sweep: Path
    budget: int
    samples: int


def later_checkpoints(sweep: Path) -> set[str]:
    """Tune trial dirs holding a checkpoint after their first (checkpoint_000001 or later):
    the first checkpoint was reported long before, so Tune has registered one to restore."""
    return {p.parent.name for p in (sweep / "tune").glob("*/checkpoint_*")
            if p.name.rsplit("_", 1)[-1].isdigit() and int(p.name.rsplit("_", 1)[-1]) >= 1}


@pytest.fixture(scope="module")
def fault_sweep(loopback, tmp_path_factory) -> FaultSweep:
    """A smoke sweep with --address: three one-CPU trials at once on three one-CPU nodes, so
    exactly one runs on each node; once each has a registered checkpoint (and none has
    finished), worker1's raylet is SIGKILLed."""
    import psutil

    from dipddpm.sweep.spec import load_spec

    tmp = tmp_path_factory.mktemp("fault")
    budget, samples = 600, 3  # long enough that no trial ends before all hold checkpoints
    spec = write_spec(tmp / "s.yaml", "fault", 2000, 64, 16, 6,
                      smoke={"num_samples": samples, "problem": {"size": 32},
                             "fixed": {"iters": budget, "width": 8}, "checkpoint_every": 30})
    sweep = tmp / "store" / load_spec(spec, smoke=True).name  # the smoke variant's own name
    with open(tmp / "driver.log", "w") as log:
        driver = subprocess.Popen([str(BIN / "dipddpm"), "sweep", "run", str(spec), "--smoke",
                                   "--address", "auto", "--storage", str(tmp / "store")],
                                  env=loopback.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline, ready = time.time() + 240, False
            while time.time() < deadline and driver.poll() is None and not ready:
                time.sleep(0.2)
                ready = len(later_checkpoints(sweep)) >= samples
            finished = list((sweep / "trials").glob("*.parquet"))
            assert ready and not finished and driver.poll() is None, (
                "the three trials were not all running with a checkpoint at once; "
                + (tmp / "driver.log").read_text()[-3000:])
            group = loopback.pids["worker1"]
            raylets = [p for p in psutil.process_iter(["name"])
                       if p.info["name"] == "raylet" and _pgid(p.pid) == group]
            assert len(raylets) == 1
            raylets[0].send_signal(signal.SIGKILL)
            rc = driver.wait(timeout=420)
        finally:
            if driver.poll() is None:
                driver.kill()
    return FaultSweep(rc, (tmp / "driver.log").read_text(), sweep, budget, samples)


def test_smoke_sweep_with_address_runs_trials_on_several_nodes(fault_sweep):
    assert fault_sweep.rc == 0, fault_sweep.log[-4000:]
    trials = read(fault_sweep.sweep, "trials")
    assert set(trials["node_ip"]) <= {HEAD, W1, W2}
    assert trials["node_ip"].nunique() >= 2, trials[["trial_id", "node_ip"]]


def test_sweep_survives_a_worker_raylet_killed_mid_run(fault_sweep, loopback):
    fs = fault_sweep
    assert fs.rc == 0, fs.log[-4000:]
    trials = read(fs.sweep, "trials")
    assert len(trials) == fs.samples and trials["trial_id"].is_unique  # nothing lost/doubled
    assert set(trials["status"]) == {"COMPLETED"}, trials[["trial_id", "status", "error"]]
    assert set(trials["iters_done"]) == {fs.budget}
    # exactly one trial ran on worker1 (one per node): it, and only it, restarted, and from
    # its checkpoint (resumed_from_iter > 0, a checkpoint iteration), not from scratch
    cols = ["trial_id", "node_ip", "retries", "resumed_from_iter"]
    moved = trials[trials["retries"] >= 1]
    assert len(moved) == 1, trials[cols]
    (resumed,) = moved["resumed_from_iter"]
    assert resumed > 0 and resumed % 30 == 0, trials[cols]  # smoke: checkpoint_every 30
    assert W1 not in set(moved["node_ip"])  # it finished on a node that is still alive
    stayed = trials[trials["retries"] == 0]
    assert set(stayed["resumed_from_iter"]) == {0}, trials[cols]
    # every report of every trial exactly once: no duplicate and no gap, also across the
    # restart (the reports between the checkpoint and the kill are not counted twice)
    metrics = read(fs.sweep, "metrics")
    assert not metrics.duplicated(["trial_id", "iter", "metric"]).any()
    every_report = list(range(10, fs.budget + 1, 10))
    for tid in trials["trial_id"]:
        mine = metrics[metrics.trial_id == tid]
        assert sorted(set(mine.iter)) == every_report, tid
        assert sorted(mine[mine.metric == "psnr_gt"].iter) == every_report, tid
    status = subprocess.run([str(SCRIPT), "status"], env=loopback.env, capture_output=True,
                            text=True)
    assert "worker1" in status.stdout and "DOWN" in status.stdout


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_client_without_the_token_gets_one_line(loopback, tmp_path):
    """A driver lacking the cluster's token (or holding another) is told so in one line, with
    the fix, and Ray's per-retry gcs_client warnings are held back."""
    bare = {k: v for k, v in loopback.env.items() if k not in ("RAY_AUTH_MODE",
                                                               "RAY_AUTH_TOKEN_PATH")}
    other = tmp_path / "other_token"
    other.write_text("0" * 64 + "\n")
    other.chmod(0o600)
    wrong = {**loopback.env, "RAY_AUTH_TOKEN_PATH": str(other)}
    for env in (bare, wrong):
        res = subprocess.run([str(BIN / "dipddpm"), "cluster", "doctor", "--address",
                              loopback.env["RAY_ADDRESS"]], env=env, capture_output=True,
                             text=True, timeout=180)
        assert res.returncode == 2, res.stdout + res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "gcs_client" not in res.stderr, res.stderr
        assert "requires its authentication token" in lines[0]
        assert "RAY_AUTH_TOKEN_PATH" in lines[0] and "local-cluster.sh env" in lines[0]
