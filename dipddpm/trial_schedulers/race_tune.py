"""Ray Tune's side of racing (race.py): a scheduler in the driver that reads each study
trial's per-block result (`info.race`: its per-pair values so far, and how many pairs it has)
into one RaceBook, and stops a trial the test finds worse than the incumbent. Every trial's
results reach the driver's scheduler, whichever Ray worker runs it, so the incumbent and the
per-pair values are shared between trials without any store of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def race_of(result: dict) -> dict | None:
    """A result's `info.race`: nested (as a callback gets it) or flattened (as a scheduler
    gets it: info/race/values, info/race/of)."""
    nested = (result.get("info") or {}).get("race")
    if nested:
        return nested
    if "info/race/values" in result:
        return {"values": result["info/race/values"], "of": result["info/race/of"]}
    return None


class RaceScheduler(FIFOScheduler):
    keeps: Callable[[dict], bool] = staticmethod(lambda config: False)  # one pickled before keep

    def __init__(self, book: Any, keeps: Callable[[dict], bool] = lambda config: False
                 ) -> None:  # race.py RaceBook; keeps: config -> never raced out
        super().__init__()
        self.book = book
        self.keeps = keeps

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        race = race_of(result)
        if race is None:
            return TrialScheduler.CONTINUE
        if trial.trial_id not in self.book.values and self.keeps(trial.config):  # once
            if not hasattr(self.book, "kept"):  # a book pickled before keep (a resumed sweep)
                self.book.kept = set()
            self.book.kept.add(trial.trial_id)
        self.book.add(trial.trial_id, race["values"], race["of"])
        return TrialScheduler.STOP if self.book.decide(trial.trial_id) \
            else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"Racing over pairs: {len(self.book.stopped)} trials raced out."
