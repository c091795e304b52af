"""The sweep's Parquet tables (its images: artifacts.py), the layout that `dipddpm.analysis`
reads (README.md, results).

    <sweep dir>/spec.resolved.yaml
    <sweep dir>/optuna.db                        (Optuna searcher only)
    <sweep dir>/trials/part-<trial_id>.parquet   one row per trial
    <sweep dir>/metrics/part-<trial_id>.parquet  long: sweep, trial_id, iter, metric, value,
                                                 image, replicate (a study's pairs; else null)
    <sweep dir>/pairs/part-<trial_id>.parquet    a study's row per trial x image x replicate
    <sweep dir>/artifacts/<trial_id>/output.png  (and output_sm.png)
    <sweep dir>/artifacts/<trial_id>/iters/output-<iter>.png   the output at each checkpoint
    <sweep dir>/artifacts/problem/clean.png, noisy.png

One file per trial, rewritten whole and atomically when the trial ends (or is retried), so a
resumed sweep never duplicates a row. Every trials file has the same columns at any moment
(a trial without a value has a null), and their types are stable: config columns are typed from
the method's config dataclass, summary metrics are float64 except iteration counts (int64).
Every file carries the schema version, the sweep name and the metric definitions.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dipddpm.dataset.columns import (  # columns: declared once, there
    SCHEMA_VERSION,
    column_type,
    config_kind,
)
from dipddpm.dataset.storage import Location, resolve
from dipddpm.errors import DipddpmError, first_line

TIME_COLUMNS = ("started_at", "ended_at")


def metadata(sweep: str) -> dict[str, str]:
    from dipddpm.metrics import METRIC_DEFINITIONS

    return {"dipddpm.schema_version": SCHEMA_VERSION, "dipddpm.sweep": sweep,
            "dipddpm.metric_definitions": json.dumps(METRIC_DEFINITIONS)}


def _loc(sweep_dir: str | Location) -> Location:
    return sweep_dir if isinstance(sweep_dir, Location) else resolve(sweep_dir)


def _write_table(loc: Location, table, sweep: str) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata(sweep)), buf)
    loc.write_bytes(buf.getvalue())


def config_value(method: str, key: str, value: Any) -> Any:
    """A config value as its column stores it: a word of a number field that also takes one
    (dip_prior_ddpm's `t0: auto`) is null there, the step it chose being in its own column."""
    if isinstance(value, str) and config_kind(method, key) != "string":
        return None
    return value


def flat_value(v: Any) -> Any:
    """Tuples/lists/dicts as JSON strings; everything else as is."""
    if isinstance(v, tuple | list | dict):
        return json.dumps(list(v) if not isinstance(v, dict) else v)
    return v


def write_trial_row(sweep_dir: str | Location, row: dict, columns=None):
    """Write trials/part-<trial_id>.parquet (one row) with the columns of `columns` (the
    schema every trials file has so far, None: read it) plus its own; returns that union.
    When the union grows (a trial with a column no earlier one has), the earlier files get
    it too, so a reader during a sweep sees one schema as well as one after it."""
    import pyarrow as pa

    loc = _loc(sweep_dir)
    row = {k: flat_value(v) for k, v in row.items()}
    for k in TIME_COLUMNS:
        if isinstance(row.get(k), int | float):
            row[k] = datetime.fromtimestamp(row[k]).astimezone()
    own = pa.schema([(k, column_type(row, k)) for k in row])
    if columns is None:
        columns = trials_schema(loc)
    try:
        union = own if columns is None else pa.unify_schemas([columns, own])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DipddpmError(f"trial {row['trial_id']}: its columns do not fit the trials files "
                           f"already in {loc.uri}/trials ({first_line(e)}); those files come "
                           f"from another sweep or dipddpm version: give this run another "
                           f"name or storage") from None
    table = pa.Table.from_pylist([row], schema=union)  # absent columns: null
    target = loc.child("trials", f"part-{row['trial_id']}.parquet")
    _write_table(target, table, row["sweep"])
    if columns is not None and union.names != columns.names:
        harmonize(loc)
    return union


def trials_schema(sweep_dir: str | Location):
    """The union of the trials files' schemas (None when there is none yet)."""
    loc = _loc(sweep_dir).child("trials")
    files = _trials_files(loc)
    return _union_schema(loc.fs, files) if files else None


def _trials_files(loc: Location) -> list[str]:
    if not loc.exists():
        return []
    return sorted(f.path for f in loc.fs.get_file_info(_selector(loc))
                  if f.path.endswith(".parquet") and not f.base_name.startswith("."))


def metrics_schema():
    """The metrics table's columns (columns.METRICS; image, replicate: a study's per-pair rows,
    null for the trial's own values and absent from files written before studies)."""
    import pyarrow as pa

    from dipddpm.dataset.columns import METRICS, arrow

    return pa.schema([(k, arrow(v)) for k, v in METRICS.items()])


def write_metrics(sweep_dir: str | Location, sweep: str, trial_id: str,
                  rows: Iterable[Mapping[str, Any]]) -> str:
    """Write metrics/part-<trial_id>.parquet from rows {iter, metric, value[, image,
    replicate]}; the last value of a repeated (iter, metric, image, replicate) wins, so
    replayed reports after a restart are not doubled."""
    import pyarrow as pa

    loc = _loc(sweep_dir)
    keyed: dict[tuple, float] = {}
    for r in rows:
        rep = r.get("replicate")
        keyed[(str(r.get("image") or ""), -1 if rep is None else int(rep), int(r["iter"]),
               str(r["metric"]))] = float(r["value"])
    items = sorted(keyed.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3], kv[0][2]))
    n = len(items)
    table = pa.table({
        "sweep": [sweep] * n, "trial_id": [trial_id] * n,
        "iter": [k[2] for k, _ in items], "metric": [k[3] for k, _ in items],
        "value": [v for _, v in items],
        "image": [k[0] or None for k, _ in items],
        "replicate": [None if k[1] < 0 else k[1] for k, _ in items],
    }, schema=metrics_schema())
    target = loc.child("metrics", f"part-{trial_id}.parquet")
    _write_table(target, table, sweep)
    return target.path


