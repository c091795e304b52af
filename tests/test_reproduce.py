"""The reproduction benchmarks (benchmarks/reproduce.py, search.py, ledger.py).

Fast tests: the protocol table, the committed ledger equals what ledger.py renders from the
committed results, the reach computation (synthetic rows and trials, plus a tiny real fit that
shows first_reach_iter is exact), the search's refusal of a missing or unsuitable target, FAIL
trials keep their error, every sampled config of the F16 studies is valid, `--only` merges,
and the ledger tolerates incomplete files and keeps smoke runs apart.
Slow: the _mini protocols and a mini search run end to end on CPU and the ledger is written
from their JSON. Tests that load the benchmark images (benchmarks/provenance.py) skip without them.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
protocols = importlib.import_module("protocols")
reproduce = importlib.import_module("reproduce")
search = importlib.import_module("search")
ledger = importlib.import_module("ledger")
DATA = importlib.import_module("provenance").bench_data()
needs_data = pytest.mark.skipif(not (DATA / "cset9" / "F16.png").is_file(),
                                reason=f"benchmark images not found in {DATA}")
F16_STUDIES = ("beat_staged_f16", "beat_staged_f16_mini", "reach_fast_f16",
               "reach_fast_f16_mini")


def test_protocol_table_matches_the_methods_and_carries_source_numbers():
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    for name in (*protocols.FULL, *protocols.MINI):
        p = protocols.PROTOCOLS[name]
        assert len({r.name for r in p.rows}) == len(p.rows)
        for r in p.rows:
            m = METHODS.get(r.method)
            cfg = build(m.config_cls, {**m.presets[r.preset], **r.overrides})
            if r.method == "guided_dip":
                assert sum(cfg.counts()) == cfg.iters  # the scheduler accepts the row
            if p.comparable:
                assert cfg.iters in (1800, 2000)
            else:
                assert r.source == {} and cfg.iters <= 300  # minis carry no source number
    staged = protocols.PROTOCOLS["staged_dip_f16"]
    assert {r.name: r.source["psnr_gt_best"] for r in staged.rows}["sharp_linear_k50"] == 30.73
    for s in protocols.STUDIES.values():  # every study's spec exists; reach studies have a
        assert (REPO / s.spec).is_file()  # baseline protocol with a baseline row
        if s.kind == "reach":
            assert protocols.PROTOCOLS[s.baseline].reach_baseline


def test_committed_ledger_is_what_ledger_py_renders():
    rendered = ledger.render(BENCH / "results")
    assert (BENCH / "RESULTS.md").read_text() == rendered, (
        "benchmarks/RESULTS.md is not what benchmarks/ledger.py renders from "
        "benchmarks/results/: regenerate it with `python benchmarks/ledger.py`")


# --- reach: iterations to reach the baseline's max psnr_gt, as a fraction -------------------
def _out(best: float, best_iter: int, first_reach: int | None = None,
         threshold: float | None = None) -> dict:
    """A row's run output, as run_row returns it (the keys summarize reads)."""
    return {"metrics": {"psnr_gt_best": best, "psnr_best_iter": best_iter,
                        "first_reach_iter": first_reach, "psnr_gt_final": best - 0.1,
                        "psnr_gt_sm_final": best - 0.5, "psnr_noisy_input": 20.3},
            "config": {"psnr_threshold": threshold}, "run": {"wall_s": 2.0}}


