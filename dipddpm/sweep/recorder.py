"""A Ray Tune callback on the driver that writes the Parquet dataset and the console lines.

Per trial it keeps every reported metric; the metrics file is flushed whenever a result carries
a checkpoint (Tune processes a result's callbacks before it registers the checkpoint, so after a
driver restart the file covers at least every iteration up to the checkpoint the trial resumes
from, and replayed reports are deduplicated by (iter, metric)). When a trial ends the metrics
file and its one trials row are written. Status: FAILED (raised after its retries, or
`info.error` from the trainable), PRUNED (ended before its iteration budget; `stopped_by` says
whether the scheduler or the sweep's time budget stopped it), COMPLETED (reached its budget).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from ray.tune import Callback

from dipddpm.dataset import parquet as results
from dipddpm.dataset.storage import resolve
from dipddpm.sweep.console import SweepConsole
from dipddpm.sweep.rows import metric_rows, reports_in, status_of, trial_row
from dipddpm.sweep.spec import SweepSpec


class Recorder(Callback):
    def __init__(self, spec: SweepSpec, sweep_uri: str, provenance: dict[str, str],
                 console: SweepConsole, on_trial_end=None) -> None:
        self.spec, self.sweep_uri, self.provenance = spec, sweep_uri, provenance
        self.console = console
        self.on_trial_end = on_trial_end  # e.g. upload optuna.db to remote storage
        self._reset()

    def _reset(self) -> None:
        self.fit_started = time.monotonic()  # this driver's Tuner.fit (time_budget_s runs)
        self.rows: dict[str, list[dict]] = {}  # trial id -> metric rows
        self.last: dict[str, dict] = {}
        self.started: dict[str, datetime] = {}
        self.ended: set[str] = set()
        self.columns = None  # the trials files' one schema (read from them at the first write)

    def __getstate__(self) -> dict:  # pickled in Tune's tuner state: keep no trial data
        state = self.__dict__.copy()
        for k in ("rows", "last", "started", "ended", "_sweep", "columns"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict) -> None:  # restored by Tune: this driver's console,
        from dipddpm.sweep.driver import current  # provenance and publish hook

        self.__dict__.update(state)
        ctx = current()
        if ctx is not None:
            self.console, self.provenance = ctx.console, ctx.provenance
            self.on_trial_end = ctx.publish
            self.sweep_uri = ctx.sweep_uri or self.sweep_uri  # a moved sweep: its new place
        self._reset()

    @property
    def sweep(self):  # resolved once per driver (an object store's filesystem is costly)
        if getattr(self, "_sweep", None) is None:
            self._sweep = resolve(self.sweep_uri, self.spec.storage_options)
        return self._sweep

    def _params(self, trial) -> dict:
        from dipddpm.sweep.spec.space import decode

        return decode(self.spec.search, trial.config)

    # --- Tune callback hooks -----------------------------------------------------------------
    def setup(self, **info) -> None:
        self.fit_started = time.monotonic()

    def on_step_begin(self, iteration, trials, **info) -> None:
        from dipddpm.sweep.driver import current

        ctx = current()
        if ctx is not None:  # free space, and a stop the driver was asked for
            ctx.step()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        tid = trial.trial_id
        self.ended.discard(tid)
        if tid not in self.rows:  # first sight (also after a driver restart): reload flushed
            self.rows[tid] = results.read_metrics(self.sweep, tid)
        self.started.setdefault(tid, datetime.now(timezone.utc))
        self.console.trial_start(tid, self._params(trial),
                                 retries=int(trial.num_failures or 0))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tid = trial.trial_id
        rows = self.rows.setdefault(tid, [])
        for r in reports_in(result):
            rows.extend(metric_rows(r))
        self.last[tid] = result
        if result.get("checkpoint_dir_name"):
            results.write_metrics(self.sweep, self.spec.name, tid, self.rows[tid])
            if self.on_trial_end is not None:  # the study too (remote storage): a resume
                self.on_trial_end()  # continues from this checkpoint with its reports
        if self.console.board_due():  # built only then: every trial's last result
            entries = [(t, r.get(self.spec.metric), int(r.get("iter", 0)), {})
                       for t, r in self.last.items()]
            running = sum(1 for t in trials if t.status == "RUNNING")
            self.console.maybe_leaderboard(entries, running, len(self.ended))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, error=True)

    # --- writing a trial ---------------------------------------------------------------------
    def _finish(self, trial, error: bool) -> None:
        tid = trial.trial_id
        if tid in self.ended:
            return
        self.ended.add(tid)
        try:
            self._write(trial, error)
        except Exception as e:  # Ray's logs are silenced: say it here, loudly
            self.console.line(f"[red]could not record trial {tid}[/]: {type(e).__name__}: {e}")
            raise

    def _write(self, trial, error: bool) -> None:
        tid = trial.trial_id
        result = self.last.get(tid) or dict(trial.last_result or {})
        result.setdefault("iter", 0)
        params = self._params(trial)
        row = self.trial_row(trial, params, result, error)
        results.write_metrics(self.sweep, self.spec.name, tid, self.rows.get(tid, []))
        pairs = (result.get("info") or {}).get("pairs")
        if pairs:  # a study: its row per (image, replicate), each with its reproduce
            results.write_pairs(self.sweep, self.spec.name, tid,
                                self.pair_rows(params, pairs))
        self.columns = results.write_trial_row(self.sweep, row, self.columns)
        self.console.trial_end(tid, row["status"], row["iters_done"], row["objective"],
                               params, row["error"])
        if self.on_trial_end is not None:
            self.on_trial_end()

    def pair_rows(self, params: dict, pairs: list[dict]) -> list[dict]:
        """The pairs rows, each with the `dipddpm fit` command re-running that one pair."""
        from dipddpm.sweep.reproduce import pair_commands

        cmds = pair_commands(self.spec, params, pairs)
        return [{**p, "reproduce": c} for p, c in zip(pairs, cmds, strict=True)]

    def stopped_by(self, status: str, result: dict | None = None) -> str | None:
        """Why a trial ended before its budget: ASHA (`scheduler`), the sweep's
        `time_budget_s` running out (`time_budget`) or, racing over a study's pairs, the race
        (`raced`: it lost to the incumbent before its last pair); None for trials that did
        not stop early."""
        if status != "PRUNED":
            return None
        budget = self.spec.time_budget_s
        if budget is not None and time.monotonic() - self.fit_started >= 0.98 * budget:
            return "time_budget"
        race = ((result or {}).get("info") or {}).get("race")
        if race and int(race["done"]) < int(race["of"]):
            return "raced"
        return "scheduler"

    def trial_row(self, trial, params: dict, result: dict, error: bool) -> dict[str, Any]:
        info = result.get("info") or {}
        status = status_of(result, error)
        err = info.get("error")
        if error and not err:
            e = trial.get_error()
            err = (str(e).strip().splitlines() or ["error"])[-1] if e else "trial raised"
        ended = datetime.now(timezone.utc)
        return trial_row(
            self.spec, trial.trial_id, params, result, status=status, error=err,
            retries=max(int(info.get("retries", 0)), int(trial.num_failures or 0)),
            started=self.started.get(trial.trial_id, ended), ended=ended,
            provenance=self.provenance, stopped_by=self.stopped_by(status, result))