def read_metrics(sweep_dir: str | Location, trial_id: str) -> list[dict]:
    """The rows of a trial's metrics file (empty when there is none yet)."""
    import pyarrow.parquet as pq

    target = _loc(sweep_dir).child("metrics", f"part-{trial_id}.parquet")
    if not target.exists():
        return []
    with target.fs.open_input_file(target.path) as f:
        table = pq.read_table(f)
    cols = [c for c in ("iter", "metric", "value", "image", "replicate")
            if c in table.column_names]
    return table.select(cols).to_pylist()


def write_pairs(sweep_dir: str | Location, sweep: str, trial_id: str,
                rows: list[Mapping[str, Any]]) -> str:
    """Write pairs/part-<trial_id>.parquet: a study trial's row per (image, replicate), with
    that pair's summary metrics (final, best, best_iter, GT-free pick) and its reproduce."""
    return _write_rows(sweep_dir, sweep, "pairs", trial_id, rows, {"trial_id": trial_id})


def write_baseline(sweep_dir: str | Location, sweep: str, name: str,
                   rows: list[Mapping[str, Any]]) -> str:
    """Write baselines/part-<name>.parquet: a baseline's row per (image, replicate)."""
    return _write_rows(sweep_dir, sweep, "baselines", name, rows)


def _write_rows(sweep_dir, sweep: str, table: str, part: str, rows, extra=None) -> str:
    import pyarrow as pa

    rows = [{"sweep": sweep, **(extra or {}), **r} for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    schema = pa.schema([(k, column_type(rows[0], k, table)) for k in keys])
    out = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows], schema=schema)
    target = _loc(sweep_dir).child(table, f"part-{part}.parquet")
    _write_table(target, out, sweep)
    return target.path


def read_trials(sweep_dir: str | Location) -> list[dict]:
    """Every trials row of the sweep (as dicts), or [] when none is written yet."""
    import pyarrow.dataset as ds

    loc = _loc(sweep_dir).child("trials")
    files = _trials_files(loc)
    if not files:
        return []
    dataset = ds.dataset(files, filesystem=loc.fs, format="parquet",
                         schema=_union_schema(loc.fs, files))
    return dataset.to_table().to_pylist()


