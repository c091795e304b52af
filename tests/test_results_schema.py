"""Every trials file has the same columns at every moment of a sweep, not only at its end:
a reader during a run (pandas, polars, DuckDB without union_by_name) sees every column."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from dipddpm.dataset import parquet as results


def row(tid, **cols):
    return {"sweep": "s", "trial_id": tid, "method": "guided_dip", "status": "COMPLETED",
            "objective": 20.0, **cols}


def names(sweep_dir):
    return {p.name: pq.read_schema(p).names for p in (sweep_dir / "trials").glob("*.parquet")}


def test_a_new_column_reaches_the_files_written_before(tmp_path):
    cols = None
    plan = [row("a", **{"config.lr": 0.01}),  # plain
            row("b", status="FAILED", objective=None),  # no config, no summary
            row("c", **{"config.lr": 0.02, "config.stages": 4, "psnr_gt_best": 27.5}),
            row("d", **{"config.lr": 0.03})]
    for i, r in enumerate(plan):
        cols = results.write_trial_row(tmp_path, r, cols)
        seen = names(tmp_path)
        assert len(seen) == i + 1 and len({tuple(v) for v in seen.values()}) == 1, seen
    df = pd.read_parquet(tmp_path / "trials").set_index("trial_id").sort_index()
    assert df["config.stages"].isna().tolist() == [True, True, False, True]
    assert df.loc["c", "psnr_gt_best"] == 27.5 and df.loc["d", "config.lr"] == 0.03
    assert results.harmonize(tmp_path) == 0  # nothing left for the end of the run


def test_a_restarted_driver_reads_the_schema_from_the_files(tmp_path):
    results.write_trial_row(tmp_path, row("a", **{"config.stages": 2}))
    results.write_trial_row(tmp_path, row("b"))  # columns=None: read from the files
    assert names(tmp_path)["part-b.parquet"] == names(tmp_path)["part-a.parquet"]


def test_a_column_of_another_type_is_one_clear_error(tmp_path):
    import pytest

    from dipddpm.errors import DipddpmError

    cols = results.write_trial_row(tmp_path, row("a", **{"problem.size": 32}))
    with pytest.raises(DipddpmError, match="do not fit the trials files already in"):
        results.write_trial_row(tmp_path, row("b", **{"problem.size": "large"}), cols)
    assert list(names(tmp_path)) == ["part-a.parquet"]  # nothing half-written
