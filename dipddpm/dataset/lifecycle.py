"""Whether a sweep's driver is running, has ended, or stopped without ending (killed).

The runner writes `<sweep dir>/driver.json` when its driver starts a Tuner ({"state":
"running", host, pid, started_at}) and again when the Tuner returns ({"state": "ended", ...,
ended_at}). `driver_state` reads it:

- ended:   the last driver finished its Tuner (every trial ran, or the time budget ran out);
- running: a driver is working on it: it holds the sweep's lock (dataset/lock.py), or, for a
           sweep without a lock record, driver.json says so (on this host: its pid is alive);
- stopped: the file says running, but its driver is gone (killed, or its lock is stale), or
           the driver stopped on an error it names (`reason`, e.g. no space left);
           `dipddpm sweep resume` continues it;
- unknown: no driver.json (a sweep from an older dipddpm, or a folder of Parquet files only).

Writes go through `Location.write_bytes` (atomic), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone

from dipddpm.dataset.storage import Location, resolve

DRIVER_FILE = "driver.json"
STATES = ("running", "ended", "stopped", "unknown")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def mark_running(sweep: Location) -> None:
    sweep.child(DRIVER_FILE).write_text(json.dumps(
        {"state": "running", "host": socket.gethostname(), "pid": os.getpid(),
         "started_at": _now()}))


def mark_ended(sweep: Location) -> None:
    f = sweep.child(DRIVER_FILE)
    info = read_driver(sweep) or {}
    f.write_text(json.dumps({**info, "state": "ended", "ended_at": _now()}))


def mark_stopped(sweep: Location, reason: str) -> None:
    """The driver stops without ending the sweep, for `reason` (best effort: on a full disk
    even this small write may fail, and the lock then says the driver is gone)."""
    info = read_driver(sweep) or {}
    try:
        sweep.child(DRIVER_FILE).write_text(json.dumps(
            {**info, "state": "stopped", "reason": reason, "stopped_at": _now()}))
    except OSError:
        pass


def read_driver(sweep: Location | str) -> dict | None:
    loc = sweep if isinstance(sweep, Location) else resolve(sweep)
    f = loc.child(DRIVER_FILE)
    if not f.exists():
        return None
    try:
        info = json.loads(f.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return info if isinstance(info, dict) else None


def driver_state(sweep: Location | str) -> str:
    """running, ended, stopped or unknown (see the module docstring)."""
    from dipddpm.dataset.lock import pid_alive, read_lock

    loc = sweep if isinstance(sweep, Location) else resolve(sweep)
    info = read_driver(loc)
    if info is None:
        return "unknown"
    if info.get("state") == "ended":
        return "ended"
    lock = read_lock(loc)
    if lock is not None:  # the lock knows best: a live holder, or a stale record
        return "running" if lock[1] is None else "stopped"
    if info.get("state") == "stopped":
        return "stopped"
    if info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid", -1))):
        return "stopped"
    return "running"
