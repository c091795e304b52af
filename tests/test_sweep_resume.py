"""Kill the driver (SIGKILL) mid-sweep, then `resume`: no trial lost, none run twice, every
report kept once, the same Optuna study continued; a trial whose saved state names a checkpoint
Tune already replaced resumes from the newer one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = {
    "name": "killme", "method": "guided_dip", "preset": "tiny",
    "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
    "metric": "psnr_best", "mode": "max",
    "fixed": {"width": 8, "depth": 3, "input_depth": 4, "report_every": 5, "iters": 150,
              "stages": 2},
    "search": {"scheduler": {"choice": ["uniform", "uniform_equal", "exp_weighted"]},
               "lr": {"loguniform": [1e-3, 3e-2]}},
    "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 2},
    "scheduler": {"type": "none"},
    "num_samples": 4, "checkpoint_every": 10,
}


def checkpointed_trial(sweep: Path | str, fs=None):
    """An unfinished trial to which Tune's newest saved state gives a checkpoint, or None
    (`fs`: the pyarrow filesystem `sweep` is a path on, e.g. S3)."""
    from ray.tune import ExperimentAnalysis

    try:
        trials = ExperimentAnalysis(f"{sweep}/tune", storage_filesystem=fs).trials
    except Exception:  # no state yet, or caught mid-write
        return None
    return next((t for t in trials
                 if t.status not in ("TERMINATED", "ERROR") and t.checkpoint), None)


def files_settle(folder: Path, quiet_s: float = 2.0, limit_s: float = 60.0) -> None:
    """Wait until no file under `folder` is added, removed or changed for `quiet_s`."""
    def state():
        seen = set()
        for p in folder.rglob("*"):
            try:
                st = p.stat()
            except FileNotFoundError:  # removed while listed: the folder is still changing
                seen.add((str(p), -1, -1))
                continue
            seen.add((str(p), st.st_size, st.st_mtime_ns))
        return seen

    last, since, deadline = state(), time.time(), time.time() + limit_s
    while time.time() - since < quiet_s and time.time() < deadline:
        time.sleep(0.25)
        now = state()
        if now != last:
            last, since = now, time.time()


def kill_driver_at_a_checkpoint(spec_path: Path, sweep: Path, address: str,
                                log_path: Path) -> None:
    """Start `sweep run` on the cluster at `address`; SIGKILL the driver once a trial has
    finished and Tune's saved state names another one's checkpoint."""
    log = open(log_path, "w")
    driver = subprocess.Popen(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
         str(spec_path), "--address", address], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        if list((sweep / "trials").glob("part-*.parquet")) and checkpointed_trial(sweep):
            break
        time.sleep(0.2)
    assert driver.poll() is None, log_path.read_text()[-2000:]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()


def test_sigkill_driver_then_resume(ray_local, tmp_path):
    import optuna
    import pandas as pd

    spec_path = tmp_path / "killme.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "storage": str(tmp_path / "results")},
                                        sort_keys=False))
    sweep = tmp_path / "results" / "killme"
    address = ray_local.get_runtime_context().gcs_address
    kill_driver_at_a_checkpoint(spec_path, sweep, address, tmp_path / "driver.log")
    before = {p.name for p in (sweep / "trials").glob("part-*.parquet")}
    assert 1 <= len(before) < 4
    files_settle(sweep / "tune")  # the dead driver's trial actors are reaped, not writing
    # the race Tune leaves open: it deletes checkpoint k once k+1 arrives, but its state still
    # names k until the next snapshot. Kill "in between": k is gone, only k+1 is there.
    # (None only if a last snapshot, between the poll and the kill, saw the trial finish)
    trial = checkpointed_trial(sweep)
    if trial is not None:
        named = Path(trial.checkpoint.path)
        newer = named.with_name(f"checkpoint_{int(named.name.split('_')[1]) + 1:06d}")
        if named.exists():  # (a folder k+1 there now is one the killed worker left half-written)
            shutil.rmtree(newer, ignore_errors=True)
            named.rename(newer)
            # and of k, a part only (an object store deletes a folder object by object)
            named.mkdir()
            (named / "state.pt").write_bytes((newer / "state.pt").read_bytes()[:1000])
        import torch
        resume_iter = int(torch.load(newer / "state.pt", weights_only=True)["iter"])

    # the restored Tune callbacks print through THIS driver's console: --json stays pure JSON
    r = subprocess.run(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "resume",
         str(sweep), "--address", address, "--json"], capture_output=True, text=True,
        timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all(), trials[["trial_id", "status", "error"]]
    assert before <= {f"part-{t}.parquet" for t in trials["trial_id"]}
    if trial is not None:
        repaired = trials.set_index("trial_id").loc[trial.trial_id]
        assert repaired["resumed_from_iter"] == resume_iter > 0, (
            repaired[["resumed_from_iter", "retries"]].to_dict(), resume_iter, named.name,
            sorted(p.name for p in named.parent.iterdir()))
    assert out["trials"] == 4 and out["completed"] == 4
    # every report of every trial exactly once, none lost across the kill
    m = pd.read_parquet(sweep / "metrics")
    assert not m.duplicated(["trial_id", "iter", "metric"]).any()
    iters = m[m.metric == "psnr_best"].groupby("trial_id")["iter"].apply(sorted)
    assert all(v == list(range(5, 151, 5)) for v in iters), iters
    # the same study, continued: one finished Optuna trial per Tune trial, distinct configs
    study = optuna.load_study(study_name="killme", storage=f"sqlite:///{sweep}/optuna.db")
    real = [t for t in study.trials
            if "duplicate_of" not in t.user_attrs and "orphaned" not in t.user_attrs]
    assert {t.user_attrs["ray_trial_id"] for t in real} == set(trials["trial_id"])
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in real)
    assert len({json.dumps(t.params, sort_keys=True) for t in real}) == 4
    # the resumed sampler does not replay the first driver's suggestions
    assert not [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_resume_of_a_directory_that_is_not_a_sweep(tmp_path):
    from typer.testing import CliRunner

    from dipddpm.cli import app

    r = CliRunner().invoke(app, ["sweep", "resume", str(tmp_path)])
    assert r.exit_code == 2 and "not a sweep directory" in r.output
    assert not list(Path(tmp_path).iterdir())
