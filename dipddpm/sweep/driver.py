"""What belongs to the driver process running now, not to the one that started the sweep.

`Tuner.restore` brings back the callbacks and the searcher that Ray pickled when the sweep was
started: their console, provenance, Optuna file path and publish hook would be the original
driver's (another machine, user or `--json` flag). Before it builds or restores a Tuner, the
runner calls `set_current(...)`; the recorder and the searcher take these values from here
when they are unpickled.

It also stops this driver's Tuner when it must (its storage is nearly full, or another driver
took its lock): `stop(reason)`, from any thread; the recorder's per-step hook (`step`) then
interrupts Tune in the main thread as Ctrl-C does (Tune's SIGUSR1 handler: trials stop where
they are, Tune saves its state a last time, `Tuner.fit` returns), and the runner ends the run
with `stop_reason` as its one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dipddpm.errors import DipddpmError


@dataclass
class DriverContext:
    console: Any  # SweepConsole of this driver (quiet with --json)
    provenance: dict[str, str]  # versions and git sha of this driver
    optuna_db: str | None = None  # local SQLite path of the study (None: no Optuna searcher)
    publish: Callable[[], None] = lambda: None  # upload optuna.db to remote storage
    restored: dict[str, str] | None = None  # trial id -> status, in Tune's saved state
    sweep_uri: str | None = None  # the sweep directory this driver works on (it may be moved)
    watch: Any = None  # disk_space.SpaceWatch of the sweep's storage
    stop_reason: str | None = None  # why this driver stops its Tuner (None: it does not)
    interrupted: bool = False

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def step(self) -> None:
        """Once per Tune step, in the main thread: look at the free space, and interrupt
        Tune when the driver must stop (see the module docstring)."""
        import signal
        import threading

        if self.stop_reason is None and self.watch is not None:
            low = self.watch.low()
            if low is not None:
                self.stop(low)
        if self.stop_reason is None or self.interrupted:
            return
        self.interrupted = True
        if (threading.current_thread() is threading.main_thread()
                and callable(signal.getsignal(signal.SIGUSR1))):  # Tune's handler
            signal.raise_signal(signal.SIGUSR1)
        else:  # no handler to ask: Tune ends on the exception, without a last state save
            raise DipddpmError(self.stop_reason)


_CURRENT: DriverContext | None = None


def set_current(ctx: DriverContext | None) -> None:
    global _CURRENT
    _CURRENT = ctx


def current() -> DriverContext | None:
    return _CURRENT
