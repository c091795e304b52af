"""A sweep stops before its storage is full, and says so in one line.

Every writer of a sweep directory writes whole files or nothing (Parquet and PNG files by
rename, the Optuna study by SQLite transactions) except one: Tune copies its experiment state
into `tune/` file by file, and a copy cut off by a full disk leaves a state a resume cannot
read. So the driver keeps a reserve free and stops *before* the disk is full:

- before Ray starts, a local or NFS sweep directory needs at least the reserve free (else one
  line: the path, what is free, the reserve);
- while the sweep runs, the driver looks at the free space about once a second (one statvfs);
  below the reserve it stops the Tuner as Ctrl-C does (Tune's own SIGUSR1 handler: trials stop
  where they are, Tune saves its state a last time), the sweep is left `stopped`, and the run
  ends with one line. `dipddpm sweep resume` continues it once space is freed.

The reserve is MIN_FREE_MIB (override: the DIPDDPM_MIN_FREE_MIB variable; 0 turns the check
off), or twice the most the sweep wrote between two looks, whichever is larger: a sweep whose
trials write large checkpoints keeps a larger reserve. A disk filled faster than that (another
program) still ends in the same one line: `no_space` recognises the error however it arrives
(an OSError, or Optuna's error around SQLite's "database or disk is full").
Object stores have no such limit: nothing is checked there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time

from dipddpm.dataset.storage import Location
from dipddpm.errors import DipddpmError

MIN_FREE_MIB = 64.0
CHECK_EVERY_S = 1.0
MIB = 2**20


def min_free_bytes() -> float:
    """The reserve's floor, in bytes (DIPDDPM_MIN_FREE_MIB, else MIN_FREE_MIB)."""
    raw = os.environ.get("DIPDDPM_MIN_FREE_MIB", "")
    try:
        mib = float(raw) if raw.strip() else MIN_FREE_MIB
    except ValueError:
        mib = -1.0
    if not 0 <= mib < float("inf"):
        raise DipddpmError(f"DIPDDPM_MIN_FREE_MIB must be a number of MiB >= 0 (0: no check), "
                           f"got {raw!r}; unset it for the default {MIN_FREE_MIB:.0f}")
    return mib * MIB


def free_bytes(path: str) -> int | None:
    """Bytes free for this user on the filesystem of `path` (its deepest existing folder)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path or "/").free
    except OSError:
        return None


def check_space(sweep: Location) -> None:
    """Before Ray starts: the sweep's filesystem has the reserve free (local storage)."""
    need = min_free_bytes()
    if not sweep.local or need == 0:
        return
    free = free_bytes(sweep.path)
    if free is not None and free < need:
        raise DipddpmError(
            f"no space for the sweep in {sweep.uri}: {free / MIB:.1f} MiB free, a sweep keeps "
            f"at least {need / MIB:.0f} MiB free (DIPDDPM_MIN_FREE_MIB); free space there, "
            f"or pass --storage with room")


class SpaceWatch:
    """The running check (see the module docstring): `low()` is a line saying the space is
    too low, or None."""

    def __init__(self, sweep: Location) -> None:
        self.sweep = sweep
        self.path = sweep.path if sweep.local else None
        self.floor = min_free_bytes()
        self.last_free: int | None = None
        self.largest_drop = 0
        self.next_at = 0.0

    def reserve(self) -> float:
        return max(self.floor, 2.0 * self.largest_drop)

    def low(self) -> str | None:
        now = time.monotonic()
        if self.path is None or self.floor == 0 or now < self.next_at:
            return None
        self.next_at = now + CHECK_EVERY_S
        free = free_bytes(self.path)
        if free is None:
            return None
        if self.last_free is not None:
            self.largest_drop = max(self.largest_drop, self.last_free - free)
        self.last_free = free
        if free >= self.reserve():
            return None
        return stopped_line(self.sweep, f"no space left for the sweep in {self.path}: "
                            f"{free / MIB:.2f} MiB free, below its reserve of "
                            f"{self.reserve() / MIB:.2f} MiB")


def no_space(e: BaseException) -> bool:
    """Whether `e` (or an exception it was raised from) says the disk is full."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(cur)
        if "No space left on device" in text or "database or disk is full" in text:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def remove_cut_off(sweep: Location) -> list[str]:
    """Delete the temporary files of writes a full disk cut off (`Location.write_bytes`
    writes `.<name>.<hex>.tmp` and renames it; readers skip them, but they are litter);
    Tune's own folder is Tune's. Returns what it removed."""
    import re

    if not sweep.local:
        return []
    temp = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
    root = os.path.join(sweep.path, "tune")
    removed = []
    for folder, dirs, files in os.walk(sweep.path):
        if folder == root:
            dirs.clear()
            continue
        for name in files:
            if temp.match(name):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(path)
    return removed


def stopped_line(sweep: Location, why: str) -> str:
    """The one line a sweep stopped for lack of space ends with."""
    return (f"{why}; the sweep stopped and what it wrote is readable (`dipddpm results "
            f"summarize {sweep.uri}`); free space, then `dipddpm sweep resume {sweep.uri}`")
