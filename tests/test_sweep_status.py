"""`dipddpm sweep status`: the sweep's Tune scheduler and rung rule as it runs them (issue 20:
it printed `scheduler=None`, the best trial's inactive stage scheduler), the study found by the
sweep's recorded name in a copy under another name, who holds the sweep, and an unreadable
study said in a line while the trials still answer. On the `dipddpm results` fixture sweep
(guided DIP, ASHA with the method's default rung rule; its best trial is plain DIP, whose
stage scheduler is inactive)."""

from __future__ import annotations

import json
import os
import shutil

from typer.testing import CliRunner

from dipddpm.cli import app


def status(path, *extra: str):
    r = CliRunner().invoke(app, ["sweep", "status", str(path), *extra])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_status_names_the_tune_scheduler_and_its_rung_rule(sweep):
    out = status(sweep)
    assert ("scheduler asha (grace_period 10, reduction_factor 3.0, max_t 40, brackets 1, "
            "rung_rule final)") in out.splitlines()
    assert "None" not in out  # an inactive searched key of the best trial is left out
    st = json.loads(status(sweep, "--json"))
    assert st["scheduler"] == {"type": "asha", "grace_period": 10, "reduction_factor": 3.0,
                               "max_t": 40, "brackets": 1, "rung_rule": "final"}
    assert st["best"]["params"]["stages"] == 1 and st["best"]["params"]["scheduler"] is None


def test_a_copy_under_another_name_reads_the_study_of_its_recorded_name(sweep, tmp_path):
    copy = tmp_path / "renamed"
    shutil.copytree(sweep, copy)
    st = json.loads(status(copy, "--json"))
    assert st["name"] == json.loads(status(sweep, "--json"))["name"] != "renamed"
    assert st["study"] and sum(st["study"].values()) > 0


def test_status_says_who_holds_the_sweep(sweep):
    from dipddpm.dataset.lock import SweepLock
    from dipddpm.dataset.storage import resolve

    with SweepLock(resolve(sweep)):
        st = json.loads(status(sweep, "--json"))
        assert st["holder"].startswith(f"driver pid {os.getpid()} on ")
    assert json.loads(status(sweep, "--json"))["holder"] is None


def test_an_unreadable_study_is_one_line_and_the_trials_still_answer(sweep):
    (sweep / "optuna.db").write_bytes(b"not a database" * 100)
    out = status(sweep)
    assert "12 trials written" in out
    assert [ln for ln in out.splitlines() if ln.startswith("optuna study: unreadable")]
