"""The reproduction benchmarks: the _mini protocols and the mini search run end to end on CPU
and the ledger is written from their JSON with real numbers (benchmarks/reproduce.py,
benchmarks/search.py, benchmarks/ledger.py). Needs the benchmark images (../shared/data);
skipped without them. The protocol table itself is checked without any image."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
protocols = importlib.import_module("protocols")
DATA = BENCH.parents[1] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "cset9" / "F16.png").is_file(),
                                reason=f"benchmark images not found in {DATA}")


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


@pytest.fixture(scope="module")
def mini_results(tmp_path_factory):
    reproduce = importlib.import_module("reproduce")
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
        assert doc["schema"] == "dipddpm.reproduce/1" and doc["comparable"] is False
        assert doc["hardware"]["device"] == "cpu" and doc["hardware"]["cpu"]
        assert doc["command"].startswith(f"python benchmarks/reproduce.py {name} ")
        assert doc["git_sha"] and doc["date"]
        assert [r["name"] for r in doc["rows"]] == [r.name for r in
                                                    protocols.PROTOCOLS[name].rows]
        for row in doc["rows"]:
            m = row["metrics"]
            assert all(math.isfinite(m[k]) for k in ("psnr_gt_best", "psnr_gt_final",
                                                     "psnr_gt_sm_final", "psnr_noisy_input"))
            assert 0 < m["psnr_best_iter"] <= m["iters"]
            assert len(row["curve"]["iter"]) == m["iters"] // 10
        if name != "guided_dip_butterfly_mini":  # the guided preset's small lr: not in 200 it
            for row in doc["rows"]:  # DIP denoises: better than its noisy input
                assert row["metrics"]["psnr_gt_best"] > row["metrics"]["psnr_noisy_input"] + 1
    cset = json.loads((out / "dip_cset9_mini.json").read_text())
    mean = {a["name"]: a["ours"] for a in cset["aggregates"]}
    finals = [r["metrics"]["psnr_gt_final"] for r in cset["rows"]]
    assert mean["mean_psnr_gt_final"] == pytest.approx(sum(finals) / 9)
    staged = json.loads((out / "staged_dip_f16_mini.json").read_text())
    reach = staged["derived"]["reach_baseline"]
    assert reach["target_psnr"] == staged["rows"][0]["metrics"]["psnr_gt_best"]


@needs_data
@pytest.mark.slow
def test_mini_search_and_ledger(mini_results, tmp_path):
    search = importlib.import_module("search")
    ledger = importlib.import_module("ledger")
    _, out = mini_results
    rc = search.main([str(BENCH.parent / "sweeps" / "beat_staged_f16_mini.yaml"), "--smoke",
                      "--device", "cpu", "--threads", "1", "--trials", "2",
                      "--set", f"problem.image={DATA / 'cset9' / 'F16.png'}",
                      "--out", str(out)])
    assert rc == 0
    doc = json.loads((out / "search-beat_staged_f16_mini.json").read_text())
    assert doc["n_trials"] == 2 and doc["direction"] == "maximize"
    assert doc["best"]["value"] == doc["best"]["metrics"]["psnr_gt_best"]
    assert (out / "beat_staged_f16_mini.optuna.log").is_file()

    md = tmp_path / "RESULTS.md"
    assert ledger.main(["--results", str(out), "--out", str(md)]) == 0
    text = md.read_text()
    staged = json.loads((out / "staged_dip_f16_mini.json").read_text())
    dip = staged["rows"][0]["metrics"]
    assert f"{dip['psnr_gt_best']:.2f} @{dip['psnr_best_iter']}" in text  # ours, from the JSON
    assert "| 30.73 | open |" in text  # the full-size rows have no measurement: open
    assert staged["git_sha"][:10] in text and staged["command"] in text
    assert f"{doc['best']['value']:.3f}" in text


def test_ledger_lists_every_full_row_as_open_without_results(tmp_path):
    ledger = importlib.import_module("ledger")
    md = tmp_path / "RESULTS.md"
    ledger.main(["--results", str(tmp_path), "--out", str(md)])
    text = md.read_text()
    for name in protocols.FULL:
        for r in protocols.PROTOCOLS[name].rows:
            assert f"| {r.name}: {r.label} |" in text
    assert text.count("| open |") >= sum(len(protocols.PROTOCOLS[n].rows) for n in
                                         protocols.FULL)
