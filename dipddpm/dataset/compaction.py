"""Compaction: a sweep's many per-trial Parquet files become a few.

Each trial writes its own `trials/part-<id>.parquet` and `metrics/part-<id>.parquet` (atomic per
trial, and a resume rewrites a trial's files in place). A 10,000-trial sweep is then 20,000
small files, a cost every reader and every object-store listing pays. Compaction rewrites the
rows of the finished trials into `compact-NNNNN.parquet` files (at most ROWS_PER_FILE rows
each, in trial order) and leaves the part files of unfinished trials alone, so a later
`sweep resume` rewrites only files that are still parts: no row is lost or doubled. It runs
at the end of a sweep (spec `compact: true`, the default) and as `dipddpm results compact DIR`.

- Atomic: the new folder is built aside (`<sweep>/.compact/trials`), then swapped with the
  live one in one `renameat2(RENAME_EXCHANGE)` (Linux); a reader sees the old files or the new
  ones, never both or neither. A crash at any point leaves a readable sweep; the next run
  removes what a crashed one left. (Where the exchange is not available, two renames, and
  a crash between them is repaired by the next run: the old folder is put back.)
- Idempotent: with no finished trial left in a part file there is nothing to do.
- Same rows, same schema: the trials files already share one schema (`results.harmonize`);
  the four readers (`dipddpm results`, pandas, polars, DuckDB) read the folder or its
  `*.parquet` glob, compacted or not, and get the same table.
- Which trials are finished: every trial once the last driver ended (`driver.json`), else
  those Tune's saved state shows TERMINATED or ERROR, else (no Tune state: Parquet files
  copied from a cluster) every trial. A sweep whose driver runs is refused.

Local and NFS storage only; on an object store the files stay as they are.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dipddpm.dataset.lifecycle import driver_state, read_driver
from dipddpm.errors import DipddpmError

SUBDIRS = ("trials", "metrics", "pairs")  # pairs/: studies only
STAGING = ".compact"
ROWS_PER_FILE = {"trials": 100_000, "metrics": 2_000_000, "pairs": 1_000_000}
ROW_GROUP = 256 * 1024
SORT = {"trials": ["trial_id"], "metrics": ["trial_id", "metric", "iter"],
        "pairs": ["trial_id", "image", "replicate"]}


@dataclass
class Compaction:
    """What a compaction did, per folder: files before and after, rows, part files kept."""

    path: str
    files_before: dict[str, int]
    files_after: dict[str, int]
    rows: dict[str, int | None]  # rows written (None: the folder needed nothing)
    kept_parts: int  # part files of unfinished trials, left for a resume to rewrite

    @property
    def changed(self) -> bool:
        return any(r is not None for r in self.rows.values())


def data_files(folder: Path) -> list[Path]:
    """The Parquet files a reader sees in a folder (not hidden, not `_`-prefixed)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def part_id(p: Path) -> str | None:
    """The trial id of a part file, None for a compacted file."""
    name = p.name
    return name[len("part-"):-len(".parquet")] if name.startswith("part-") else None


def finished_trials(sweep: Path) -> set[str] | None:
    """Ids of the finished trials; None: every trial (see the module docstring)."""
    if driver_state(str(sweep)) == "ended" or not (sweep / "tune").is_dir():
        return None
    from ray.tune import ExperimentAnalysis

    try:
        trials = ExperimentAnalysis(str(sweep / "tune")).trials
    except Exception:  # no saved state yet: Tune would start every trial anew
        return set()
    return {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}


def check_not_running(sweep: Path) -> None:
    if driver_state(str(sweep)) != "running":
        return
    info = read_driver(str(sweep)) or {}
    raise DipddpmError(
        f"sweep {sweep} is running (driver pid {info.get('pid')} on {info.get('host')}); a "
        "sweep compacts itself when it ends; if that driver is gone, pass --force")


def recover(sweep: Path) -> None:
    """Undo what a crashed compaction left: put back a folder the fallback moved aside, then
    remove the staging folder (whichever side of the swap it holds, the live one is whole)."""
    staging = sweep / STAGING
    for sub in SUBDIRS:
        old = staging / f"old-{sub}"
        if old.is_dir() and not (sweep / sub).exists():
            os.rename(old, sweep / sub)
    if staging.exists():
        shutil.rmtree(staging)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE); False: unsupported."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap(new: Path, live: Path) -> None:
    """Make `new` the live folder; the old files end up under the staging folder."""
    if _exchange(new, live):
        return
    old = new.parent / f"old-{live.name}"
    os.rename(live, old)  # a crash here: `recover` renames it back
    os.rename(new, live)


