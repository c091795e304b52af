"""What a tracking backend is: a registry entry owning its options, its checks and its sink.

A sink is what the sweep's one Tune callback (tracking/callback.py) hands a trial's events to,
on the driver: a trial started with its config, its reports (iteration -> metrics), the output
image at a checkpoint, the trial's end (status, error, summary, a study's pairs), the sweep's
end (its verdict). A sink knows nothing of Ray; the callback guards every call, so a backend
that fails mid-sweep is dropped with one warning and the sweep goes on.

    TRACKING.register("mybackend")(Tracker(
        options=MyOptions,           # frozen dataclass: unknown keys refused, fields checked
        open=MySink,                 # (options, SweepContext) -> sink
        requires=("mypackage",),     # missing: one line naming the `tracking` extra
        preflight=my_preflight,      # (options, SweepContext) -> None: bounded, before Ray
        help="one line for the docs and `did you mean`"))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.registry import Registry

EXTRA = "tracking"  # the pyproject extra that installs every backend's package


@dataclass(frozen=True)
class SweepContext:
    """What a sink knows of the sweep it records (this driver's view)."""

    spec: Any  # the SweepSpec
    sweep_uri: str  # the sweep directory, local path or URI
    git_sha: str = "unknown"

    @property
    def local(self) -> bool:
        from dipddpm.dataset.storage import is_remote

        return not is_remote(self.sweep_uri)

    def location(self):
        from dipddpm.dataset.storage import resolve

        return resolve(self.sweep_uri, self.spec.storage_options)


@dataclass(frozen=True)
class TrialEnd:
    """A finished trial, as the trials table records it."""

    trial_id: str
    status: str  # COMPLETED | PRUNED | FAILED (sweep/rows.py status_of)
    iters_done: int
    error: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # the method's final metrics
    pairs: tuple[Mapping[str, Any], ...] = ()  # a study's rows, one per (image, replicate)
    images: Mapping[str, bytes] = field(default_factory=dict)  # final output PNGs


class Sink(Protocol):
    """A backend's recorder for one sweep (created on the driver, never pickled)."""

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> int:
        """Open (or, after a driver restart, reopen) the trial's run; return the last
        iteration it already holds (0: none), so replayed reports are not logged twice."""

    def reported(self, trial_id: str, reports: list[tuple[int, dict[str, float]]]) -> None:
        """Reports (iteration, metrics) oldest first, not yet recorded."""

    def checkpointed(self, trial_id: str, it: int, images: Mapping[str, bytes]) -> None:
        """The output image(s) as PNG bytes at a checkpoint (only if `wants_images`)."""

    def trial_ended(self, end: TrialEnd) -> None: ...

    def close(self, verdict: Mapping[str, Any] | None, known: set[str]) -> None:
        """The sweep's end (verdict: every trial finished) or this driver's (None); `known`:
        the trials in Tune's state (a run of any other trial was started by a driver that died
        before Tune saved it, and that trial was run again under another id)."""


@dataclass(frozen=True)
class Tracker:
    """A registered tracking backend: the only place that knows it."""

    options: type  # frozen dataclass of its options (`tracking: {name: {...}}`)
    open: Callable[[Any, SweepContext], Sink]
    requires: tuple[str, ...] = ()  # importable modules it needs
    preflight: Callable[[Any, SweepContext], None] | None = None  # before Ray starts
    wants_images: bool = False  # read the output PNG at every checkpoint for it
    help: str = ""

    def build(self, name: str, values: Mapping[str, Any] | None) -> Any:
        """Its options from the spec's mapping (errors name `tracking.NAME`)."""
        from dipddpm.config import build

        try:
            return build(self.options, dict(values or {}))
        except ConfigError as e:
            raise ConfigError(f"tracking.{name}: {e}") from None

    def check_installed(self, name: str) -> None:
        """One line naming the extra when a package it needs is missing."""
        import importlib

        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError:
                raise DipddpmError(
                    f"tracking: {name} needs the `{module}` package, which is not installed; "
                    f"pip install 'dipddpm[{EXTRA}]' (or drop {name} from tracking:)") from None


def as_values(options: Any) -> dict[str, Any]:
    """A built options dataclass as the plain mapping the resolved spec stores."""
    return dataclasses.asdict(options)


TRACKING: Registry[Tracker] = Registry("tracking backend")
