"""Before a resume: give every unfinished trial the checkpoint Tune's saved state names.

Tune keeps one checkpoint per trial (`CheckpointConfig(num_to_keep=1)`): when a trial reports
checkpoint k+1, the driver deletes checkpoint k at once, but it writes its experiment state
(which names each trial's latest checkpoint) only on its next snapshot. A driver killed in
between leaves a state naming checkpoint k, which no longer exists (or, on an object store,
exists in part); Tune would then fail the trial with "Could not recover from checkpoint".
Checkpoint k+1 is on storage and the recorder saw its result (it flushes the metrics file
before Tune registers a checkpoint), so the trial resumes from k+1: the lowest whole
checkpoint above k, copied to the path the state names. A higher one may be there too, written
by the worker after the driver's last result; its reports never reached the driver, so it is
used only when k+1 is not whole. The repair is idempotent: a copy cut off by another kill is
not whole, and is redone on the next resume. `fs`: the filesystem `tune_uri` is a path on (remote
storage), None for a local path or URI.

Cost per resume: reading Tune's newest experiment state (ExperimentAnalysis also looks for
each trial's result.json, which a sweep does not write: two existence checks per trial), one
read of each unfinished trial's named checkpoint file, and for a broken one a listing of its
folder and a read of each later checkpoint file it considers.
"""

from __future__ import annotations

import re

CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)$")


def _index(path: str) -> int | None:
    m = CHECKPOINT_DIR.search(path.rstrip("/"))
    return int(m.group(1)) if m else None


def readable(fs, ckpt_dir: str) -> bool:
    """Whether a checkpoint folder holds a whole trial state (a worker killed with its driver
    can leave a folder it was still uploading, empty or with a cut-off file)."""
    import io

    import torch

    from dipddpm.sweep.trainable import STATE_FILE

    try:
        with fs.open_input_stream(f"{ckpt_dir}/{STATE_FILE}") as f:
            torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def first_whole_checkpoint_after(fs, trial_dir: str, index: int) -> str | None:
    """The lowest-numbered whole checkpoint_* folder in `trial_dir` above `index`."""
    import pyarrow.fs as pafs

    found = sorted((i, info.path) for info in fs.get_file_info(pafs.FileSelector(trial_dir))
                   if info.type == pafs.FileType.Directory
                   and (i := _index(info.path)) is not None and i > index)
    return next((path for _, path in found if readable(fs, path)), None)


def saved_trials(tune_uri: str, fs=None) -> list:
    """The trials of Tune's newest saved experiment state."""
    from ray.tune import ExperimentAnalysis

    return ExperimentAnalysis(tune_uri, storage_filesystem=fs).trials


def align_search_counter(tune_uri: str, fs, n_trials: int) -> int | None:
    """Tune's saved state is several files (the trial list, the search generator's trial
    counter, the searcher) written together, but uploaded to object storage one by one: a
    driver killed between two uploads leaves a counter from another moment than the trial
    list, and Tune would then create too few or too many trials. The counter is set back to
    the number of trials in the list. Returns the counter found when it was changed."""
    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle

    found = [i.path for i in fs.get_file_info(pafs.FileSelector(tune_uri))
             if i.base_name.startswith("search_gen_state-") and i.base_name.endswith(".json")]
    if not found:
        return None
    newest = max(found)  # Tune's own choice: the greatest name (session timestamps)
    with fs.open_input_stream(newest) as f:
        state = cloudpickle.loads(f.read())
    if state.get("counter") == n_trials:
        return None
    before, state["counter"] = state.get("counter"), n_trials
    with fs.open_output_stream(newest) as f:
        f.write(cloudpickle.dumps(state))
    return before


def repair_missing_checkpoints(tune_uri: str, fs=None, trials: list | None = None) -> list[str]:
    """Copy, for every unfinished trial whose named checkpoint is gone or not whole, the first
    whole checkpoint after it to the named path (`trials`: `saved_trials`, read when not
    given). Returns the ids of the trials repaired."""
    import pyarrow.fs as pafs

    repaired = []
    for trial in trials if trials is not None else saved_trials(tune_uri, fs):
        ckpt = trial.checkpoint
        if trial.status in ("TERMINATED", "ERROR") or ckpt is None:
            continue  # not resumed (finished or failed), or restarted from scratch
        fs, path = ckpt.filesystem, ckpt.path.rstrip("/")
        index = _index(path)
        if index is None or readable(fs, path):
            continue
        later = first_whole_checkpoint_after(fs, path.rsplit("/", 1)[0], index)
        if later is None:
            continue  # nothing to resume from: Tune reports the trial's failure as it is
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)  # a part of k (deleted object by object) or a cut-off copy
        fs.create_dir(path, recursive=True)
        pafs.copy_files(later, path, source_filesystem=fs, destination_filesystem=fs)
        repaired.append(trial.trial_id)
    return repaired
