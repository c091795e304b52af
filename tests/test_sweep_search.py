"""The Optuna searcher without Ray: every trial of the study is one Tune runs, configurations
are never repeated, and no outcome is copied or counterfeited (quick.yaml's space, where TPE
keeps suggesting plain DIP's 2 configurations)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import yaml

pytestmark = pytest.mark.slow


def quick_spec(**over):
    from dipddpm.sweep.spec import parse_spec

    raw = yaml.safe_load(open("sweeps/quick.yaml"))
    raw.pop("smoke")
    return parse_spec({**raw, **over}, load_problem=False)


def drive(searcher, n: int, value) -> list:
    """Ask for `n` trials one at a time, each finished (COMPLETE) before the next."""
    got = []
    for i in range(n):
        params = searcher.suggest(f"t{i}")
        if params == "FINISHED":
            break
        v = value(params)
        searcher.on_trial_result(f"t{i}", {"psnr_best": v, "iter": 100})
        searcher.on_trial_complete(f"t{i}", {"psnr_best": v, "iter": 400,
                                             "info": {"budget": 400}})
        got.append(params)
    return got


def test_duplicates_never_reach_the_study(tmp_path):
    import optuna

    from dipddpm.sweep.search import TruthfulOptunaSearch

    spec = quick_spec()
    rng = random.Random(0)
    s = TruthfulOptunaSearch(spec, str(tmp_path / "s.db"))
    # plain DIP (stages 1) wins: TPE wants it again and again
    got = drive(s, 20, lambda p: 30.0 if p["stages"] == 1 else 25 + 4 * rng.random())
    assert len(got) == 20
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path}/s.db")
    assert len(study.trials) == 20  # one per Tune trial
    assert Counter(t.state.name for t in study.trials) == {"COMPLETE": 20}
    assert not [t for t in study.trials if "duplicate_of" in t.user_attrs]
    configs = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(configs) == 20
    assert sum(1 for t in study.trials if t.params["stages"] == 1) == 2  # both, once each
    assert [t.user_attrs["ray_trial_id"] for t in study.trials] == [f"t{i}" for i in range(20)]


def test_a_space_run_out_finishes_without_filling_the_study(tmp_path):
    import optuna

    from dipddpm.sweep.search import TruthfulOptunaSearch

    spec = quick_spec(search={"stages": {"choice": [1, 4]}, "iters": {"choice": [400, 800]}},
                      summary_by=None, num_samples=6)
    s = TruthfulOptunaSearch(spec, str(tmp_path / "s.db"))
    got = drive(s, 6, lambda p: float(p["stages"]))
    assert sorted((p["stages"], p["iters"]) for p in got) == [(1, 400), (1, 800), (4, 400),
                                                              (4, 800)]
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path}/s.db")
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)


def test_restore_follows_the_trials_of_tunes_saved_state(tmp_path):
    """Tune uploads its state file by file: the searcher's own file may be older or newer
    than the trial list. The map is rebuilt from the study for exactly the listed trials; a
    trial asked after the list was saved is closed as an orphan, not left running."""
    import pickle

    import optuna

    from dipddpm.sweep.driver import DriverContext, set_current
    from dipddpm.sweep.search import TruthfulOptunaSearch

    spec = quick_spec(searcher={"type": "optuna", "sampler": "tpe", "seed": 0,
                                "max_concurrent": 4})
    db = str(tmp_path / "s.db")
    first = TruthfulOptunaSearch(spec, db)
    first.suggest("a")
    first.on_trial_complete("a", {"psnr_best": 20.0, "iter": 400, "info": {"budget": 400}})
    first.suggest("b")
    first.save(str(tmp_path / "old.pkl"))  # the searcher's file: a and b only
    first.suggest("c")  # asked after: Tune's trial list (below) has it, the file does not
    first.suggest("d")  # asked after the list was saved: an orphan
    state = pickle.loads(pickle.dumps(first))
    set_current(DriverContext(console=None, provenance={}, optuna_db=db,
                              restored={"a": "TERMINATED", "b": "RUNNING", "c": "PENDING"}))
    try:
        state.restore(str(tmp_path / "old.pkl"))
    finally:
        set_current(None)
    assert set(state.trials) == {"a", "b", "c"} and state.done == {"a"}
    assert state.params["c"] == first.params["c"]
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{db}")
    by_ray = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert by_ray["d"].state.name == "FAIL" and "orphaned" in by_ray["d"].user_attrs
    assert by_ray["b"].state.name == by_ray["c"].state.name == "RUNNING"


def test_align_search_counter(tmp_path):
    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle

    from dipddpm.sweep.checkpoints import align_search_counter

    fs = pafs.LocalFileSystem()
    (tmp_path / "search_gen_state-2026-01-01_00-00-00.json").write_bytes(
        cloudpickle.dumps({"counter": 2, "total_samples": 4}))
    newest = tmp_path / "search_gen_state-2026-01-02_00-00-00.json"
    newest.write_bytes(cloudpickle.dumps({"counter": 3, "total_samples": 4}))
    assert align_search_counter(str(tmp_path), fs, 2) == 3  # uploaded after the trial list
    assert cloudpickle.loads(newest.read_bytes()) == {"counter": 2, "total_samples": 4}
    assert align_search_counter(str(tmp_path), fs, 2) is None  # already aligned