def _read(files: list[Path], schema=None):
    import pyarrow.dataset as ds

    return ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table()


def merged_table(sub: str, parts: list[Path], compacted: list[Path]):
    """The rows of `parts` and of earlier compacted files, one schema; a trial in both (a part
    rewritten after a compaction) keeps its part's rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = parts + compacted
    schema = pa.unify_schemas([pq.read_schema(f) for f in files])
    schema = schema.remove_metadata()
    table = _read(parts, schema) if parts else schema.empty_table()
    if compacted:
        old = _read(compacted, schema)
        ids = pa.array([part_id(p) for p in parts], pa.string())
        table = pa.concat_tables([table, old.filter(pc.invert(pc.is_in(old["trial_id"], ids)))])
    return table.sort_by([(c, "ascending") for c in SORT[sub]])


def write_compacted(sub: str, table, into: Path, sweep_name: str) -> int:
    """Write `table` as compact-NNNNN.parquet files in `into`; returns how many."""
    import pyarrow.parquet as pq

    from dipddpm.dataset.parquet import metadata

    table = table.replace_schema_metadata(metadata(sweep_name))
    step = ROWS_PER_FILE[sub]
    n = max(1, -(-table.num_rows // step))
    for i in range(n):
        pq.write_table(table.slice(i * step, step), into / f"compact-{i:05d}.parquet",
                       row_group_size=ROW_GROUP)
    return n


def _sweep_name(files: list[Path], default: str) -> str:
    import pyarrow.parquet as pq

    meta = pq.read_schema(files[0]).metadata or {}
    return meta.get(b"dipddpm.sweep", default.encode()).decode()


def compact_folder(sweep: Path, sub: str, finished: set[str] | None) -> tuple:
    """Compact one folder; returns (files before, files after, rows written or None when
    there was nothing to do, part files kept)."""
    live = sweep / sub
    files = data_files(live)
    parts = [p for p in files if part_id(p) is not None]
    done = [p for p in parts if finished is None or part_id(p) in finished]
    kept = [p for p in parts if finished is not None and part_id(p) not in finished]
    compacted = [p for p in files if part_id(p) is None]
    if not done and len(compacted) <= 1:
        return len(files), len(files), None, len(kept)  # nothing to do
    new = sweep / STAGING / sub
    new.mkdir(parents=True)
    table = merged_table(sub, done, compacted)
    n = write_compacted(sub, table, new, _sweep_name(files, sweep.name))
    for p in kept:  # hard links: the same bytes, no copy
        try:
            os.link(p, new / p.name)
        except OSError:
            shutil.copy2(p, new / p.name)
    swap(new, live)
    return len(files), n + len(kept), table.num_rows, len(kept)


def compact(sweep_dir: str | Path, finished: set[str] | None = None, force: bool = False,
            known: bool = False) -> Compaction:
    """Compact the sweep's trials and metrics folders (see the module docstring).
    `finished`, when `known`, is the set of finished trial ids (None: all); else it is read."""
    from dipddpm.dataset.storage import is_remote

    if is_remote(str(sweep_dir)):
        raise DipddpmError(f"{sweep_dir}: compaction works on local or NFS storage only; copy "
                           "the sweep to a local folder, or leave its part files as they are")
    sweep = Path(sweep_dir).absolute()
    if not force:
        check_not_running(sweep)
    recover(sweep)  # first: a crashed run may have left trials/ aside
    if not (sweep / "trials").is_dir():
        raise DipddpmError(f"{sweep} is not a sweep result: it has no trials/ folder; expected "
                           "<storage>/<sweep> as `dipddpm sweep run` writes")
    if not known:
        finished = finished_trials(sweep)
    before, after, rows, kept = {}, {}, {}, 0
    for sub in SUBDIRS:
        if sub == "pairs" and not (sweep / sub).is_dir():
            continue  # not a study
        before[sub], after[sub], rows[sub], k = compact_folder(sweep, sub, finished)
        kept += k
    recover(sweep)  # the old files, now in the staging folder
    return Compaction(str(sweep), before, after, rows, kept)
