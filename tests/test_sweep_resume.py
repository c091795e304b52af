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


# --- a finished sweep whose tune/ is gone: nothing doubled, nothing deleted -------------------
NOOP = {"method": "noop", "problem": {}, "metric": "score", "mode": "max",
        "fixed": {"iters": 6, "report_every": 1},
        "search": {"x": {"uniform": [0.0, 1.0]}},
        "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "max_concurrent": 2},
        "scheduler": {"type": "none"}, "resources": {"cpu": 0.5, "gpu": 0},
        "num_samples": 3, "checkpoint_every": 3}


@pytest.fixture(scope="module", params=["compacted", "parts"])
def finished_sweep(request, ray_local, tmp_path_factory):
    """A finished 3-trial noop sweep: its trials in compact-*.parquet files (the default) or
    left in part-*.parquet files (`compact: false`)."""
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    root = tmp_path_factory.mktemp(request.param)
    spec = {"name": "done", **NOOP, "compact": request.param == "compacted",
            "storage": str(root / "results")}
    (root / "done.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = run_sweep(root / "done.yaml", console=SweepConsole("score", "max", quiet=True))
    assert len(out.rows) == 3
    layout = "compact-" if request.param == "compacted" else "part-"
    assert all(p.name.startswith(layout) for p in Path(out.path, "trials").iterdir())
    return Path(out.path), root / "done.yaml"


def copy_of(finished_sweep, tmp_path: Path) -> Path:
    d = tmp_path / "results" / "done"  # the same name under another storage
    shutil.copytree(finished_sweep[0], d)
    return d


def snapshot(sweep: Path) -> dict[str, bytes]:
    """Every file of the sweep but Tune's own, by relative path, with its bytes."""
    return {str(p.relative_to(sweep)): p.read_bytes() for p in sweep.rglob("*")
            if p.is_file() and "tune" not in p.relative_to(sweep).parts}


def cli_in_process(*args: str):
    from typer.testing import CliRunner

    from dipddpm.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("driver_json", ["kept", "removed"])
def test_resume_of_a_finished_sweep_without_tune_changes_nothing(finished_sweep, tmp_path,
                                                                   driver_json):
    """Issue 20: `sweep resume` on a finished sweep whose tune/ was deleted ran the sweep again
    (12 trials became 24; with part files, the 12 were deleted and 12 new ones ran). Now it is
    a no-op that says so: exit 0, every file byte for byte as it was. Without driver.json too
    (a sweep synced without it): every trial it asks for has a row."""
    import pandas as pd

    sweep = copy_of(finished_sweep, tmp_path)
    shutil.rmtree(sweep / "tune")
    if driver_json == "removed":
        (sweep / "driver.json").unlink()
    before, rows = snapshot(sweep), pd.read_parquet(sweep / "trials")
    for args in (["sweep", "resume", str(sweep)], ["sweep", "resume", str(sweep), "--json"]):
        r = cli_in_process(*args)
        assert r.exit_code == 0, r.output
        assert snapshot(sweep) == before
    assert json.loads(r.stdout)["already_finished"] is True
    r = cli_in_process("sweep", "resume", str(sweep))
    assert f"sweep {sweep} is finished" in r.stdout and "nothing changed" in r.stdout
    assert pd.read_parquet(sweep / "trials").equals(rows) and len(rows) == 3
    assert not (sweep / "tune").exists()


def test_resume_of_a_finished_sweep_whose_driver_never_said_so_changes_nothing(
        finished_sweep, tmp_path):
    """Killed after its last trial, before driver.json said `ended`: Tune's saved state holds
    every trial, all ended. A no-op too, without starting Ray."""
    sweep = copy_of(finished_sweep, tmp_path)
    driver = json.loads((sweep / "driver.json").read_text())
    (sweep / "driver.json").write_text(json.dumps({**driver, "state": "running",
                                                   "pid": 2**22 + 1}))  # no such process
    before = snapshot(sweep)
    r = cli_in_process("sweep", "resume", str(sweep))
    assert r.exit_code == 0, r.output
    assert "all 3 trials of Tune's saved state ended" in " ".join(r.stdout.split())
    assert snapshot(sweep) == before


def test_run_again_of_a_finished_sweep_without_tune_changes_nothing(finished_sweep, tmp_path):
    """`sweep run` of the same spec over it (the other way into a fresh Tuner): a no-op too."""
    sweep = copy_of(finished_sweep, tmp_path)
    shutil.rmtree(sweep / "tune")
    spec = yaml.safe_load(finished_sweep[1].read_text())
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump({**spec, "storage": str(sweep.parent)}))
    before = snapshot(sweep)
    for resume in ([], ["--resume"]):
        r = cli_in_process("sweep", "run", str(path), *resume)
        assert r.exit_code == 0 and "is finished" in r.stdout, r.output
        assert snapshot(sweep) == before


