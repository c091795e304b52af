"""Racing over a study's pairs (dipddpm/trial_schedulers/race.py): the decision rule checked
against scipy.stats directly (a one-sided paired t-test, Holm's step-down correction), the
incumbent, and a small raced study on the embedded Ray where a configuration that cannot fit
(a learning rate of 1e-7) is raced out: PRUNED with stopped_by raced, in Optuna too, while
the survivor has every pair."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dipddpm.errors import ConfigError
from dipddpm.trial_schedulers.race import RaceBook, holm, p_worse


def holm_by_adjusted(p: dict[str, float], alpha: float) -> set[str]:
    """Holm by its adjusted p-values (Holm 1979): p_(i) adjusted = max over j <= i of
    (m - j + 1) p_(j); rejected where <= alpha. Written apart from the step-down loop."""
    keys = sorted(p, key=p.get)
    m, run, out = len(keys), 0.0, set()
    for j, k in enumerate(keys):
        run = max(run, min(1.0, (m - j) * p[k]))
        if run <= alpha:
            out.add(k)
    return out


def test_p_worse_is_scipy_paired_t_one_sided_in_the_metric_direction():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 8))
        inc = rng.normal(25, 2, n)
        ch = inc + rng.normal(-0.5, 1, n)
        extra = list(rng.normal(25, 2, 3))  # the incumbent's pairs beyond the shared ones
        want = stats.ttest_rel(ch, inc, alternative="less").pvalue
        assert p_worse(list(ch), list(inc) + extra, maximize=True) == pytest.approx(want)
        want_min = stats.ttest_rel(ch, inc, alternative="greater").pvalue
        assert p_worse(list(ch), list(inc), maximize=False) == pytest.approx(want_min)
    assert p_worse([1.0], [2.0], True) == 1.0  # one shared pair: no test


def test_holm_rejects_exactly_what_the_adjusted_p_values_reject():
    rng = np.random.default_rng(1)
    for _ in range(200):
        m = int(rng.integers(1, 7))
        p = {f"t{i}": float(v) for i, v in enumerate(rng.uniform(0, 0.08, m))}
        assert holm(p, 0.05) == holm_by_adjusted(p, 0.05)


def test_the_decision_stops_a_clearly_worse_trial_and_spares_a_close_one():
    book = RaceBook(alpha=0.05)
    book.add("inc", [30.0, 28.0, 31.0, 29.0], 6)
    book.add("bad", [20.0, 18.2, 21.1, 19.0], 6)  # 10 dB worse on every shared pair
    book.add("close", [30.1, 27.5, 31.2, 28.8], 6)
    assert book.incumbent() == "inc"
    family = {t: p_worse(book.values[t], book.values["inc"], True) for t in ("bad", "close")}
    assert holm(family, 0.05) == {"bad"}
    assert book.decide("bad") and "bad" in book.stopped
    assert not book.decide("close") and not book.decide("inc")  # the incumbent is not judged


def test_the_incumbent_is_best_on_the_pairs_all_share_and_a_finished_trial_is_not_raced():
    book = RaceBook(alpha=0.5, maximize=False)  # a loss: smaller is better
    book.add("ahead", [5.0, 5.0, 5.0, 5.0], 4)  # more pairs, but worse on the shared ones
    book.add("behind", [1.0, 1.1], 4)
    assert book.incumbent() == "behind"
    assert book.decide("ahead") is False  # through all its pairs: it ran to the end
    book.add("new", [9.0, 9.2], 4)
    assert book.decide("new")


@pytest.mark.ray
@pytest.mark.slow
def test_a_raced_study_races_out_a_bad_config_and_keeps_the_survivor_whole(ray_local,
                                                                           tmp_path):
    """One trial at a time, the good one first (Optuna's random sampler at seed 0 draws the
    second choice first): a trial that finishes all its pairs before any other trial has
    reported a block has nothing to be raced against, so with two trials at once which one
    is raced out would depend on which Ray worker started first."""
    import optuna
    import pandas as pd
    from test_study_sweep import write_spec
    from test_sweep_run import quiet

    from dipddpm.sweep.runner import run_sweep

    spec = write_spec(
        tmp_path, name="race", problem={"images": ["skimage:astronaut", "skimage:coffee",
                                                   "skimage:chelsea"], "replicates": 2,
                                        "size": 32, "sigma": 25},
        search={"lr": {"choice": [1.0e-7, 0.01]}}, num_samples=2,
        searcher={"type": "optuna", "sampler": "random", "seed": 0, "max_concurrent": 1},
        scheduler={"type": "race", "block": 2, "alpha": 0.05})
    sweep = run_sweep(spec, console=quiet())
    trials = pd.read_parquet(f"{sweep.path}/trials")
    assert list(trials.sort_values("started_at")["config.lr"]) == [0.01, 1.0e-7], (
        "Optuna's random sampler at seed 0 no longer draws 0.01 then 1e-7: pick the seed that "
        "does")
    trials = trials.set_index("config.lr")
    pairs = pd.read_parquet(f"{sweep.path}/pairs")
    good, bad = trials.loc[0.01], trials.loc[1.0e-7]
    assert good["status"] == "COMPLETED" and pd.isna(good["stopped_by"])
    assert bad["status"] == "PRUNED" and bad["stopped_by"] == "raced"
    assert good["n_pairs"] == 6
    n = pairs.groupby("trial_id").size()
    assert n[good["trial_id"]] == 6 and n[bad["trial_id"]] in (2, 4)
    study = optuna.load_study(study_name="race", storage=f"sqlite:///{sweep.path}/optuna.db")
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "PRUNED"]


@pytest.mark.slow
def test_blocks_replay_the_unraced_study_of_the_same_pairs():
    """A survivor's set reports and summary, rebuilt from its blocks, are those the unraced
    (lockstep) study of the same pairs reports: racing changes who runs, not the numbers."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import build_pairs
    from dipddpm.methods.study_race import run_blocks
    from dipddpm.methods.study_run import run_study

    method = METHODS.get("dip")
    cfg = build(method.config_cls, {**method.presets["tiny"], "width": 8, "depth": 2,
                                    "input_depth": 4, "report_every": 5, "iters": 10})
    problem = {"images": ["skimage:astronaut", "skimage:coffee"], "replicates": 2,
               "size": 32, "sigma": 25}
    pairs = build_pairs(method, problem, cfg, 0)
    full: list = []
    res = run_study(method, cfg, pairs, report=lambda it, m, s: full.append((it, m)),
                    mode="serial", sync_every=5)
    seen: list = []
    done = run_blocks(method, cfg, pairs, 3, lambda d: seen.append(d.done), mode="serial",
                      sync_every=5)
    assert seen == [3, 4] and [r["image"] for r in done.rows] == [r["image"] for r in res.pairs]
    reports, curve = done.set_reports()
    assert [r["iter"] for r in reports] == [it for it, _ in full]
    for r, (_, m) in zip(reports, full, strict=True):
        for k in ("psnr_gt", "psnr_best", "psnr_best_pairmean", "loss"):
            assert r[k] == pytest.approx(m[k], abs=1e-6), k
    summary = done.summary(curve)
    for k, v in res.result.metrics.items():
        if isinstance(v, float) and not k.endswith("_s"):  # not the wall times
            assert summary[k] == pytest.approx(v, abs=1e-6), k
    assert summary["n_pairs"] == 4


