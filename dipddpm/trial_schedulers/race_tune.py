"""Ray Tune's side of racing (race.py): a scheduler in the driver that reads each study
trial's per-block result (`info.race`: its per-pair values so far, and how many pairs it has)
into one RaceBook, and stops a trial the test finds worse than the incumbent. Every trial's
results reach the driver's scheduler, whichever Ray worker runs it, so the incumbent and the
per-pair values are shared between trials without any store of their own."""

from __future__ import annotations

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from dipddpm.trial_schedulers.race import RaceBook


class RaceScheduler(FIFOScheduler):
    def __init__(self, book: RaceBook) -> None:
        super().__init__()
        self.book = book

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        # a callback gets `info` nested, a scheduler may get it flattened (info/race)
        race = (result.get("info") or {}).get("race") or result.get("info/race")
        if not race:
            return TrialScheduler.CONTINUE
        self.book.add(trial.trial_id, race["values"], race["of"])
        return TrialScheduler.STOP if self.book.decide(trial.trial_id) \
            else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"Racing over pairs: {len(self.book.stopped)} trials raced out."
