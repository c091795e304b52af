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
  the killed driver had asked for but Tune never recorded are closed as FAIL on restore. On
  object storage the study is published when a trial is asked for (and, by the recorder, at
  every checkpoint and trial end), so it always knows every trial Tune's saved state names;
  on restore the searcher's trial map is rebuilt from the study (`ray_trial_id`) for exactly
  the trials of that state, which Tune uploads file by file (a killed driver may leave the
  searcher's own file from another moment);
- every trial in the study is a trial Tune runs: the study's trial count and states are the
  sweep's (what `sweep status` counts and optuna-dashboard shows). Suggestions are drawn in an
  in-memory copy of the study (same sampler, same history); one equal to an earlier trial's
  configuration is left there as a running trial, which TPE's constant liar counts as a bad
  point, and the sampler asks again; after MAX_SAMPLER_ASKS duplicates, random suggestions
  (MAX_RANDOM_ASKS) look for a configuration not yet tried. Only a new configuration becomes a
  trial of the real study (created there with its params in one transaction, `_create`). When
  none can be found the searcher reports FINISHED. (Studies of earlier versions hold
  `duplicate_of` trials, copies of an earlier outcome; the readers count those once.)
"""

from __future__ import annotations

import math
import pickle
import warnings

from optuna.samplers import BaseSampler
from ray.tune.search import Searcher

from dipddpm.dataset.optuna_study import open_study
from dipddpm.sweep.driver import current
from dipddpm.sweep.rows import reports_in, status_of
from dipddpm.sweep.samplers import make_sampler
from dipddpm.sweep.spec import SweepSpec
from dipddpm.sweep.spec.space import decode, define_by_run

MAX_SAMPLER_ASKS = 10  # duplicate suggestions of the spec's sampler before random ones
MAX_RANDOM_ASKS = 200  # random suggestions looking for a configuration not yet tried


class Chosen(BaseSampler):
    """The real study's sampler: it never samples. Its trials are created with the
    configuration chosen in the in-memory copy (`TruthfulOptunaSearch._create`)."""

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        raise RuntimeError(f"the sweep's study is not sampled here (param {param_name}): "
                           "its configurations are chosen in the in-memory copy")


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
        self._scratch = None  # the in-memory copy where suggestions are drawn
        self._copied: dict[int, int] = {}  # study trial number -> its scratch trial id
        self._seen: set[tuple] = set()  # the configurations the study holds
        self._live: dict[str, object] = {}  # Tune trial id -> its running optuna Trial
        self._asked: set[str] = set()  # Tune trials this driver asked the study for

    # --- the study, opened lazily (it does not pickle) --------------------------------------
    @property
    def study(self):
        if self._study is None:
            # the spec's sampler works on the in-memory copy; this study is told its choice
            self._study = open_study(self.db_path, self.spec.name, self._direction, Chosen())
        return self._study

    @property
    def _direction(self) -> str:
        return "maximize" if self.spec.mode == "max" else "minimize"

    @property
    def scratch(self):
        """The in-memory copy of the study (the spec's sampler, seeded; a resumed study shifts
        the seed by the trials it holds). It reads the study once; after that this searcher,
        the study's only writer while it runs (the driver lock), keeps it in step itself at
        each ask (`suggest`) and tell (`on_trial_complete`): reading every trial back from
        SQLite at each suggestion cost a time growing with the trials (0.05 s a suggestion at
        300 trials)."""
        import optuna

        if self._scratch is None:
            trials = self.study.get_trials(deepcopy=False)
            self._scratch = optuna.create_study(
                storage=optuna.storages.InMemoryStorage(), direction=self._direction,
                sampler=make_sampler(self.spec, trials_before=len(trials)))
            self._copied, self._seen = {}, set()
            for t in trials:
                self._mirror(t)
        return self._scratch

    def _mirror(self, t) -> None:
        """Copy study trial `t` (a FrozenTrial) into the scratch study, or bring its copy up
        to date once it has finished."""
        if t.number not in self._copied:
            self._scratch.add_trial(t)
            self._copied[t.number] = self._scratch.get_trials(deepcopy=False)[-1]._trial_id
            if "orphaned" not in t.user_attrs:
                self._seen.add(self._key(t.params))
            return
        if not t.state.is_finished():
            return
        sid, store = self._copied[t.number], self._scratch._storage
        if store.get_trial(sid).state.is_finished():
            return
        for step, v in t.intermediate_values.items():
            store.set_trial_intermediate_value(sid, step, v)
        store.set_trial_state_values(sid, t.state, t.values)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_study=None, _scratch=None, _copied={}, _seen=set(), _live={},
                     _asked=set())
        return state

    def __setstate__(self, state: dict) -> None:  # restored by Tune: this driver's study file
        self.__dict__.update(state)
        ctx = current()
        if ctx is not None and ctx.optuna_db:
            self.db_path = ctx.optuna_db

    def _trial(self, trial_id: str):
        """The running optuna Trial of a Tune trial, built once (building one reads the trial
        back from the storage)."""
        import optuna

        if trial_id not in self._live:
            self._live[trial_id] = optuna.trial.Trial(self.study, self.trials[trial_id])
        return self._live[trial_id]

    # --- Tune's Searcher API ----------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space, metric and mode come from the sweep spec

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id in self.params:  # asked again for a known trial
            return dict(self.params[trial_id])
        if len(self.trials) - len(self.done) >= self.max_concurrent:  # done: of trials
            return None
        drawn = self._new_configuration()
        if drawn is None:
            return Searcher.FINISHED
        trial = self._create(trial_id, drawn)
        self._copied[trial.number] = drawn._trial_id
        self._seen.add(self._key(drawn.params))
        self.trials[trial_id] = trial._trial_id
        self.params[trial_id] = params = decode(self.spec.search, drawn.params)
        ctx = current()
        if ctx is not None:  # the study on the storage knows this trial before Tune saves it
            ctx.publish()
        return dict(params)

    def _create(self, trial_id: str, drawn):
        """The real study's RUNNING trial for the configuration `drawn` (a scratch trial): its
        params, distributions, `ray_trial_id` and the sampler's own attributes (CMA-ES) in one
        transaction (asking it, then setting each of those, took about 8)."""
        import optuna
        from optuna.trial import TrialState

        frozen = optuna.trial.create_trial(
            state=TrialState.RUNNING, params=drawn.params, distributions=drawn.distributions,
            user_attrs={"ray_trial_id": trial_id}, system_attrs=dict(drawn.system_attrs))
        tid = self.study._storage.create_new_trial(self.study._study_id, template_trial=frozen)
        self._live[trial_id] = trial = optuna.trial.Trial(self.study, tid)
        self._asked.add(trial_id)
        return trial

    def _new_configuration(self):
        """A suggestion (a scratch trial, left running) whose configuration no trial of the
        study has, or None. Duplicates drawn meanwhile are closed as FAIL in the scratch copy
        once it is found: none is ever told to the real study."""
        import optuna

        scratch, space = self.scratch, define_by_run(self.spec.search)
        seen = self._seen
        spec_sampler, duplicates, found = scratch.sampler, [], None
        try:
            for i in range(MAX_SAMPLER_ASKS + MAX_RANDOM_ASKS):
                if i == MAX_SAMPLER_ASKS:
                    scratch.sampler = optuna.samplers.RandomSampler(
                        seed=self.spec.searcher.seed + len(seen))
                trial = scratch.ask()
                space(trial)
                if self._key(trial.params) not in seen:
                    found = scratch._storage.get_trial(trial._trial_id)
                    break
                duplicates.append(trial)  # running meanwhile: the constant liar avoids it
        finally:
            scratch.sampler = spec_sampler
            for trial in duplicates:
                scratch.tell(trial, state=optuna.trial.TrialState.FAIL)
        return found

    @staticmethod
    def _key(params: dict) -> tuple:
        return tuple(sorted(params.items()))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.trials or trial_id in self.done:
            return
        self._report(self._trial(trial_id), result)

    def _report(self, trial, result: dict) -> None:
        """Every report a result carries (a searcher gets it flattened: info/batch) as an
        intermediate value of the Optuna trial; non-finite ones are left out."""
        with warnings.catch_warnings():  # a report replayed after a restart: kept once
            warnings.simplefilter("ignore")
            for r in reports_in(result):
                value = r.get(self.metric)
                if value is not None and math.isfinite(value):
                    trial.report(float(value), int(r["iter"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        from optuna.trial import TrialState

        if trial_id not in self.trials or trial_id in self.done:
            return
        self.done.add(trial_id)
        if trial_id not in self._asked and self.study._storage.get_trial(
                self.trials[trial_id]).state.is_finished():  # told before the driver was killed
            return
        result = result or {}
        value = result.get(self.metric)
        finite = value is not None and math.isfinite(value)
        trial = self._trial(trial_id)
        self._report(trial, result)  # the last result and the reports batched before it
        status = status_of(result, error)
        if status == "FAILED" or not finite:
            told = self.study.tell(trial, state=TrialState.FAIL)
        elif status == "PRUNED":
            told = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            told = self.study.tell(trial, float(value), state=TrialState.COMPLETE)
        self._live.pop(trial_id, None)
        if self._scratch is not None:  # the scratch copy learns the outcome
            self._mirror(told)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"trials": self.trials, "params": self.params, "done": self.done}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.trials, self.params, self.done = state["trials"], state["params"], state["done"]
        ctx = current()
        if ctx is not None and ctx.restored is not None:
            self._from_study(ctx.restored)
        self.close_orphans()

    def _from_study(self, restored: dict[str, str]) -> None:
        """The trial map of exactly the trials Tune restores, read from the study."""
        by_ray = {t.user_attrs.get("ray_trial_id"): t
                  for t in self.study.get_trials(deepcopy=False)}
        self.trials, self.params = {}, {}
        for tid in restored:
            t = by_ray.get(tid)
            if t is not None:
                self.trials[tid] = t._trial_id
                self.params[tid] = decode(self.spec.search, t.params)
        self.done = {tid for tid, status in restored.items()
                     if status in ("TERMINATED", "ERROR") and tid in self.trials}

    # --- helpers ------------------------------------------------------------------------------
    def close_orphans(self) -> int:
        """Close as FAIL the study's RUNNING (or enqueued, WAITING) trials that Tune does not
        know (asked for just before the driver died, never recorded in Tune's experiment
        state), marked `orphaned`."""
        from optuna.trial import TrialState

        known = set(self.trials.values())
        n = 0
        store = self.study._storage
        for t in self.study.get_trials(deepcopy=False,
                                       states=(TrialState.RUNNING, TrialState.WAITING)):
            if t._trial_id not in known:
                store.set_trial_user_attr(t._trial_id, "orphaned",
                                          "asked before the driver stopped; never run")
                store.set_trial_state_values(t._trial_id, TrialState.FAIL)
                n += 1
        return n