def test_the_scheduler_reads_a_block_result_as_tune_gives_it_and_stops_the_loser():
    """Tune hands a scheduler the result flattened (info/race/values); a callback nested."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from dipddpm.trial_schedulers.race_tune import RaceScheduler, race_of

    nested = {"info": {"race": {"values": [1.0, 2.0], "of": 4, "done": 2}}}
    flat = {"info/race/values": [1.0, 2.0], "info/race/of": 4, "info/race/done": 2}
    assert race_of(nested)["values"] == race_of(flat)["values"] == [1.0, 2.0]
    assert race_of({"iter": 3}) is None
    s = RaceScheduler(RaceBook(alpha=0.05))
    inc, bad = (SimpleNamespace(trial_id=t, config={}) for t in ("inc", "bad"))
    on = s.on_trial_result
    assert on(None, inc, {"info/race/values": [30.0, 29.0, 31.0, 30.5], "info/race/of": 6,
                          "info/race/done": 4}) == TrialScheduler.CONTINUE
    assert on(None, bad, {"info/race/values": [20.0, 19.1, 21.2, 20.4], "info/race/of": 6,
                          "info/race/done": 4}) == TrialScheduler.STOP
    assert on(None, bad, {"iter": 5}) == TrialScheduler.CONTINUE  # not a block result


def test_a_kept_configuration_is_never_raced_out_and_not_in_the_family():
    """scheduler.keep (the study's reference): a trial whose config matches is never stopped,
    however much worse, and is left out of Holm's family; the others race as before."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from dipddpm.sweep.spec import parse_spec

    raw = {"name": "k", "method": "dip", "preset": "tiny", "metric": "psnr_best",
           "problem": {"images": ["skimage:camera"], "replicates": 6, "size": 32, "sigma": 25},
           "search": {"lr": {"choice": [0.01, 1.0e-3, 1.0e-7]}}, "num_samples": 3,
           "searcher": {"type": "optuna", "sampler": "random", "seed": 0},
           "scheduler": {"type": "race", "block": 2, "keep": {"lr": 1.0e-7}}}
    spec = parse_spec(raw, load_problem=False)
    s = spec.scheduler.entry.make(spec.scheduler.options, spec)
    inc, ref, bad = (SimpleNamespace(trial_id=t, config={"lr": lr}) for t, lr in
                     (("inc", 0.01), ("ref", 1.0e-7), ("bad", 1.0e-3)))
    block = {"info/race/of": 6, "info/race/done": 4}
    assert s.on_trial_result(None, inc, {**block, "info/race/values": [30.0, 29.0, 31.0, 30.5]}
                             ) == TrialScheduler.CONTINUE
    for trial in (ref, bad):  # the same clearly worse values
        got = s.on_trial_result(None, trial, {**block,
                                              "info/race/values": [20.0, 19.1, 21.2, 20.4]})
        assert got == (TrialScheduler.CONTINUE if trial is ref else TrialScheduler.STOP)
    assert s.book.kept == {"ref"} and s.book.stopped == {"bad"}
    assert "never lr=1e-07" in spec.scheduler.entry.describe(spec.scheduler.options)
    for keep, words in (({"lr": 5.0}, "not one of its values"),
                        ({"lrr": 1.0e-7}, "not a searched key .did you mean 'lr'"),
                        ({}, "must map")):
        with pytest.raises(ConfigError, match=words):
            parse_spec({**raw, "scheduler": {"type": "race", "keep": keep}}, load_problem=False)


@pytest.mark.parametrize("keep, words", [
    ({"width": 8}, "searched only when"),  # width is searched only at lr 0.01
    ({"iters": 5}, "outside its range"),
    ({"iters": "ten"}, "outside its range"),  # not a number: one line, not a TypeError
])
def test_a_keep_no_configuration_can_have_is_one_line(keep, words):
    from dipddpm.sweep.spec import parse_spec

    raw = {"name": "k", "method": "dip", "preset": "tiny", "metric": "psnr_best",
           "problem": {"images": ["skimage:camera"], "replicates": 4, "size": 32, "sigma": 25},
           "search": {"lr": {"choice": [0.01, 1.0e-3]},
                      "width": {"choice": [8, 16], "when": {"lr": [0.01]}},
                      "iters": {"int": [10, 20]}},
           "searcher": {"type": "optuna", "sampler": "random", "seed": 0},
           "scheduler": {"type": "race", "block": 2, "keep": keep}}
    with pytest.raises(ConfigError, match=words):
        parse_spec(raw, load_problem=False)
    ok = {"width": 8, "lr": 0.01} if "width" in keep else {"iters": 15}
    parse_spec({**raw, "scheduler": {"type": "race", "keep": ok}}, load_problem=False)
