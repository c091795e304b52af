"""Compaction (dipddpm/dataset/compaction.py): part files become a few, atomically and
idempotently, and the four readers (our `results` commands, pandas, polars, DuckDB) read the
same tables before, after, and after a crash in the middle of it."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.dataset import compaction
from dipddpm.dataset.compaction import compact, data_files

runner = CliRunner()


def read_all(d) -> dict:
    """The trials and metrics tables as each reader sees them, in one order."""
    import duckdb
    import pandas as pd
    import polars as pl

    from dipddpm.analysis import load_sweep
    from dipddpm.analysis.summarize import summarize

    def norm(df, keys):
        df = df.sort_values(keys, ignore_index=True)
        return df[sorted(df.columns)]

    t, m = d / "trials", d / "metrics"
    mkeys = ["trial_id", "metric", "iter"]
    ours = load_sweep(d)
    s = summarize(ours)
    return {
        "ours": norm(ours.trials, ["trial_id"]), "ours_metrics": norm(ours.metrics(), mkeys),
        "summary": (s.top.to_json(), s.groups.to_json(), s.counts),
        "pandas": norm(pd.read_parquet(t), ["trial_id"]),
        "pandas_metrics": norm(pd.read_parquet(m), mkeys),
        "polars": norm(pl.read_parquet(f"{t}/*.parquet").to_pandas(), ["trial_id"]),
        "polars_metrics": norm(pl.read_parquet(f"{m}/*.parquet").to_pandas(), mkeys),
        "duckdb": norm(duckdb.sql(f"SELECT * FROM read_parquet('{t}/*.parquet', "
                                  "union_by_name = true)").df(), ["trial_id"]),
        "duckdb_metrics": norm(duckdb.sql(f"SELECT * FROM read_parquet('{m}/*.parquet')")
                               .df(), mkeys)}


def assert_same(a: dict, b: dict) -> None:
    import pandas as pd

    assert a["summary"] == b["summary"]
    for k in a:
        if k != "summary":
            pd.testing.assert_frame_equal(a[k], b[k], check_dtype=True, obj=k)


def counts(d) -> dict:
    return {sub: len(data_files(d / sub)) for sub in ("trials", "metrics")}


def test_compaction_keeps_every_reader_and_is_idempotent(sweep):
    before = read_all(sweep)
    assert counts(sweep) == {"trials": 12, "metrics": 12}
    c = compact(sweep)
    assert c.changed and c.files_before == {"trials": 12, "metrics": 12}
    assert counts(sweep) == c.files_after == {"trials": 1, "metrics": 1}
    assert c.rows["trials"] == 12 and c.rows["metrics"] == len(before["pandas_metrics"])
    assert [p.name for p in data_files(sweep / "trials")] == ["compact-00000.parquet"]
    assert not (sweep / compaction.STAGING).exists()
    assert_same(before, read_all(sweep))
    stamp = {p: p.stat().st_mtime_ns for p in (sweep / "trials").iterdir()}
    again = compact(sweep)  # nothing left to do: nothing touched
    assert not again.changed and again.files_after == {"trials": 1, "metrics": 1}
    assert {p: p.stat().st_mtime_ns for p in (sweep / "trials").iterdir()} == stamp


def test_compacted_files_carry_the_metadata(sweep):
    import pyarrow.parquet as pq

    compact(sweep)
    for sub in ("trials", "metrics"):
        meta = pq.read_schema(sweep / sub / "compact-00000.parquet").metadata
        assert meta[b"dipddpm.sweep"] == b"fixture" and meta[b"dipddpm.schema_version"] == b"1"


@pytest.mark.parametrize("where", ["writing", "second swap"])
def test_a_crash_mid_compaction_leaves_a_readable_sweep(sweep, monkeypatch, where):
    """Raised while the compacted files are written, or after trials/ was swapped and before
    metrics/ was: every reader still reads the same tables; the next run finishes the job."""
    before = read_all(sweep)
    calls = []
    real_write, real_swap = compaction.write_compacted, compaction.swap

    def write(*args, **kwargs):
        n = real_write(*args, **kwargs)
        if where == "writing":
            raise OSError("disk full (simulated)")
        return n

    def swap(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped between the two folders
        real_swap(*args)

    monkeypatch.setattr(compaction, "write_compacted", write)
    monkeypatch.setattr(compaction, "swap", swap)
    with pytest.raises((OSError, KeyboardInterrupt)):
        compact(sweep)
    assert (sweep / compaction.STAGING).exists()  # what the crashed run left aside
    expected = {"writing": {"trials": 12, "metrics": 12},
                "second swap": {"trials": 1, "metrics": 12}}[where]
    assert counts(sweep) == expected
    assert_same(before, read_all(sweep))
    monkeypatch.undo()
    compact(sweep)
    assert counts(sweep) == {"trials": 1, "metrics": 1}
    assert not (sweep / compaction.STAGING).exists()
    assert_same(before, read_all(sweep))


def test_without_an_atomic_exchange_a_crash_between_renames_is_repaired(sweep, monkeypatch):
    before = read_all(sweep)
    monkeypatch.setattr(compaction, "_exchange", lambda a, b: False)
    real_rename = os.rename
    renames = []

    def rename(a, b):
        renames.append((a, b))
        if len(renames) == 2:
            raise KeyboardInterrupt  # trials/ moved aside, the new one not yet in place
        real_rename(a, b)

    monkeypatch.setattr(compaction.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        compact(sweep)
    assert not (sweep / "trials").exists()
    monkeypatch.setattr(compaction.os, "rename", real_rename)
    compact(sweep)  # first puts the old folder back, then compacts
    assert counts(sweep) == {"trials": 1, "metrics": 1}
    assert_same(before, read_all(sweep))


def test_unfinished_trials_keep_their_part_files(sweep):
    """Trials Tune has not finished stay part files; rewriting one (as a resume does) leaves
    one row per trial; compacting again takes it in."""
    import pandas as pd

    from dipddpm.dataset.parquet import read_trials, write_trial_row

    ids = sorted(p.name[5:-8] for p in (sweep / "trials").glob("part-*.parquet"))
    unfinished = set(ids[:3])
    c = compact(sweep, finished=set(ids) - unfinished, known=True)
    assert c.kept_parts == 6  # 3 trials x (trials, metrics)
    assert sorted(p.name for p in data_files(sweep / "trials")) == [
        "compact-00000.parquet", *(f"part-{t}.parquet" for t in sorted(unfinished))]
    row = next(r for r in read_trials(sweep) if r["trial_id"] == ids[0])
    write_trial_row(sweep, {**row, "retries": 1})  # the resumed trial's new row
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 12 and trials["trial_id"].is_unique
    assert int(trials.set_index("trial_id").loc[ids[0], "retries"]) == 1
    compact(sweep)
    trials = pd.read_parquet(sweep / "trials")
    assert counts(sweep) == {"trials": 1, "metrics": 1}
    assert len(trials) == 12 and int(trials.set_index("trial_id").loc[ids[0], "retries"]) == 1


def test_a_part_rewritten_after_compaction_wins(sweep):
    """A trial in a compacted file and in a part file (a part written after the compaction):
    the next compaction keeps the part's row, once."""
    import pandas as pd

    from dipddpm.dataset.parquet import read_trials, write_trial_row

    compact(sweep)
    row = read_trials(sweep)[0]
    write_trial_row(sweep, {**row, "retries": 7})
    compact(sweep)
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 12
    assert int(trials.set_index("trial_id").loc[row["trial_id"], "retries"]) == 7


def test_a_running_sweep_is_refused(sweep):
    from dipddpm.dataset.lifecycle import mark_running
    from dipddpm.dataset.storage import resolve

    mark_running(resolve(str(sweep)))  # this process: alive
    r = runner.invoke(app, ["results", "compact", str(sweep)])
    assert r.exit_code == 2 and "is running (driver pid" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and counts(sweep)["trials"] == 12
    r = runner.invoke(app, ["results", "compact", str(sweep), "--force", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["changed"] and out["files_after"] == {"trials": 1, "metrics": 1}


def test_compact_command(sweep, tmp_path):
    r = runner.invoke(app, ["results", "compact", str(sweep)])
    assert r.exit_code == 0, r.output
    assert "trials 12 -> 1 files, metrics 12 -> 1 files" in r.stdout
    r = runner.invoke(app, ["results", "compact", str(sweep)])
    assert r.exit_code == 0 and "already compact" in r.stdout
    r = runner.invoke(app, ["results", "compact", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "has no trials/ folder" in r.stderr