def test_reach_fractions_of_the_baseline_best_iteration():
    p = protocols.PROTOCOLS["staged_dip_f16_mini"]
    target = 24.8867
    done = {"dip": _out(target, 228),
            # 24.8928 is above the target: reached at iteration 91 (a report-every-10 check
            # against the exact best used to call such a row "never")
            "uniform": _out(24.8928, 239, first_reach=91, threshold=target),
            "sharp_linear": _out(24.80, 230, threshold=target),
            "log10_linspace": _out(25.0, 200, first_reach=150, threshold=24.5)}
    doc = reproduce.summarize(p, done)
    reach = doc["derived"]["reach_baseline"]
    assert (reach["target_psnr"], reach["baseline_best_iter"]) == (target, 228)
    assert reach["rows"]["uniform"] == {"status": "reached", "iter": 91, "fraction": 91 / 228}
    assert reach["rows"]["sharp_linear"] == {"status": "never", "psnr_gt_best": 24.80}
    assert reach["rows"]["log10_linspace"]["status"] == "stale"  # fitted to another target
    assert "sharp_linear_k50" not in reach["rows"]  # not run: open, not "never"
    assert [r["name"] for r in doc["rows"]] == ["dip", "uniform", "sharp_linear",
                                                "log10_linspace"]
    assert doc["rows_wall_s"] == 8.0
    text = "\n".join(ledger.reach_lines(reach))
    assert "| uniform | 91 | 0.40 | yes |" in text  # 91/228 = 0.399 <= 0.40
    assert "| sharp_linear | never | – | no | 24.80 |" in text
    assert "stale" in text


@needs_data
def test_first_reach_iter_is_exact_not_at_report_points():
    """A longer run of the same fit reaches the shorter run's max psnr_gt at exactly the
    shorter run's best iteration, although it reports only every 10 iterations."""
    row = protocols.Row("r", "dip", "tiny", "cset9/F16.png", {"iters": 25},
                        {"size": 32, "sigma": 25, "seed": 0})
    short = reproduce.run_row(row, str(DATA), "cpu", 1)
    target, best_iter = short["metrics"]["psnr_gt_best"], short["metrics"]["psnr_best_iter"]
    longer = protocols.Row("r", "dip", "tiny", "cset9/F16.png", {"iters": 60},
                           {"size": 32, "sigma": 25, "seed": 0})
    out = reproduce.run_row(longer, str(DATA), "cpu", 1, psnr_threshold=target)
    assert out["config"]["psnr_threshold"] == target and out["config"]["report_every"] == 10
    assert out["metrics"]["first_reach_iter"] == best_iter
    assert reproduce.reach(out, target, best_iter) == {"status": "reached", "iter": best_iter,
                                                       "fraction": 1.0}
    assert out["run"]["torch_threads"] == 1 and out["run"]["wall_s"] > 0


def _trial(value, sm_final, first_reach=None):
    import optuna

    return optuna.trial.create_trial(
        value=value, params={}, distributions={},
        user_attrs={"metrics": {"psnr_gt_best": value, "psnr_best_iter": 700, "iters": 800,
                                "psnr_gt_sm_final": sm_final, "first_reach_iter": first_reach}})


def test_search_summary_reach_honest_number_and_failures():
    import optuna

    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(24.0, 26.0))  # best smoothed output, worst objective
    study.add_trial(_trial(25.1, 23.0, first_reach=120))
    study.add_trial(_trial(25.3, 24.3, first_reach=80))  # the objective's pick
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"error": "RuntimeError: boom"}))
    out = search.summarize(study, {"psnr_gt_best": 25.0, "psnr_best_iter": 228}, 0.4)
    assert out["states"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 1}
    assert out["failures"] == [{"number": 3, "params": {}, "error": "RuntimeError: boom"}]
    assert out["best"]["number"] == 2
    assert out["honest"]["number"] == 2 and out["honest"]["psnr_gt_sm_final"] == 24.3
    assert out["gt_selected_sm"]["number"] == 0  # kept, but labelled as selected on GT
    assert "ground truth" in out["gt_selected_sm"]["rule"]
    fastest = out["reach"]["fastest"]
    assert fastest["number"] == 2 and fastest["fraction"] == 80 / 228
    assert out["reach"]["n_reached"] == 2 and out["reach"]["max_fraction"] == 0.4


