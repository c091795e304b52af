"""Parquet columns are declared once (dipddpm/dataset/columns.py): an undeclared text column is a
clear error naming it; the guided stage counts reach the trials table."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from dipddpm.dataset.columns import PAIRS, TABLES, TRIALS, column_kind
from dipddpm.dataset.parquet import write_trial_row
from dipddpm.errors import DipddpmError


def test_every_table_declares_its_keys():
    assert {"trials", "metrics", "pairs", "baselines"} == set(TABLES)
    assert TRIALS["trial_id"] == "string" and TRIALS["seed"] == "int64"
    assert PAIRS["replicate"] == "int64"


def test_an_undeclared_text_column_is_refused_by_name():
    with pytest.raises(DipddpmError, match="'fusion'.*not declared.*columns.py"):
        column_kind("trials", {"fusion": "fused"}, "fusion")
    assert column_kind("trials", {"psnr_gt_best": 20.0}, "psnr_gt_best") == "float64"
    assert column_kind("trials", {"psnr_best_iter": 7}, "psnr_best_iter") == "int64"


def test_guided_stage_counts_reach_the_trials_table(tmp_path):
    from dipddpm.sweep.rows import trial_row
    from dipddpm.sweep.spec import parse_spec

    spec = parse_spec({"name": "c", "method": "guided_dip", "preset": "tiny",
                       "metric": "psnr_best", "problem": {"image": "skimage:astronaut",
                                                          "size": 32}}, load_problem=False)
    now = datetime.now(timezone.utc)
    info = {"budget": 200, "summary": {"psnr_gt_best": 20.0},
            "extra": {"stage_counts": json.dumps([50, 50, 50, 50]),
                      "stage_timesteps": json.dumps([750, 500, 250, 0])}}
    row = trial_row(spec, "t1", {}, {"iter": 200, "psnr_best": 20.0, "info": info},
                    status="COMPLETED", error=None, retries=0, started=now, ended=now,
                    provenance={})
    write_trial_row(tmp_path, row)
    t = pq.read_table(tmp_path / "trials" / "part-t1.parquet").to_pylist()[0]
    assert json.loads(t["extra.stage_counts"]) == [50, 50, 50, 50]
    assert json.loads(t["extra.stage_timesteps"]) == [750, 500, 250, 0]
