"""What belongs to the driver process running now, not to the one that started the sweep.

`Tuner.restore` brings back the callbacks and the searcher that Ray pickled when the sweep was
started: their console, provenance, Optuna file path and publish hook would be the original
driver's (another machine, user or `--json` flag). Before it builds or restores a Tuner, the
runner calls `set_current(...)`; the recorder and the searcher take these values from here
when they are unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class DriverContext:
    console: Any  # SweepConsole of this driver (quiet with --json)
    provenance: dict[str, str]  # versions and git sha of this driver
    optuna_db: str | None = None  # local SQLite path of the study (None: no Optuna searcher)
    publish: Callable[[], None] = lambda: None  # upload optuna.db to remote storage
    restored: dict[str, str] | None = None  # trial id -> status, in Tune's saved state


_CURRENT: DriverContext | None = None


def set_current(ctx: DriverContext | None) -> None:
    global _CURRENT
    _CURRENT = ctx


def current() -> DriverContext | None:
    return _CURRENT