def test_a_failing_fit_is_a_fail_trial_with_its_error_and_the_study_goes_on():
    import optuna
    import torch

    def out_of_memory(trial):
        trial.suggest_int("x", 0, 3)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    study = optuna.create_study()
    study.optimize(search.recording_errors(out_of_memory), n_trials=2, catch=search.CATCH)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert all(t.user_attrs["error"].startswith("OutOfMemoryError: CUDA out of memory")
               for t in study.trials)


def test_reach_study_needs_a_target(capsys):
    assert search.main([str(REPO / "sweeps" / "reach_fast_f16.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: reach_fast_f16 is a reach study: pass --target-from")
    assert len(err.strip().splitlines()) == 1


def _baseline_file(tmp_path, protocol: str, comparable: bool, size=(512, 512)) -> str:
    doc = {"schema": "dipddpm.reproduce/2", "protocol": protocol, "comparable": comparable,
           "rows": [{"name": "dip", "size": list(size),
                     "metrics": {"psnr_gt_best": 30.0, "psnr_best_iter": 1900,
                                 "psnr_noisy_input": 20.35}}]}
    path = tmp_path / f"{protocol}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_reach_study_refuses_a_mini_or_non_comparable_target(tmp_path, capsys):
    spec = str(REPO / "sweeps" / "reach_fast_f16.yaml")
    mini = _baseline_file(tmp_path, "staged_dip_f16_mini", False, (64, 64))
    assert search.main([spec, "--target-from", mini]) == 2
    assert "needs a staged_dip_f16 baseline" in capsys.readouterr().err
    odd = _baseline_file(tmp_path, "staged_dip_f16", False)
    assert search.main([spec, "--target-from", odd]) == 2
    assert "not comparable" in capsys.readouterr().err


@needs_data
def test_reach_study_refuses_a_target_of_another_image_size(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DIPDDPM_DATA", str(DATA))  # data:cset9/F16 from the benchmark images
    small = _baseline_file(tmp_path, "staged_dip_f16", True, (64, 64))
    rc = search.main(["sweeps/reach_fast_f16.yaml", "--target-from", small,
                      "--out", str(tmp_path)])
    assert rc == 2
    assert "the study's image is 512x512 but the baseline" in capsys.readouterr().err


def _corners(spec, key: str) -> tuple:
    d = spec.domain(key)
    if d is None:
        return (spec.base_values.get(key),)
    return d.values if d.kind == "choice" else (d.low, d.high)


@needs_data
@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("name", F16_STUDIES)
def test_every_sampled_config_of_the_f16_studies_is_valid(name, smoke, monkeypatch):
    """The stage counts exist at every corner of the space (sharp_linear needs
    iters >= (stages - 1) * x): no trial fails by design."""
    from dipddpm.sweep.spec import load_spec
    from dipddpm.sweep.trainable import trial_config

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DIPDDPM_DATA", str(DATA))  # data:cset9/F16 from the benchmark images
    spec = load_spec(f"sweeps/{name}.yaml", smoke=smoke)
    keys = ("scheduler", "stages", "sharp_linear_x", "iters", "t_max", "beta_schedule")
    for values in itertools.product(*(_corners(spec, k) for k in keys)):
        cfg = trial_config(spec, dict(zip(keys, values, strict=True)))
        assert sum(cfg.counts()) == cfg.iters


# --- --only merges into the protocol's JSON ------------------------------------------------
def test_only_merges_rows_and_keeps_each_rows_provenance(tmp_path, monkeypatch):
    calls = []
    best = {"dip": 25.0}

    def fake_run_row(row, data_dir, device, threads, psnr_threshold=None, precision="fp32"):
        calls.append((row.name, psnr_threshold))
        out = _out(best.get(row.name, 24.0), 200, threshold=psnr_threshold)
        out["run"]["torch_threads"] = threads
        return {**out, "problem": {**row.problem, "image": row.image}, "size": [64, 64]}

    (tmp_path / "cset9").mkdir()
    (tmp_path / "cset9" / "F16.png").write_bytes(b"")  # only its presence is checked
    monkeypatch.setattr(reproduce, "run_row", fake_run_row)
    args = ["staged_dip_f16_mini", "--device", "cpu", "--threads", "1", "--data",
            str(tmp_path), "--out", str(tmp_path)]
    monkeypatch.setattr(reproduce.provenance, "now", lambda: "2026-01-01T00:00:00+00:00")
    assert reproduce.main(args) == 0
    assert calls[0] == ("dip", None) and all(t == 25.0 for _, t in calls[1:])  # dip first

    calls.clear()
    best["uniform"] = 24.5
    monkeypatch.setattr(reproduce.provenance, "now", lambda: "2026-02-02T00:00:00+00:00")
    assert reproduce.main([*args, "--only", "uniform"]) == 0
    assert calls == [("uniform", 25.0)]  # the target comes from the kept dip row
    doc = json.loads((tmp_path / "staged_dip_f16_mini.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    assert list(rows) == [r.name for r in protocols.PROTOCOLS["staged_dip_f16_mini"].rows]
    assert rows["uniform"]["metrics"]["psnr_gt_best"] == 24.5
    assert rows["uniform"]["run"]["date"].startswith("2026-02-02")
    assert rows["uniform"]["run"]["command"].endswith("--only uniform")
    for name in ("dip", "sharp_linear", "log10_linspace", "sharp_linear_k50"):
        assert rows[name]["run"]["date"].startswith("2026-01-01")
        assert "--only" not in rows[name]["run"]["command"]
    assert rows["dip"]["run"]["torch_threads"] == 1 and rows["dip"]["run"]["jobs"] == 1
    assert set(doc["derived"]["reach_baseline"]["rows"]) == {
        "uniform", "sharp_linear", "log10_linspace", "sharp_linear_k50"}
    text = ledger.render(tmp_path)
    assert "--only uniform` (1 job(s), 1 torch thread(s) per fit): uniform" in text
    assert "| 2026-02-02 |" in text and "| 2026-01-01 |" in text


# --- the GT-free row: the early-stopping pick per row and its protocol means ---------------
def _es_out(best: float, es: float | None, iter_es: int = 120) -> dict:
    """A row's run output with (or, es None: without, as before the rule) the ES pick."""
    out = _out(best, 150)
    if es is not None:
        out["metrics"].update(psnr_es=es, iter_es=iter_es, es_gap_db=best - es)
        out["config"].update(es_rule="emv", es_window=100, es_patience=1000)
    return out


def _write_doc(tmp_path, p, done: dict) -> dict:
    doc = {"schema": "dipddpm.reproduce/2", "protocol": p.name, "date": "2026-01-01T00:00:00",
           "command": f"python benchmarks/reproduce.py {p.name}", **reproduce.summarize(p, done)}
    (tmp_path / f"{p.name}.json").write_text(json.dumps(doc))
    return doc


def test_gt_free_row_means_and_open_rows_in_the_ledger(tmp_path):
    p = protocols.PROTOCOLS["dip_cset9_mini"]  # headline: a 9-image mean
    names = [r.name for r in p.rows]
    done = {n: _es_out(25.0 + i, 24.0 + i / 2, iter_es=100 + 10 * i)
            for i, n in enumerate(names)}
    gt = _write_doc(tmp_path, p, done)["derived"]["gt_free"]
    assert gt["n"] == gt["n_rows"] == 9 and gt["missing"] == []
    assert gt["mean_psnr_es"] == pytest.approx(24.0 + 2.0)  # mean of i/2, i = 0..8
    assert gt["mean_psnr_gt_best"] == pytest.approx(29.0)
    assert gt["mean_es_gap_db"] == pytest.approx(3.0) and gt["mean_iter_es"] == 140
    assert gt["rules"] == ["emv (window 100, patience 1000)"]
    text = ledger.render(tmp_path)
    summary = next(x for x in text.splitlines() if x.startswith("| dip_cset9_mini |"))
    assert "| mean of 9: 26.00 @140, gap 3.00 (max 29.00) |" in summary
    assert "| 24.00 @100 | 1.00 (max 25.00) |" in text  # Baboon, i = 0
    assert "mean over the 9 rows | – | – | – | 26.00 @140 | 3.00 (max 29.00) |" in text
    assert "Rule: emv (window 100, patience 1000)." in text

    done["F16"] = _es_out(26.0, None)  # measured before the rule existed: no invented number
    gt = _write_doc(tmp_path, p, done)["derived"]["gt_free"]
    assert gt["n"] == 8 and gt["missing"] == ["F16"] and gt["mean_psnr_es"] is None
    text = ledger.render(tmp_path)
    summary = next(x for x in text.splitlines() if x.startswith("| dip_cset9_mini |"))
    assert "| open (8 of 9 rows) |" in summary
    assert "| F16: DIP on F16 [mini: 32², 150 it] | n/a | 25.90 / 25.50 | – | open | – |" in text
    assert "`open` for F16: measured before the rule existed" in text


def test_gt_free_headline_row_and_a_protocol_without_a_run(tmp_path):
    p = protocols.PROTOCOLS["staged_dip_f16_mini"]  # headline: the sharp_linear_k50 row
    done = {r.name: _es_out(24.0, 23.5, iter_es=180) for r in p.rows}
    done["sharp_linear_k50"] = _es_out(24.0, None)
    _write_doc(tmp_path, p, done)
    text = ledger.render(tmp_path)
    rows = {x.split(" |")[0]: x for x in text.splitlines() if x.startswith("| ")}
    assert "| open (run before the ES rule) |" in rows["| staged_dip_f16_mini"]
    done["sharp_linear_k50"] = _es_out(24.0, 23.25, iter_es=200)
    _write_doc(tmp_path, p, done)
    text = ledger.render(tmp_path)
    rows = {x.split(" |")[0]: x for x in text.splitlines() if x.startswith("| ")}
    assert "| 23.25 @200, gap 0.75 (max 24.00) |" in rows["| staged_dip_f16_mini"]
    assert "| open |" in rows["| dip_cset9"]  # no results file: open, nothing invented
    assert "mean over the 9 rows | – | – | – | open | – |" in text


def test_gt_free_pick_of_a_search_best_trial(tmp_path):
    m = {"psnr_gt_best": 24.95, "psnr_best_iter": 86, "iters": 96, "psnr_es": 24.78,
         "iter_es": 96, "es_gap_db": 0.17}
    doc = {"schema": "dipddpm.search/2", "study": "beat_staged_f16_mini", "date": "2026-01-01",
           "command": "python benchmarks/search.py sweeps/beat_staged_f16_mini.yaml",
           "n_trials": 1, "states": {"COMPLETE": 1}, "wall_s": 3.0, "metric": "psnr_best",
           "direction": "maximize", "best": {"number": 0, "value": 24.95, "params": {},
                                             "metrics": m}}
    (tmp_path / "search-beat_staged_f16_mini.json").write_text(json.dumps(doc))
    text = ledger.render(tmp_path)
    row = next(x for x in text.splitlines() if x.startswith("| beat_staged_f16_mini (s"))
    assert "| 24.78 @96, gap 0.17 (max 24.95) |" in row
    assert "scores **24.78 dB** at iteration 96, 0.17 dB below its max psnr_gt" in text
    del m["psnr_es"]  # a search run before the rule: nothing shown, nothing invented
    (tmp_path / "search-beat_staged_f16_mini.json").write_text(json.dumps(doc))
    text = ledger.render(tmp_path)
    row = next(x for x in text.splitlines() if x.startswith("| beat_staged_f16_mini (s"))
    assert "| 24.95 dB | – |" in row and "GT-free: the best trial" not in text


# --- the ledger: incomplete files, smoke runs ------------------------------------------------
def test_ledger_reports_incomplete_files_and_keeps_smoke_runs_apart(tmp_path):
    no_date = {"schema": "dipddpm.reproduce/2", "protocol": "dip_cset9_mini", "rows": []}
    (tmp_path / "dip_cset9_mini.json").write_text(json.dumps(no_date))
    (tmp_path / "broken.json").write_text(json.dumps({"schema": "dipddpm.search/2"}))
    smoke = {"schema": "dipddpm.search/2", "study": "beat_staged_f16", "smoke": True,
             "date": "2026-01-01T00:00:00+00:00", "command": "python benchmarks/search.py "
             "sweeps/beat_staged_f16.yaml --smoke", "n_trials": 2,
             "best": {"metrics": {"psnr_gt_best": 19.0}}}
    (tmp_path / "search-beat_staged_f16-smoke.json").write_text(json.dumps(smoke))
    text = ledger.render(tmp_path)
    assert "`dip_cset9_mini.json`: no `date`; shown with date unknown" in text
    assert "`broken.json`: no `study`; skipped" in text
    assert "| beat_staged_f16 (search) |" in text.split("## Reproductions")[0]
    summary_row = next(x for x in text.splitlines() if x.startswith("| beat_staged_f16 (s"))
    assert "| open |" in summary_row and "19.00" not in summary_row  # smoke fills no row
    assert "- beat_staged_f16: 2 trials, best max psnr_gt 19.00 dB" in text


def test_ledger_lists_every_full_row_as_open_without_results(tmp_path):
    md = tmp_path / "RESULTS.md"
    ledger.main(["--results", str(tmp_path), "--out", str(md)])
    text = md.read_text()
    for name in protocols.FULL:
        for r in protocols.PROTOCOLS[name].rows:
            assert f"| {r.name}: {r.label} |" in text
    assert text.count("| open |") >= sum(len(protocols.PROTOCOLS[n].rows) for n in
                                         protocols.FULL)


# --- slow: the mini protocols and mini searches end to end ---------------------------------
@pytest.fixture(scope="module")
def mini_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    rc = reproduce.main([*protocols.MINI, "--device", "cpu", "--threads", "1",
                         "--data", str(DATA), "--out", str(out)])
    return rc, out


@needs_data
@pytest.mark.slow
def test_mini_protocols_write_json_with_real_numbers(mini_results):
    rc, out = mini_results
    assert rc == 0
    for name in protocols.MINI:
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["schema"] == "dipddpm.reproduce/2" and doc["comparable"] is False
        assert doc["command"].startswith(f"python benchmarks/reproduce.py {name} ")
        assert [r["name"] for r in doc["rows"]] == [r.name for r in
                                                    protocols.PROTOCOLS[name].rows]
        for row in doc["rows"]:
            run = row["run"]
            assert run["hardware"]["device"] == "cpu" and run["hardware"]["cpu"]
            assert run["git_sha"] and run["date"] and run["command"] == doc["command"]
            assert run["torch_threads"] == 1 and run["jobs"] == 1 and run["wall_s"] > 0
            m = row["metrics"]
            assert all(math.isfinite(m[k]) for k in ("psnr_gt_best", "psnr_gt_final",
                                                     "psnr_gt_sm_final", "psnr_noisy_input"))
            assert 0 < m["psnr_best_iter"] <= m["iters"]
            assert 0 < m["iter_es"] <= m["iters"] and m["psnr_es"] <= m["psnr_gt_best"]
            assert row["ours"]["psnr_es"] == m["psnr_es"]  # the GT-free row is filled
            assert len(row["curve"]["iter"]) == m["iters"] // 10
        assert doc["rows_wall_s"] == pytest.approx(sum(r["run"]["wall_s"] for r in doc["rows"]))
        if name != "guided_dip_butterfly_mini":  # the guided preset's small lr: not in 200 it
            for row in doc["rows"]:  # DIP denoises: better than its noisy input
                assert row["metrics"]["psnr_gt_best"] > row["metrics"]["psnr_noisy_input"] + 1
    cset = json.loads((out / "dip_cset9_mini.json").read_text())
    mean = {a["name"]: a["ours"] for a in cset["aggregates"]}
    finals = [r["metrics"]["psnr_gt_final"] for r in cset["rows"]]
    assert mean["mean_psnr_gt_final"] == pytest.approx(sum(finals) / 9)
    gt = cset["derived"]["gt_free"]
    assert gt["n"] == 9 and gt["mean_psnr_es"] == pytest.approx(
        sum(r["metrics"]["psnr_es"] for r in cset["rows"]) / 9)
    staged = json.loads((out / "staged_dip_f16_mini.json").read_text())
    reach = staged["derived"]["reach_baseline"]
    target = staged["rows"][0]["metrics"]["psnr_gt_best"]
    assert reach["target_psnr"] == target
    for row in staged["rows"][1:]:  # fitted against the baseline's exact max
        assert row["config"]["psnr_threshold"] == target
        got = reach["rows"][row["name"]]
        assert got["status"] in ("reached", "never")
        assert got.get("iter") == row["metrics"]["first_reach_iter"]


@needs_data
@pytest.mark.slow
def test_mini_searches_and_ledger(mini_results, tmp_path):
    _, out = mini_results
    image = f"problem.image={DATA / 'cset9' / 'F16.png'}"
    rc = search.main([str(REPO / "sweeps" / "beat_staged_f16_mini.yaml"), "--smoke",
                      "--device", "cpu", "--threads", "1", "--trials", "2", "--set", image,
                      "--out", str(out)])
    assert rc == 0
    assert not (out / "search-beat_staged_f16_mini.json").exists()  # smoke is kept apart
    doc = json.loads((out / "search-beat_staged_f16_mini-smoke.json").read_text())
    assert doc["smoke"] is True and doc["comparable"] is False and doc["goal_met"] is None
    assert doc["command"].endswith("--smoke") and doc["torch_threads"] == [1]
    assert doc["n_trials"] == 2 and doc["direction"] == "maximize"
    assert doc["best"]["value"] == doc["best"]["metrics"]["psnr_gt_best"]
    assert doc["honest"]["number"] == doc["best"]["number"]
    assert (out / "beat_staged_f16_mini-smoke.optuna.log").is_file()

    staged_file = str(out / "staged_dip_f16_mini.json")
    rc = search.main([str(REPO / "sweeps" / "reach_fast_f16_mini.yaml"), "--device", "cpu",
                      "--threads", "1", "--trials", "2", "--set", image,
                      "--target-from", staged_file, "--out", str(out)])
    assert rc == 0
    reach_doc = json.loads((out / "search-reach_fast_f16_mini.json").read_text())
    staged = json.loads(Path(staged_file).read_text())
    dip = staged["rows"][0]["metrics"]
    assert reach_doc["reach"]["target_psnr"] == dip["psnr_gt_best"]
    assert reach_doc["reach"]["baseline_best_iter"] == dip["psnr_best_iter"]
    assert reach_doc["goal_met"] is (reach_doc["reach"]["fastest"] is not None and
                                     reach_doc["reach"]["fastest"]["fraction"] <= 0.4)

    md = tmp_path / "RESULTS.md"
    assert ledger.main(["--results", str(out), "--out", str(md)]) == 0
    text = md.read_text()
    assert f"{dip['psnr_gt_best']:.2f} @{dip['psnr_best_iter']}" in text  # ours, from the JSON
    assert "| 30.73 @1520 | open |" in text  # the full-size rows have no measurement: open
    assert staged["rows"][0]["run"]["git_sha"][:10] in text and staged["command"] in text
    assert "## Smoke runs" in text and doc["command"] in text.split("## Smoke runs")[1]
    summary = text.split("## Reproductions")[0]
    assert "| beat_staged_f16_mini (search) |" in summary and reach_doc["command"] in summary
    assert ledger.reach_summary(reach_doc) in summary