def test_resume_without_tune_and_trials_left_is_refused(finished_sweep, tmp_path):
    """tune/ gone and one of the 3 trials never ended (its row absent): a fresh Tuner would
    run the 2 again. Refused in one line naming what is missing and what to do; nothing
    written."""
    from dipddpm.dataset.parquet import written_trials

    sweep = copy_of(finished_sweep, tmp_path)
    shutil.rmtree(sweep / "tune")
    (sweep / "driver.json").unlink()
    parts = sorted((sweep / "trials").glob("part-*.parquet"))
    if parts:
        parts[0].unlink()
    else:  # compacted: the file holds 2 of the 3 rows
        import pyarrow.parquet as pq

        f = sweep / "trials" / "compact-00000.parquet"
        pq.write_table(pq.read_table(f).slice(0, 2), f)
    assert len(written_trials(str(sweep))) == 2
    before = snapshot(sweep)
    for args in (["sweep", "resume", str(sweep)], ["sweep", "resume", str(sweep),
                                                   "--drop-orphans"]):
        r = cli_in_process(*args)
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.output
        assert f"{sweep}/tune is missing" in lines[0]
        assert "2 of the sweep's 3 trials ended" in lines[0]
        assert "Put the tune/ folder back" in lines[0] and "results summarize" in lines[0]
        assert snapshot(sweep) == before


@pytest.mark.parametrize("finished_sweep", ["parts"], indirect=True)  # compaction folds only
def test_orphans_are_dropped_only_when_asked_and_each_is_listed(finished_sweep, tmp_path):
    """A trial with a row that Tune's saved state does not know (it ended after the last
    save, before the driver was killed): a resume is refused naming it; --drop-orphans
    deletes its files, says each, and the sweep ends with its 3 trials, the others' files
    unchanged."""
    sweep = copy_of(finished_sweep, tmp_path)  # (trials Tune knows: never an orphan)
    driver = json.loads((sweep / "driver.json").read_text())
    (sweep / "driver.json").write_text(json.dumps({**driver, "state": "stopped"}))
    kept = snapshot(sweep)
    src = sorted((sweep / "trials").glob("part-*.parquet"))[0]
    tid = src.name[len("part-"):-len(".parquet")]
    orphan = "0rphan00"
    for sub in ("trials", "metrics"):
        (sweep / sub / f"part-{orphan}.parquet").write_bytes(
            (sweep / sub / f"part-{tid}.parquet").read_bytes())
    (sweep / "artifacts" / orphan).mkdir(parents=True)
    (sweep / "artifacts" / orphan / "output.png").write_bytes(b"png")
    before = snapshot(sweep)
    r = cli_in_process("sweep", "resume", str(sweep))
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert orphan in r.stderr and "--drop-orphans" in r.stderr
    assert snapshot(sweep) == before
    r = cli_in_process("sweep", "resume", str(sweep), "--drop-orphans", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert sorted(out["dropped"]) == sorted([
        f"{sweep}/trials/part-{orphan}.parquet", f"{sweep}/metrics/part-{orphan}.parquet",
        f"{sweep}/artifacts/{orphan}/"])
    assert out["trials"] == 3 and out["completed"] == 3
    after = snapshot(sweep)
    assert {k: v for k, v in after.items() if k.startswith(("trials", "metrics"))} == {
        k: v for k, v in kept.items() if k.startswith(("trials", "metrics"))}


def test_a_copied_sweep_keeps_its_name_for_status_and_resume(ray_local, tmp_path):
    """Issue 20: a sweep directory copied under another name made `sweep status` fail with
    KeyError 'Record does not exist.' (the Optuna study was looked up by the directory's name),
    and a resume would have started a second study named after the directory. The sweep's name
    is the one it ran under (spec.resolved.yaml): its study, every row's `sweep`. The copy's
    resume writes into the copy only; the original is left as it was."""
    import optuna
    import pandas as pd

    spec = {"name": "orig", **NOOP, "fixed": {"iters": 12, "report_every": 1, "sleep_s": 0.25},
            "storage": str(tmp_path / "results")}
    path = tmp_path / "orig.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    orig, copy = tmp_path / "results" / "orig", tmp_path / "elsewhere" / "renamed"
    address = ray_local.get_runtime_context().gcs_address
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
         str(path), "--address", address], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        if list((orig / "trials").glob("part-*.parquet")):
            break
        time.sleep(0.1)
    assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-2000:]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    files_settle(orig)
    shutil.copytree(orig, copy)
    before = snapshot(orig)

    st = cli_in_process("sweep", "status", str(copy), "--json")
    assert st.exit_code == 0, st.output
    status = json.loads(st.stdout)
    assert status["name"] == "orig" and status["study"] and status["trials"] >= 1
    r = cli_in_process("sweep", "resume", str(copy), "--json")
    assert r.exit_code == 0, r.output
    trials = pd.read_parquet(copy / "trials")
    assert len(trials) == 3 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all() and set(trials["sweep"]) == {"orig"}
    storage = f"sqlite:///{copy}/optuna.db"
    assert optuna.get_all_study_names(storage) == ["orig"]
    done = [t for t in optuna.load_study(study_name="orig", storage=storage).trials
            if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.user_attrs["ray_trial_id"] for t in done} == set(trials["trial_id"])
    assert snapshot(orig) == before  # the original, untouched
    st = json.loads(cli_in_process("sweep", "status", str(copy), "--json").stdout)
    assert st["state"] == "ended" and st["study"]["COMPLETE"] == 3
