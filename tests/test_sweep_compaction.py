"""Compaction in a real sweep: at its end the part files become compact files and driver.json
says ended; a resume afterwards neither loses nor doubles a row; a driver killed mid-sweep,
compacted (finished trials only), then resumed, ends with every trial and report once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def spec(tmp_path, name: str, n: int, sleep_s: float, concurrent: int = 2) -> Path:
    d = {"name": name, "method": "noop", "problem": {}, "metric": "score", "mode": "max",
         "fixed": {"iters": 12, "report_every": 1, "sleep_s": sleep_s},
         "search": {"x": {"uniform": [0.0, 1.0]}},
         "searcher": {"type": "optuna", "sampler": "random", "seed": 0,
                      "max_concurrent": concurrent},
         "scheduler": {"type": "none"}, "resources": {"cpu": 0.5, "gpu": 0},
         "num_samples": n, "checkpoint_every": 3, "storage": str(tmp_path / "results")}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def tables(sweep: Path):
    import pandas as pd

    return pd.read_parquet(sweep / "trials"), pd.read_parquet(sweep / "metrics")


def files(sweep: Path, sub: str) -> list[str]:
    from dipddpm.dataset.compaction import data_files

    return [p.name for p in data_files(sweep / sub)]


def check_every_report_once(trials, metrics) -> None:
    assert trials["trial_id"].is_unique and (trials["status"] == "COMPLETED").all()
    assert not metrics.duplicated(["trial_id", "iter", "metric"]).any()
    iters = metrics[metrics.metric == "score"].groupby("trial_id")["iter"].apply(sorted)
    assert set(iters.index) == set(trials["trial_id"])
    assert all(v == list(range(1, 13)) for v in iters), iters


def test_a_sweep_compacts_at_its_end_and_resumes_unchanged(ray_local, tmp_path):
    from dipddpm.dataset.lifecycle import driver_state
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import resume_sweep, run_sweep

    quiet = SweepConsole("score", "max", quiet=True)
    out = run_sweep(spec(tmp_path, "ends", 6, 0.0), console=quiet)
    sweep = Path(out.path)
    assert files(sweep, "trials") == files(sweep, "metrics") == ["compact-00000.parquet"]
    assert driver_state(str(sweep)) == "ended"
    trials, metrics = tables(sweep)
    assert len(trials) == 6
    check_every_report_once(trials, metrics)
    again = resume_sweep(str(sweep), console=quiet)
    assert len(again.rows) == 6
    t2, m2 = tables(sweep)
    assert files(sweep, "trials") == ["compact-00000.parquet"]
    assert t2.sort_values("trial_id").reset_index(drop=True).equals(
        trials.sort_values("trial_id").reset_index(drop=True))
    assert len(m2) == len(metrics)


def test_kill_compact_resume(ray_local, tmp_path):
    """SIGKILL the driver once some trials are written; `results compact` folds the finished
    ones (unfinished trials keep their part files); `sweep resume` finishes the sweep."""
    from dipddpm.dataset.lifecycle import driver_state

    path = spec(tmp_path, "killc", 6, 0.25)
    sweep = tmp_path / "results" / "killc"
    address = ray_local.get_runtime_context().gcs_address
    cli = [sys.executable, "-c", "from dipddpm.cli import main; main()"]
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([*cli, "sweep", "run", str(path), "--address", address],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        if len(list((sweep / "trials").glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.1)
    assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-2000:]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)  # the dead driver's trial actors are reaped
    assert driver_state(str(sweep)) == "stopped"
    r = subprocess.run([*cli, "results", "compact", str(sweep)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "compact-00000.parquet" in files(sweep, "trials") or "already" in r.stdout
    r = subprocess.run([*cli, "sweep", "resume", str(sweep), "--address", address, "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    trials, metrics = tables(sweep)
    assert len(trials) == 6
    check_every_report_once(trials, metrics)
    assert files(sweep, "trials") == files(sweep, "metrics") == ["compact-00000.parquet"]
    assert driver_state(str(sweep)) == "ended"
