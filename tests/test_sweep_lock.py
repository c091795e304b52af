"""The driver lock of a sweep directory (dipddpm/dataset/lock.py), without Ray: a live holder
refuses a second driver with one line naming it; a stale record (dead pid on this host, no
heartbeat from another host, a lock copied with the sweep, a cut-off record) is taken over;
heartbeats keep it; and the same on S3, with conditional PUTs against moto on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dipddpm.dataset import lock as lockmod
from dipddpm.dataset.lifecycle import driver_state, mark_running
from dipddpm.dataset.lock import LOCK_FILE, Holder, SweepLock, read_lock
from dipddpm.dataset.storage import resolve
from dipddpm.errors import DipddpmError


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def record(folder: Path, **changes) -> dict:
    """A lock record as a driver writes it (this process, now), with `changes`."""
    rec = {**json.loads(Holder.me(str(folder)).dump()), **changes}
    (folder / LOCK_FILE).write_text(json.dumps(rec))
    return rec


def ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat(
        timespec="seconds")


def test_a_second_driver_is_refused_naming_the_holder(tmp_path):
    sweep = resolve(tmp_path)
    with SweepLock(sweep) as first:
        assert (tmp_path / LOCK_FILE).is_file() and first.notes == []
        with pytest.raises(DipddpmError) as e:
            SweepLock(sweep).acquire()
        msg = str(e.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in msg
        assert first.held.started_at in msg and "\n" not in msg
        assert read_lock(sweep)[1] is None  # live
    assert not (tmp_path / LOCK_FILE).exists()  # released
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary file left


def test_a_dead_drivers_lock_is_taken_over(tmp_path):
    pid = dead_pid()
    record(tmp_path, pid=pid, pid_start=None)
    sweep = resolve(tmp_path)
    assert read_lock(sweep)[1] == f"pid {pid} is not running on {socket.gethostname()}"
    with SweepLock(sweep) as lock:
        assert len(lock.notes) == 1 and f"pid {pid} is not running" in lock.notes[0]
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_reused_pid_is_not_the_holder(tmp_path):
    """The record's pid is alive (this process) but started at another time: pid reuse."""
    record(tmp_path, pid_start="1")
    with SweepLock(resolve(tmp_path)) as lock:
        assert "is not running" in lock.notes[0]


def test_another_hosts_lock_holds_while_it_beats_and_goes_stale_after_the_lease(tmp_path):
    sweep = resolve(tmp_path)
    record(tmp_path, host="elsewhere", pid=1, heartbeat_at=ago(5))
    with pytest.raises(DipddpmError, match="held by driver pid 1 on elsewhere"):
        SweepLock(sweep).acquire()
    record(tmp_path, host="elsewhere", pid=1, heartbeat_at=ago(lockmod.LEASE_S + 60))
    with SweepLock(sweep) as lock:
        assert "no heartbeat from elsewhere" in lock.notes[0]


def test_a_lock_copied_with_the_sweep_does_not_hold_the_copy(tmp_path):
    record(tmp_path, path="/somewhere/else/sweep")  # a live holder, of the original
    with SweepLock(resolve(tmp_path)) as lock:
        assert "copied with the sweep from /somewhere/else/sweep" in lock.notes[0]


def test_a_cut_off_record_holds_until_it_is_old(tmp_path):
    sweep = resolve(tmp_path)
    (tmp_path / LOCK_FILE).write_text('{"host": "x", "pi')
    with pytest.raises(DipddpmError, match="being written by another driver"):
        SweepLock(sweep).acquire()
    old = time.time() - lockmod.LEASE_S - 10
    os.utime(tmp_path / LOCK_FILE, (old, old))
    with SweepLock(sweep) as lock:
        assert "unreadable" in lock.notes[0]


def test_heartbeats_renew_the_record_and_a_takeover_is_noticed(tmp_path, monkeypatch):
    monkeypatch.setattr(lockmod, "HEARTBEAT_S", 0.05)
    lost = []
    lock = SweepLock(resolve(tmp_path), on_lost=lost.append).acquire()
    try:
        first = lock.held.heartbeat_at
        deadline = time.time() + 5
        while lock.held.heartbeat_at == first and time.time() < deadline:
            time.sleep(0.05)  # heartbeat times are to the second
        assert lock.held.heartbeat_at > first
        assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == lock.held.token
        record(tmp_path, token="someone-else")  # another driver took it over
        deadline = time.time() + 5
        while not lost and time.time() < deadline:
            time.sleep(0.05)
        assert lost and "another driver took over" in lost[0]
    finally:
        lock.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == "someone-else"


def test_driver_state_reads_the_lock(tmp_path):
    sweep = resolve(tmp_path)
    mark_running(sweep)
    with SweepLock(sweep):
        assert driver_state(sweep) == "running"
    record(tmp_path, host="elsewhere", heartbeat_at=ago(lockmod.LEASE_S + 60))
    assert driver_state(sweep) == "stopped"  # driver.json says running; its lock is stale


def test_a_lock_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DipddpmError, match="cannot write its driver lock driver.lock "
                                           r"\(Not a directory\)"):
        SweepLock(resolve(tmp_path / "file")).acquire()


def test_a_read_only_sweep_directory_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(DipddpmError, match="cannot write its driver lock"):
            SweepLock(resolve(tmp_path)).acquire()
    finally:
        tmp_path.chmod(0o755)


# --- S3: conditional PUTs against moto's S3 server on loopback ---------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import s3_server

    server = s3_server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    server.make_bucket("locks")
    yield server
    server.stop()


@pytest.fixture
def s3_sweep(s3, monkeypatch, tmp_path):
    for k, v in {**s3.env(), "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    return resolve(f"s3://locks/sweeps/{tmp_path.name}")


def s3_record(sweep, s3, **changes) -> None:
    import boto3

    rec = {**json.loads(Holder.me(sweep.uri).dump()), **changes}
    boto3.client("s3", endpoint_url=s3.endpoint).put_object(
        Bucket="locks", Key=f"{sweep.path.split('/', 1)[1]}/{LOCK_FILE}",
        Body=json.dumps(rec).encode())


@pytest.mark.slow
def test_s3_lock_refuses_a_second_driver_and_takes_over_a_stale_one(s3, s3_sweep):
    with SweepLock(s3_sweep) as first:
        with pytest.raises(DipddpmError, match=f"held by driver pid {os.getpid()}"):
            SweepLock(s3_sweep).acquire()
        assert read_lock(s3_sweep)[0].token == first.held.token
    assert read_lock(s3_sweep) is None  # released: the object is gone
    s3_record(s3_sweep, s3, pid=dead_pid(), pid_start=None)
    with SweepLock(s3_sweep) as lock:
        assert "is not running" in lock.notes[0]
        assert read_lock(s3_sweep)[0].token == lock.held.token


@pytest.mark.slow
def test_s3_takeover_is_a_compare_and_swap(s3, s3_sweep):
    """Two drivers judge the same record stale; the one whose If-Match comes second fails."""
    s3_record(s3_sweep, s3, pid=dead_pid(), pid_start=None)
    a, b = SweepLock(s3_sweep), SweepLock(s3_sweep)
    a.store, b.store = a._open(), b._open()
    rec, version = a.store.read()
    assert a.store.take_over(version, Holder.me(s3_sweep.uri)) is not None
    assert b.store.take_over(version, Holder.me(s3_sweep.uri)) is None
