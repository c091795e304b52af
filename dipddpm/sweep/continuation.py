"""What a driver does with the sweep directory it is given, decided before Ray starts: start
Tune afresh, restore Tune's saved state, or nothing (the sweep is finished). Nothing may be
lost or doubled:

- Tune's saved state (`<sweep dir>/tune/`) is the sweep's list of trials. A fresh Tuner knows
  none of the trials already written and would run the whole sweep again, every configuration
  twice. So a fresh start is allowed only where no trial has ended yet (no trials row): the
  driver died before Tune saved anything, or the sweep is new.
- A sweep whose driver ended it (driver.json) is finished where Tune's saved state agrees
  (every trial in it finished, or no state to ask: a sweep copied without tune/); so is one
  whose saved state holds every trial it asks for, all ended (a driver killed just before
  it wrote `ended`), and one without Tune's state whose trials rows number at least the
  trials it asks for. Nothing to do, said in one line, nothing written. (An `ended` that
  Tune contradicts, e.g. written by an older dipddpm for a sweep stopped with Ctrl-C, is
  restored.)
- Without a readable saved state, with some trials written but not all, continuing would
  double them: refused, saying what is missing and what the user can do.
- With a saved state, a trial with a row that the state does not know (it started after Tune's
  last save and ended before the driver died) would run again under a new id. Its rows are
  finished results: deleted only when the user asks (`sweep resume --drop-orphans`), each path
  said; without it the resume is refused, naming them.
- A trial that never ended and that no restore continues (Tune does not know it) leaves only
  its reports so far (metrics part files, pictures): dead files, removed, each one said.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dipddpm.dataset.storage import Location
from dipddpm.errors import DipddpmError, first_line
from dipddpm.sweep.spec import SweepSpec

TUNE_DIR = "tune"
FINISHED = ("TERMINATED", "ERROR")  # Tune's statuses of a trial that will not run again


class Start(enum.Enum):
    FRESH = "fresh"  # a new Tuner: no trial has ended yet
    RESTORE = "restore"  # Tune's saved state continues
    FINISHED = "finished"  # nothing to do


@dataclass
class Plan:
    start: Start
    line: str = ""  # what the console says about it
    orphans: list[str] = field(default_factory=list)  # ended trials to drop (--drop-orphans)
    dead: list[str] = field(default_factory=list)  # trials whose partial files go
    written: int = 0  # trials with a row


def expected_trials(spec: SweepSpec) -> int:
    """How many trials the sweep runs: num_samples, times the grid's points (grid: search)."""
    from dipddpm.sweep.spec.space import grid_size

    return spec.num_samples * grid_size(spec.search)


def tune_state(tune: Location) -> tuple[list | None, str]:
    """(Tune's saved trials, '') or (None, what is wrong with the saved state)."""
    from ray import tune as ray_tune

    from dipddpm.cluster.local_ray import quiet_ray_logs
    from dipddpm.sweep.checkpoints import saved_trials
    from dipddpm.sweep.runner import tune_storage

    quiet_ray_logs()
    if not tune.exists():
        return None, "missing"
    where = tune_storage(tune)
    path, fs = where["storage_path"], where.get("storage_filesystem")
    if not ray_tune.Tuner.can_restore(path, storage_filesystem=fs):
        return None, "incomplete (no tuner.pkl)"
    try:
        return list(saved_trials(path, fs)), ""
    except Exception as e:  # cut off, or not Tune's: nothing a Tuner could restore
        return None, f"unreadable ({type(e).__name__}: {first_line(e)})"


def plan(spec: SweepSpec, sweep: Location, drop_orphans: bool = False) -> Plan:
    """The start of a driver on `sweep` (see the module docstring); refusals raise."""
    from dipddpm.dataset.lifecycle import read_driver
    from dipddpm.dataset.parquet import part_files, part_trial_id, written_trials

    if not sweep.exists():
        return Plan(Start.FRESH)
    written = written_trials(sweep)
    ended = (read_driver(sweep) or {}).get("state") == "ended"
    expected = expected_trials(spec)
    trials, problem = tune_state(sweep.child(TUNE_DIR))
    tune_done = trials is not None and all(t.status in FINISHED for t in trials)
    if ended and (trials is None or tune_done):
        return finished(sweep, len(written), "its driver ended it")  # and Tune agrees
    partial = set(part_files(sweep)) - set(written)
    if trials is not None:
        known = {t.trial_id for t in trials}
        orphans = sorted(set(written) - known)
        if tune_done and len(trials) >= expected and not orphans:
            return finished(sweep, len(written), f"all {len(trials)} trials of Tune's saved "
                                                 f"state ended")
        if orphans and not drop_orphans:
            raise DipddpmError(orphan_refusal(sweep, orphans))
        folded = [t for t in orphans if part_trial_id(written[t].rsplit("/", 1)[-1]) is None]
        if folded:  # compaction folds only trials Tune knows: another sweep's files
            raise DipddpmError(f"{sweep.uri}: trial {folded[0]} is in the compacted file "
                               f"{written[folded[0]]} but not in Tune's saved state; that "
                               f"file holds other trials' rows too, so it cannot be dropped "
                               f"alone; move the file out of the sweep and resume")
        return Plan(Start.RESTORE, orphans=orphans, dead=sorted(partial - known),
                    written=len(written))
    if not written:
        return Plan(Start.FRESH, dead=sorted(partial))
    if len(written) >= expected:
        return finished(sweep, len(written), f"all {expected} of its trials ended")
    raise DipddpmError(
        f"{sweep.uri}: Tune's saved state {sweep.child(TUNE_DIR).uri} is {problem}, and "
        f"{len(written)} of the sweep's {expected} trials ended; a fresh Tune would run them "
        f"again. Put the tune/ folder back (from where the sweep was copied or synced) and "
        f"resume; or read what was written (`dipddpm results summarize {sweep.uri}`); or run "
        f"the spec anew under another name (--set name=NEW)")


def finished(sweep: Location, n: int, why: str) -> Plan:
    return Plan(Start.FINISHED, written=n,
                line=f"sweep {sweep.uri} is finished ({why}; {n} trials written): nothing "
                     f"to resume, nothing changed")


def orphan_refusal(sweep: Location, orphans: list[str]) -> str:
    shown = ", ".join(orphans[:10]) + (f" and {len(orphans) - 10} more" if len(orphans) > 10
                                       else "")
    return (f"{sweep.uri}: {len(orphans)} trial(s) ended after Tune's last saved state, which "
            f"does not know them ({shown}); Tune would run their places again and the sweep "
            f"would hold more trials than it asks for. `dipddpm sweep resume {sweep.uri} "
            f"--drop-orphans` deletes their files first (each one listed); or keep the sweep "
            f"as it is (`dipddpm results summarize {sweep.uri}`)")
