"""Tune's own readers work on a sweep: a `result.json` per trial, written once when it ends.

Tune's JSON/CSV loggers are off (local_ray.py: they write every result, files that grow with
time). Tune's readers need one: without it `ray.tune.ExperimentAnalysis(path).dataframe()` is
empty and warns once per trial. So when a trial ends this driver-side callback writes its last
result (the config as Tune holds it, the metrics it last reported, `iter`, its status) as the
trial folder's `result.json`, one JSON line, in one write: a request per trial on object
storage, whatever the sweep's length. Then

    ExperimentAnalysis("<sweep>/tune").dataframe()               one row per finished trial
    Tuner.restore("<sweep>/tune", trainable).get_results().get_dataframe()

give the trial's config and last metrics. The full record (every report, the study's pairs,
images) is the Parquet dataset: `dipddpm.load("<sweep>")`.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from ray.tune import Callback

from dipddpm.sweep.rows import info, status_of

RESULT_FILE = "result.json"  # ray.air.constants.EXPR_RESULT_FILE
DROPPED = ("info", "pairs")  # bookkeeping and a study's per-pair values (in the Parquet files)


def result_line(result: dict[str, Any], error: bool) -> str:
    """The JSON line Tune's readers parse: the last result without its bookkeeping, the
    trial's status added; non-finite numbers as null."""
    row = {k: v for k, v in result.items() if k not in DROPPED}
    row["status"] = status_of(result, error)
    err = info(result, "error")
    if err:
        row["error"] = err
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v
             for k, v in row.items()}
    return json.dumps(clean, default=str) + "\n"


class TuneResultFiles(Callback):
    """Writes `<trial folder>/result.json` when a trial ends (see the module docstring)."""

    def __init__(self) -> None:
        self.warned = False

    def on_trial_complete(self, iteration, trials, trial, **info_) -> None:
        self._write(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info_) -> None:
        self._write(trial, error=True)

    def _write(self, trial, error: bool) -> None:
        import pyarrow.fs as pafs

        result = dict(trial.last_result or {})
        if not result:
            return
        try:
            storage = trial.storage
            fs, folder = storage.storage_filesystem, storage.trial_fs_path
            if isinstance(fs, pafs.LocalFileSystem):
                fs.create_dir(folder, recursive=True)
            with fs.open_output_stream(f"{folder}/{RESULT_FILE}") as f:
                f.write(result_line(result, error).encode())
        except Exception as e:  # Tune's readers are a convenience: never fail the sweep
            if not self.warned:
                self.warned = True
                sys.stderr.write(f"warning: could not write {RESULT_FILE} of trial "
                                 f"{trial.trial_id} for Tune's readers ({type(e).__name__}: "
                                 f"{e}); the Parquet results are complete\n")
