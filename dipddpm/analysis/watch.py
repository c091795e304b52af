"""`dipddpm results report DIR --watch`: rewrite the report every N seconds while the sweep
runs; stop when it has ended (or its driver is gone), after a last report.

Whether a sweep runs is what its `driver.json` says (`dipddpm.dataset.lifecycle`): the runner
marks it running when the Tuner starts and ended when it returns. Before the first trial is
written there is nothing to report yet: a line says so and the watch waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dipddpm.errors import DipddpmError

SPEC_FILE = "spec.resolved.yaml"


def check_is_sweep(directory: str | Path) -> None:
    """One line unless `directory` holds a sweep (its spec, driver.json or trials/)."""
    from dipddpm.dataset.lifecycle import DRIVER_FILE

    if "://" in str(directory):
        raise DipddpmError(f"--watch: {directory}: only a sweep on this machine's filesystem "
                           "can be watched; run the report without --watch for object storage")
    directory = Path(directory)
    if not directory.is_dir():
        raise DipddpmError(f"--watch: {directory} is not a directory; expected a sweep "
                           "directory <storage>/<sweep> as `dipddpm sweep run` writes")
    if not any((directory / f).exists() for f in (SPEC_FILE, DRIVER_FILE, "trials")):
        raise DipddpmError(f"--watch: {directory} holds no sweep (no {SPEC_FILE}, "
                           f"{DRIVER_FILE} or trials/); expected <storage>/<sweep> as "
                           "`dipddpm sweep run` writes")


def watch(directory: str | Path, write: Callable[[], str], every: float,
          echo: Callable[[str], None], sleep: Callable[[float], None] | None = None) -> int:
    """Call write() (builds the report, returns a line about it) every `every` seconds until
    the sweep is no longer running; returns how many reports were written."""
    from dipddpm.dataset.lifecycle import driver_state

    check_is_sweep(directory)
    written = 0
    while True:
        state = driver_state(str(directory))  # before the report: the last one sees the end
        try:
            echo(f"{write()} (sweep {state})")
            written += 1
        except DipddpmError as e:
            if "has no trials yet" not in str(e) or state != "running":
                raise
            echo(f"waiting for the first trial of {directory} (sweep {state})")
        if state != "running":
            return written
        (sleep or time.sleep)(every)
