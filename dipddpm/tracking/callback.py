"""The one Tune callback that feeds the spec's tracking backends, on the driver.

It turns Tune's hooks into a sink's events (tracking/base.py) with the same facts the Parquet
dataset records: a trial's config as its trials row holds it, every report of `metrics/` (a
result's batched reports included, oldest first), its status by the same rule
(`rows.status_of`), the output image at checkpoints, a study's pairs.

It never fails a sweep: a sink that raises is dropped with one warning line on stderr, and the
sweep goes on (the Parquet dataset stays the record). Tune pickles its callbacks into the
experiment state, and `Tuner.restore` unpickles the first driver's: the sinks (clients, open
files) are not pickled; each driver opens its own at `setup`, and a backend reattaches to what
the first one made (tracking/mlflow_tracker.py: the same parent run, no duplicate child).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback

from dipddpm.errors import first_line
from dipddpm.sweep.rows import info, metric_rows, reports_in, status_of
from dipddpm.tracking.base import TRACKING, SweepContext, TrialEnd

WARNING = ("warning: tracking {name} failed ({error}); the sweep goes on without it, its "
           "Parquet results stay the record")


def trial_params(spec: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's config as its trials row holds it (`config.<key>` without the prefix, keys
    that did not apply left out) and its seed."""
    from dipddpm.config import to_dict
    from dipddpm.dataset.parquet import config_value
    from dipddpm.sweep.rows import unbuilt_config
    from dipddpm.sweep.trainable import trial_config

    try:
        cfg = to_dict(trial_config(spec, params))
    except Exception:  # a config breaking a rule: the trial fails; its values as given
        cfg = unbuilt_config(spec, params)
    inactive = {d.key for d in spec.search if d.key in cfg and not d.active(params)}
    out = {k: config_value(spec.method, k, v) for k, v in cfg.items() if k not in inactive}
    return {**out, "seed": spec.trial_seed(params)}


def report_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """A report's trial-level values, as `metrics/` holds them (a study's pairs left out)."""
    return {r["metric"]: r["value"] for r in metric_rows(report) if r["image"] is None}


class TrackingCallback(Callback):
    def __init__(self, spec: Any, sweep_uri: str) -> None:
        self.spec, self.sweep_uri = spec, sweep_uri
        self._reset()

    def _reset(self) -> None:
        self.sinks: dict[str, Any] | None = None  # name -> sink, opened by this driver
        self.recorded: dict[str, int] = {}  # trial id -> last iteration the sinks hold
        self.location = None  # the sweep directory, resolved once (a filesystem client)

    def __getstate__(self) -> dict:  # in Tune's experiment state: no clients, no files
        return {"spec": self.spec, "sweep_uri": self.sweep_uri}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    # --- guarded calls ---------------------------------------------------------------------
    def _drop(self, name: str, e: BaseException) -> None:
        self.sinks.pop(name, None)
        error = f"{type(e).__name__}: {first_line(e)}"
        sys.stderr.write(WARNING.format(name=name, error=error) + "\n")
        sys.stderr.flush()

    def _each(self, event: str, *args: Any) -> list:
        out = []
        for name, sink in list((self.sinks or {}).items()):
            try:
                out.append(getattr(sink, event)(*args))
            except Exception as e:  # a tracking backend never fails the sweep
                self._drop(name, e)
        return out

    def _open(self) -> None:
        from dipddpm.sweep.driver import current

        ctx = current()
        sha = ctx.provenance.get("git_sha", "unknown") if ctx is not None else "unknown"
        context = SweepContext(spec=self.spec, sweep_uri=self.sweep_uri, git_sha=sha)
        self.sinks = {}
        for name, values in self.spec.tracking.items():
            entry = TRACKING.get(name)
            try:
                self.sinks[name] = entry.open(entry.build(name, values), context)
            except Exception as e:
                self._drop(name, e)

    def _images(self, arts: Mapping[str, str]) -> dict[str, bytes]:
        """The PNG bytes of output images (paths relative to the sweep directory)."""
        if not arts:
            return {}
        if self.location is None:
            self.location = SweepContext(spec=self.spec, sweep_uri=self.sweep_uri).location()
        loc, out = self.location, {}
        for name, rel in arts.items():
            with loc.fs.open_input_stream(loc.child(rel).path) as f:
                out[name] = f.read()
        return out

    def _wants_images(self) -> bool:
        return any(TRACKING.get(n).wants_images for n in self.sinks or {})

    # --- Tune hooks ------------------------------------------------------------------------
    def setup(self, **info_) -> None:
        self._open()

    def on_trial_start(self, iteration, trials, trial, **info_) -> None:
        from dipddpm.sweep.spec.space import decode

        if self.sinks is None:
            self._open()
        params = trial_params(self.spec, decode(self.spec.search, trial.config))
        held = [h for h in self._each("trial_started", trial.trial_id, params) if h]
        self.recorded[trial.trial_id] = max([self.recorded.get(trial.trial_id, 0), *held])

    def on_trial_result(self, iteration, trials, trial, result, **info_) -> None:
        tid = trial.trial_id
        floor = self.recorded.get(tid, 0)
        new = [(int(r["iter"]), report_metrics(r)) for r in reports_in(result)
               if int(r["iter"]) > floor]
        if new:
            self._each("reported", tid, new)
            self.recorded[tid] = new[-1][0]
        if result.get("checkpoint_dir_name") and self._wants_images():
            arts = info(result, "artifacts") or {}
            images = self._guarded_images({k: v for k, v in arts.items() if k == "output"})
            if images:
                self._each("checkpointed", tid, int(info(result, "artifact_iter") or 0),
                           images)

    def _guarded_images(self, arts: Mapping[str, str]) -> dict[str, bytes]:
        try:
            return self._images(arts)
        except OSError:  # not written (yet): the next checkpoint has one
            return {}

    def on_trial_complete(self, iteration, trials, trial, **info_) -> None:
        self._end(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info_) -> None:
        self._end(trial, error=True)

    def _end(self, trial, error: bool) -> None:
        result = dict(trial.last_result or {})
        err = info(result, "error")
        if error and not err:
            e = trial.get_error()
            err = (str(e).strip().splitlines() or ["error"])[-1] if e else "trial raised"
        end = TrialEnd(
            trial_id=trial.trial_id, status=status_of(result, error), error=err,
            iters_done=int(result.get("iter", 0)), summary=info(result, "summary") or {},
            pairs=tuple(info(result, "pairs") or ()),
            images=self._guarded_images(info(result, "artifacts") or {})
            if self._wants_images() else {})
        self._each("trial_ended", end)

    def on_experiment_end(self, trials, **info_) -> None:
        finished = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._each("close", verdict(self.spec, self.sweep_uri) if finished else None,
                   {t.trial_id for t in trials})


def verdict(spec: Any, sweep_uri: str) -> dict[str, Any]:
    """The sweep's outcome as its trials table says: counts per status and the best trial."""
    from dipddpm.dataset.parquet import read_trials
    from dipddpm.sweep.rows import best_trial, status_counts

    rows = read_trials(SweepContext(spec=spec, sweep_uri=sweep_uri).location())
    return {"sweep": spec.name, "metric": spec.metric, "mode": spec.mode,
            "trials": len(rows), **status_counts(rows), "best": best_trial(rows, spec)}
