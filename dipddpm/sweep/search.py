"""The Optuna searcher for Ray Tune that tells the truth.

Ray's own `OptunaSearch` tells Optuna that a trial ASHA stopped early is COMPLETE, with the
value it had at the low budget where it was stopped: the sampler then learns from numbers that
were never comparable. Here:

- every result is reported to the Optuna trial as an intermediate value (`trial.report(value,
  iter)`), and the objective is budget-honest (the spec's metric is best-so-far, psnr_best);
- a trial that ended before its iteration budget without an error (stopped by the scheduler)
  is told PRUNED, keeping its intermediate values; one that reached its budget is COMPLETE;
  one that raised, or reported a non-finite value, is FAIL;
- the study lives in an SQLite file in the sweep directory (`optuna-dashboard sqlite:///...`
  opens it while the sweep runs) and a resumed sweep loads the same study; Optuna trials that
  the killed driver had asked for but Tune never recorded are closed as FAIL on restore;
- parallel trials get distinct configurations: TPE uses the constant liar for running trials,
  and a suggestion equal to an earlier trial's is not run again (the earlier outcome is copied
  into the study, marked `duplicate_of`, and the sampler asks again). When no new
  configuration can be found the searcher reports FINISHED.
"""

from __future__ import annotations

import math
import pickle
import warnings

from ray.tune.search import Searcher

from dipddpm.sweep.rows import reports_in, status_of
from dipddpm.sweep.samplers import make_sampler
from dipddpm.sweep.space import decode, define_by_run
from dipddpm.sweep.spec import SweepSpec

MAX_DUPLICATE_ASKS = 50


def storage_url(db_path: str) -> str:
    return f"sqlite:///{db_path}"


class TruthfulOptunaSearch(Searcher):
    """A Ray Tune `Searcher` over an Optuna study (see the module docstring)."""

    def __init__(self, spec: SweepSpec, db_path: str) -> None:
        super().__init__(metric=spec.metric, mode=spec.mode)
        self.spec = spec
        self.db_path = db_path
        self.trials: dict[str, int] = {}  # Tune trial id -> Optuna storage trial id
        self.params: dict[str, dict] = {}  # Tune trial id -> its decoded params
        self.done: set[str] = set()
        self.max_concurrent = spec.searcher.max_concurrent
        self._study = None

    # --- the study, opened lazily (it does not pickle) --------------------------------------
    @property
    def study(self):
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(
                storage=storage_url(self.db_path), study_name=self.spec.name,
                direction="maximize" if self.spec.mode == "max" else "minimize",
                sampler=make_sampler(self.spec), load_if_exists=True)
            before = len(study.get_trials(deepcopy=False))
            if before:
                study.sampler = make_sampler(self.spec, trials_before=before)
            self._study = study
        return self._study

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_study"] = None
        return state

    def __setstate__(self, state: dict) -> None:  # restored by Tune: this driver's study file
        from dipddpm.sweep.driver import current

        self.__dict__.update(state)
        ctx = current()
        if ctx is not None and ctx.optuna_db:
            self.db_path = ctx.optuna_db

    def _trial(self, trial_id: str):
        import optuna

        return optuna.trial.Trial(self.study, self.trials[trial_id])

    # --- Tune's Searcher API ----------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space, metric and mode come from the sweep spec

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id in self.params:  # asked again for a known trial
            return dict(self.params[trial_id])
        if len(set(self.trials) - self.done) >= self.max_concurrent:
            return None
        space = define_by_run(self.spec.search)
        for _ in range(MAX_DUPLICATE_ASKS):
            trial = self.study.ask()
            params = decode(self.spec.search, space(trial))
            earlier = self._duplicate_of(trial.number, trial.params)
            if earlier is None:
                trial.set_user_attr("ray_trial_id", trial_id)
                self.trials[trial_id] = trial._trial_id
                self.params[trial_id] = params
                return dict(params)
            self._close_duplicate(trial, earlier)
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.trials or trial_id in self.done:
            return
        self._report(self._trial(trial_id), result)

    def _report(self, trial, result: dict) -> None:
        """Every report a result carries (a searcher gets it flattened: info/batch) as an
        intermediate value of the Optuna trial; non-finite ones are left out."""
        for r in reports_in(result):
            value = r.get(self.metric)
            if value is not None and math.isfinite(value):
                with warnings.catch_warnings():  # a report replayed after a restart: kept once
                    warnings.simplefilter("ignore")
                    trial.report(float(value), int(r["iter"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        from optuna.trial import TrialState

        if trial_id not in self.trials or trial_id in self.done:
            return
        self.done.add(trial_id)
        frozen = self.study._storage.get_trial(self.trials[trial_id])
        if frozen.state.is_finished():  # told before the driver was killed
            return
        result = result or {}
        value = result.get(self.metric)
        finite = value is not None and math.isfinite(value)
        trial = self._trial(trial_id)
        self._report(trial, result)  # the last result and the reports batched before it
        status = status_of(result, error)
        if status == "FAILED" or not finite:
            self.study.tell(trial, state=TrialState.FAIL)
        elif status == "PRUNED":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, float(value), state=TrialState.COMPLETE)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"trials": self.trials, "params": self.params, "done": self.done}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.trials, self.params, self.done = state["trials"], state["params"], state["done"]
        self.close_orphans()

    # --- helpers ------------------------------------------------------------------------------
    def close_orphans(self) -> int:
        """Close as FAIL the study's RUNNING trials that Tune does not know (asked for just
        before the driver died, never recorded in Tune's experiment state)."""
        from optuna.trial import TrialState

        known = set(self.trials.values())
        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t._trial_id not in known:
                self.study._storage.set_trial_user_attr(
                    t._trial_id, "orphaned", "asked before the driver stopped; never run")
                self.study.tell(t.number, state=TrialState.FAIL)
                n += 1
        return n

    def _duplicate_of(self, number: int, params: dict):
        for t in self.study.get_trials(deepcopy=False):
            if t.number != number and t.params == params and "orphaned" not in t.user_attrs:
                return t
        return None

    def _close_duplicate(self, trial, earlier) -> None:
        """Copy the earlier trial's outcome into the duplicate suggestion (not run again)."""
        from optuna.trial import TrialState

        trial.set_user_attr("duplicate_of", earlier.number)
        for step, v in earlier.intermediate_values.items():
            trial.report(v, step)
        if earlier.state == TrialState.COMPLETE:
            self.study.tell(trial, earlier.value, state=TrialState.COMPLETE)
        elif earlier.state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:  # running or failed: nothing to learn yet; the constant liar covers running ones
            self.study.tell(trial, state=TrialState.FAIL)
