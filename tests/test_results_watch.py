"""`dipddpm results report DIR --watch`: rewrites the page while driver.json says the sweep
runs, stops after the end; a directory that holds no sweep is one line, exit 2."""

from __future__ import annotations

from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.dataset.lifecycle import driver_state, mark_ended, mark_running
from dipddpm.dataset.storage import resolve

runner = CliRunner()


def test_watch_rewrites_until_the_sweep_ends(sweep):
    from dipddpm.analysis.watch import watch

    loc = resolve(str(sweep))
    mark_running(loc)  # this process stands for the driver: alive, so "running"
    assert driver_state(loc) == "running"
    sleeps, lines, made = [], [], []

    def sleep(s):  # the sweep ends during the third wait
        sleeps.append(s)
        if len(sleeps) == 3:
            mark_ended(loc)

    def write():
        made.append(1)
        return f"wrote report {len(made)}"

    assert watch(sweep, write, 7.0, lines.append, sleep=sleep) == 4
    assert sleeps == [7.0, 7.0, 7.0]
    assert lines == [f"wrote report {i} (sweep running)" for i in (1, 2, 3)] + [
        "wrote report 4 (sweep ended)"]


def test_watch_waits_for_the_first_trial(tmp_path, monkeypatch):
    from dipddpm.analysis import watch as watch_mod

    d = tmp_path / "s"
    (d / "trials").mkdir(parents=True)
    loc = resolve(str(d))
    mark_running(loc)
    monkeypatch.setattr(watch_mod.time, "sleep", lambda s: mark_ended(loc))
    r = runner.invoke(app, ["results", "report", str(d), "--out", str(tmp_path / "r.html"),
                            "--watch", "--every", "1"])
    # waited once while it ran; after its end, a sweep without trials is the usual error
    assert "waiting for the first trial" in r.stdout
    assert r.exit_code == 2 and "has no trials yet" in r.stderr


def test_a_killed_driver_stops_the_watch(sweep, tmp_path):
    """The command as a user runs it: the driver is gone, so one report and the end."""
    import json
    import socket

    (sweep / "driver.json").write_text(json.dumps(
        {"state": "running", "host": socket.gethostname(), "pid": 2 ** 22 + 7}))  # no such pid
    assert driver_state(str(sweep)) == "stopped"
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["results", "report", str(sweep), "--out", str(out), "--watch"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("MB) (sweep stopped)") and r.stdout.count("wrote") == 1
    assert "parcoords" in out.read_text()


def test_watch_on_a_directory_without_a_sweep(tmp_path):
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["results", "report", str(tmp_path), "--out", str(out), "--watch"])
    assert r.exit_code == 2
    assert "holds no sweep" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_every_must_be_positive(sweep, tmp_path):
    r = runner.invoke(app, ["results", "report", str(sweep), "--out", str(tmp_path / "r.html"),
                            "--watch", "--every", "0"])
    assert r.exit_code == 2 and "--every must be > 0" in r.stderr
