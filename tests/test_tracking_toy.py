"""docs/how-to.md's "A tracking backend", followed with a toy: an entry registered here (its
options, its sink) works through a spec's `tracking:` and one Ray sweep with no other edit; a
backend that raises is dropped with one warning while the others and the sweep go on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from dipddpm.tracking import TRACKING, Tracker

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EVENTS: list[tuple] = []


@dataclass(frozen=True)
class ToyOptions:
    label: str = "toy"  # a name the toy writes beside its events
    fail_at: str | None = None  # an event at which the toy raises (to test the guard)


class ToySink:
    def __init__(self, options: ToyOptions, ctx) -> None:
        self.options, self.sweep = options, ctx.spec.name

    def _event(self, *event) -> None:
        if event[0] == self.options.fail_at:
            raise ConnectionError("the toy's server went away")
        EVENTS.append((self.options.label, *event))

    def trial_started(self, trial_id, params) -> int:
        self._event("trial_started", trial_id, dict(params))
        return 0

    def reported(self, trial_id, reports) -> None:
        self._event("reported", trial_id, [it for it, _ in reports])

    def checkpointed(self, trial_id, it, images) -> None:
        self._event("checkpointed", trial_id, it)

    def trial_ended(self, end) -> None:
        self._event("trial_ended", end.trial_id, end.status)

    def close(self, verdict, known) -> None:
        self._event("close", verdict["trials"] if verdict else None)


@pytest.fixture
def toys():
    for name in ("toy", "toy_broken"):
        TRACKING.register(name)(Tracker(options=ToyOptions, open=ToySink, help="a test toy"))
    EVENTS.clear()
    yield
    for name in ("toy", "toy_broken"):
        TRACKING.unregister(name)


def test_a_toy_backend_registered_in_a_test_gets_every_event(ray_local, tmp_path, toys,
                                                              capfd):
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "toy", "method": "noop", "problem": {}, "metric": "score",
        "fixed": {"iters": 6, "report_every": 2}, "search": {"x": {"grid": [0.1, 0.2]}},
        "searcher": {"type": "grid"}, "scheduler": {"type": "none"}, "num_samples": 1,
        "storage": str(tmp_path / "results"),
        "tracking": [{"toy": {"label": "ok"}},
                     {"toy_broken": {"label": "broken", "fail_at": "reported"}}]}))
    run_sweep(spec, console=SweepConsole("score", "max", quiet=True))
    trials = pd.read_parquet(tmp_path / "results" / "toy" / "trials").set_index("trial_id")
    assert (trials["status"] == "COMPLETED").all() and len(trials) == 2
    ok = [e[1:] for e in EVENTS if e[0] == "ok"]
    for tid, row in trials.iterrows():
        started = [e for e in ok if e[:2] == ("trial_started", tid)]
        assert len(started) == 1 and started[0][2]["x"] == row["config.x"]
        iters = [i for e in ok if e[:2] == ("reported", tid) for i in e[2]]
        assert iters == [2, 4, 6]  # every report once, oldest first
        assert ("trial_ended", tid, "COMPLETED") in ok
    assert ok[-1] == ("close", 2)
    broken = [e[1] for e in EVENTS if e[0] == "broken"]
    assert "reported" not in broken and "trial_ended" not in broken  # dropped at its failure
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("warning: tracking")]
    assert lines == ["warning: tracking toy_broken failed (ConnectionError: the toy's server "
                     "went away); the sweep goes on without it, its Parquet results stay the "
                     "record"]
