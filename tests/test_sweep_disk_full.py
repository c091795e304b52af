"""A sweep whose storage fills up: it stops with one line saying there is no space (naming the
path), leaves nothing a reader cannot read (Parquet files, the Optuna study), `results
summarize` still answers, and once space is freed `sweep resume` ends with every trial once.

The storage is a small tmpfs the test mounts itself (root only; skipped where mounting is not
allowed), nearly filled by a ballast file the test later deletes to free space."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

KIB = 1024
SPEC = {"name": "full", "method": "noop", "problem": {}, "metric": "score", "mode": "max",
        "fixed": {"iters": 12, "report_every": 1, "sleep_s": 0.05},
        "search": {"x": {"uniform": [0.0, 1.0]}},
        "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "max_concurrent": 2},
        "scheduler": {"type": "none"}, "resources": {"cpu": 0.5, "gpu": 0},
        "num_samples": 12, "checkpoint_every": 3}  # ~420 KiB written in all


@contextlib.contextmanager
def tmpfs(where: Path, size_kib: int):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def leave_free(disk: Path, kib: int) -> Path:
    """A ballast file that leaves about `kib` KiB free on `disk`."""
    ballast = disk / "ballast"
    st = os.statvfs(disk)
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - kib * KIB)
    return ballast


def cli(*args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-c", "from dipddpm.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def check_readable(sweep: Path) -> int:
    """Every Parquet file reads, the study loads, nothing half-written is left; returns the
    trials written."""
    import optuna
    import pandas as pd
    import pyarrow.parquet as pq

    assert not [p for p in sweep.rglob("*") if p.name.endswith(".tmp")]
    for p in sweep.rglob("*.parquet"):
        if "tune" not in p.relative_to(sweep).parts:
            pq.read_table(p)
    optuna.load_study(study_name="full", storage=f"sqlite:///{sweep}/optuna.db").get_trials()
    return len(pd.read_parquet(sweep / "trials")) if (sweep / "trials").is_dir() else 0


def check_every_trial_once(sweep: Path) -> None:
    import pandas as pd

    trials, metrics = pd.read_parquet(sweep / "trials"), pd.read_parquet(sweep / "metrics")
    assert len(trials) == 12 and trials["trial_id"].is_unique
    assert (trials["status"] == "COMPLETED").all()
    assert not metrics.duplicated(["trial_id", "iter", "metric"]).any()
    iters = metrics[metrics.metric == "score"].groupby("trial_id")["iter"].apply(sorted)
    assert set(iters.index) == set(trials["trial_id"])
    assert all(v == list(range(1, 13)) for v in iters)


def write_spec(tmp_path: Path, disk: Path) -> Path:
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "storage": str(disk)}, sort_keys=False))
    return path


def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_finishes_it(ray_local, tmp_path):
    address = ray_local.get_runtime_context().gcs_address
    with tmpfs(tmp_path / "disk", 4096) as disk:
        spec, sweep = write_spec(tmp_path, disk), disk / "full"
        ballast = leave_free(disk, 400)  # room for a few trials, not for 12
        env = {"DIPDDPM_MIN_FREE_MIB": "0.15"}
        r = cli("sweep", "run", str(spec), "--address", address, env=env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
        assert lines[0].startswith(f"error: no space left for the sweep in {sweep}:"), lines
        assert "Traceback" not in r.stdout + r.stderr
        written = check_readable(sweep)
        assert 1 <= written < 12
        s = cli("results", "summarize", str(sweep))
        assert s.returncode == 0, s.stderr[-2000:]
        st = json.loads(cli("sweep", "status", str(sweep), "--json").stdout)
        assert st["state"] == "stopped" and "no space" in st["stopped_because"]
        assert st["trials"] == written
        # an `ended` that Tune's saved state contradicts (an older dipddpm wrote it for a
        # sweep stopped by Ctrl-C) is not taken for finished: Tune's unfinished trials run
        from dipddpm.sweep.continuation import Start, plan
        from dipddpm.sweep.runner import load_sweep_spec

        info = json.loads((sweep / "driver.json").read_text())
        (sweep / "driver.json").write_text(json.dumps({**info, "state": "ended"}))
        assert plan(*load_sweep_spec(str(sweep), load_problem=False)).start is Start.RESTORE
        ballast.unlink()  # space freed
        r = cli("sweep", "resume", str(sweep), "--address", address, "--json", env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert json.loads(r.stdout)["trials"] == 12
        check_every_trial_once(sweep)
        st = json.loads(cli("sweep", "status", str(sweep), "--json").stdout)
        assert st["state"] == "ended" and st["study"] == {"COMPLETE": 12}


def test_a_disk_filled_past_the_reserve_still_ends_in_one_line(ray_local, tmp_path):
    """No reserve (DIPDDPM_MIN_FREE_MIB=0): the writes themselves fail (the Optuna study's
    SQLite, a Parquet file, Tune's state): still one line, and what was written reads."""
    address = ray_local.get_runtime_context().gcs_address
    with tmpfs(tmp_path / "disk", 4096) as disk:
        spec, sweep = write_spec(tmp_path, disk), disk / "full"
        leave_free(disk, 200)
        r = cli("sweep", "run", str(spec), "--address", address,
                env={"DIPDDPM_MIN_FREE_MIB": "0"})
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
        assert lines[0].startswith(f"error: no space left on the device of {sweep};"), lines
        check_readable(sweep)


def test_no_room_for_the_reserve_is_refused_before_ray(tmp_path):
    """600 KiB free: below the default reserve, the run is refused before Ray starts, and
    writes nothing."""
    with tmpfs(tmp_path / "disk", 600) as disk:
        spec = write_spec(tmp_path, disk)
        r = cli("sweep", "run", str(spec), env={"DIPDDPM_MIN_FREE_MIB": ""})
        assert r.returncode == 2, r.stderr[-3000:]
        assert r.stderr.strip().splitlines() == [
            f"error: no space for the sweep in {disk}/full: 0.6 MiB free, a sweep keeps at "
            f"least 64 MiB free (DIPDDPM_MIN_FREE_MIB); free space there, or pass --storage "
            f"with room"]
        assert list(disk.iterdir()) == []