def _selector(loc: Location):
    import pyarrow.fs as pafs

    return pafs.FileSelector(loc.path, allow_not_found=True)


def _union_schema(fs, files: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f, filesystem=fs) for f in files]
    return pa.unify_schemas(schemas)


def harmonize(sweep_dir: str | Location) -> int:
    """Give every trials file the same columns (nulls where a trial has no value, e.g. the
    summary metrics of a pruned trial), so any reader sees one schema. Returns files fixed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    loc = _loc(sweep_dir).child("trials")
    files = _trials_files(loc)
    if not files:
        return 0
    schemas = {path: pq.read_schema(path, filesystem=loc.fs) for path in files}
    union = pa.unify_schemas(list(schemas.values()))
    fixed = 0
    for path, schema in schemas.items():
        if schema.names == union.names:
            continue  # read only the footer of a file that already has every column
        with loc.fs.open_input_file(path) as f:
            table = pq.read_table(f)
        sweep = (table.schema.metadata or {}).get(b"dipddpm.sweep", b"").decode()
        cols = [table.column(n) if n in table.schema.names
                else pa.nulls(table.num_rows, union.field(n).type) for n in union.names]
        out = pa.Table.from_arrays(cols, schema=pa.schema([union.field(n) for n in union.names]))
        _write_table(loc.child(path.rsplit("/", 1)[-1]), out, sweep)
        fixed += 1
    return fixed


PART_FOLDERS = ("trials", "metrics", "pairs")  # a trial's own part-<id>.parquet in each


def part_trial_id(name: str) -> str | None:
    """The trial id of a part file's name, None for any other file (compacted, hidden)."""
    if name.startswith("part-") and name.endswith(".parquet"):
        return name[len("part-"):-len(".parquet")]
    return None


def written_trials(sweep_dir: str | Location) -> dict[str, str]:
    """Trial id -> the trials file holding its row, for every trial with a row (a trial
    that ended): its part file, or the compacted file (read) it is in."""
    import pyarrow.parquet as pq

    loc = _loc(sweep_dir).child("trials")
    out: dict[str, str] = {}
    for path in _trials_files(loc):
        name = path.rsplit("/", 1)[-1]
        tid = part_trial_id(name)
        if tid is not None:
            out.setdefault(tid, path)
            continue
        with loc.fs.open_input_file(path) as f:
            ids = pq.read_table(f, columns=["trial_id"]).column("trial_id").to_pylist()
        out.update({i: path for i in ids if i not in out})  # a part file wins (rewritten)
    return out


def part_files(sweep_dir: str | Location) -> dict[str, list[str]]:
    """Trial id -> its part files in trials/, metrics/ and pairs/."""
    loc = _loc(sweep_dir)
    out: dict[str, list[str]] = {}
    for sub in PART_FOLDERS:
        d = loc.child(sub)
        if not d.exists():
            continue
        for f in loc.fs.get_file_info(_selector(d)):
            tid = part_trial_id(f.base_name)
            if tid is not None:
                out.setdefault(tid, []).append(f.path)
    return out


def drop_trials(sweep_dir: str | Location, ids: Iterable[str]) -> list[str]:
    """Delete the part files and artifacts/<id>/ of trials `ids`; returns what it removed,
    one path each. Never called implicitly on a trial that ended (runner: `--drop-orphans`).
    A row in a compacted file cannot be dropped alone: refused, nothing deleted."""
    loc = _loc(sweep_dir)
    ids = sorted(set(ids))
    compacted = {t: p for t, p in written_trials(loc).items()
                 if t in ids and part_trial_id(p.rsplit("/", 1)[-1]) is None}
    if compacted:
        t, p = next(iter(compacted.items()))
        raise DipddpmError(f"trial {t} is in the compacted file {p}, with other trials' rows; "
                           f"it cannot be dropped alone")
    files = part_files(loc)
    removed = []
    for tid in ids:
        for path in files.get(tid, []):
            loc.fs.delete_file(path)
            removed.append(path)
        art = loc.child("artifacts", tid)
        if art.exists():
            loc.fs.delete_dir(art.path)
            removed.append(art.path + "/")
    return removed
