"""Two drivers on one sweep directory: the second is refused in one line naming the first
(host, pid, since when), and the first's 3-trial sweep ends with exactly 3 trials. A driver
killed with SIGKILL leaves its lock behind; `sweep resume` takes it over and finishes the sweep
with every trial once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CLI = [sys.executable, "-c", "from dipddpm.cli import main; main()"]


def spec(tmp_path: Path, name: str) -> Path:
    d = {"name": name, "method": "noop", "problem": {}, "metric": "score", "mode": "max",
         "fixed": {"iters": 12, "report_every": 1, "sleep_s": 0.25},
         "search": {"x": {"uniform": [0.0, 1.0]}},
         "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "max_concurrent": 2},
         "scheduler": {"type": "none"}, "resources": {"cpu": 0.5, "gpu": 0},
         "num_samples": 3, "checkpoint_every": 3, "storage": str(tmp_path / "results")}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def start_driver(path: Path, address: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "sweep", "run", str(path), "--address", address],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(cond, driver: subprocess.Popen, log: Path, limit_s: float = 240) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline and driver.poll() is None and not cond():
        time.sleep(0.1)
    assert driver.poll() is None and cond(), log.read_text()[-3000:]


def one_line_error(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    return lines[0]


def test_a_second_driver_is_refused_and_the_first_ends_with_its_trials(ray_local, tmp_path):
    import pandas as pd

    path, sweep = spec(tmp_path, "two"), tmp_path / "results" / "two"
    address = ray_local.get_runtime_context().gcs_address
    log = tmp_path / "first.log"
    first = start_driver(path, address, log)
    try:
        wait_for(lambda: (sweep / "driver.lock").is_file()
                 and (sweep / "spec.resolved.yaml").is_file(), first, log)
        since = json.loads((sweep / "driver.lock").read_text())["started_at"]
        holder = f"held by driver pid {first.pid} on {socket.gethostname()}, since {since}"
        for args in (["sweep", "run", str(path), "--address", address],
                     ["sweep", "run", str(path), "--resume"],
                     ["sweep", "resume", str(sweep)]):
            r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
            assert holder in one_line_error(r), args
        st = json.loads(subprocess.run([*CLI, "sweep", "status", str(sweep), "--json"],
                                       capture_output=True, text=True).stdout)
        assert st["state"] == "running" and f"pid {first.pid}" in st["holder"]
        assert first.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 3 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all()
    assert not (sweep / "driver.lock").exists()  # released at the end


def test_a_killed_drivers_lock_is_taken_over_by_resume(ray_local, tmp_path):
    import pandas as pd

    path, sweep = spec(tmp_path, "stale"), tmp_path / "results" / "stale"
    address = ray_local.get_runtime_context().gcs_address
    log = tmp_path / "killed.log"
    driver = start_driver(path, address, log)
    wait_for(lambda: len(list((sweep / "trials").glob("part-*.parquet"))) >= 1, driver, log)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)  # the dead driver's trial actors are reaped
    assert json.loads((sweep / "driver.lock").read_text())["pid"] == driver.pid  # left behind
    r = subprocess.run([*CLI, "sweep", "resume", str(sweep), "--address", address],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    said = " ".join(r.stdout.split())  # (the console wraps long lines)
    assert f"took over the lock of {sweep} from driver pid {driver.pid}" in said
    assert f"pid {driver.pid} is not running" in said
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 3 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all()
    assert not (sweep / "driver.lock").exists()
