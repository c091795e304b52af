"""`dipddpm results summarize|compare|export` on a small real sweep, checked against pandas."""

import io
import json
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dipddpm.analysis import load_sweep
from dipddpm.cli import app

runner = CliRunner()


def invoke(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def trials(d):
    return pd.read_parquet(d / "trials")


# what makes a configuration in the fixture (the seed aside): the searched keys
CONFIG = ["config.stages", "config.scheduler", "config.beta_schedule", "config.iters"]


def key_of(values) -> tuple:
    """Group key values with null (a key that did not apply) as None, as JSON has them."""
    return tuple(None if pd.isna(v) else v for v in values)


def expected_groups(t: pd.DataFrame, keys: list[str]) -> dict:
    """Per-group statistics computed directly with pandas, as the summary defines them."""
    out = {}
    for key, g in t.groupby(keys, dropna=False):
        done = g[(g["status"] == "COMPLETED") & g["psnr_gt_best"].notna()]
        best = done.loc[done["psnr_gt_best"].idxmax()]
        same = done[(done[CONFIG].fillna("null") == best[CONFIG].fillna("null")).all(axis=1)]
        out[key_of(key)] = {
            "trials": len(g), "completed": int((g["status"] == "COMPLETED").sum()),
            "pruned": int((g["status"] == "PRUNED").sum()),
            "failed": int((g["status"] == "FAILED").sum()),
            "configs": len(g[CONFIG].fillna("null").drop_duplicates()),
            "seeds": g["seed"].nunique(),
            "best": best["psnr_gt_best"], "best_trial": best["trial_id"],
            "best_iter": best["psnr_best_iter"],
            "seed_n": len(same), "seed_mean": same["psnr_gt_best"].mean(),
            "seed_std": same["psnr_gt_best"].std() if len(same) > 1 else None,
            "all_mean": done["psnr_gt_best"].mean(),
            "all_std": done["psnr_gt_best"].std() if len(done) > 1 else None,
            "reached": int(done["first_reach_iter"].notna().sum())}
    return out


def check_groups(groups: list[dict], keys: list[str], t: pd.DataFrame) -> None:
    exp = expected_groups(t, keys)
    assert len(groups) == len(exp)
    for g in groups:
        e = exp[tuple(g[k] for k in keys)]
        for k in ("trials", "completed", "pruned", "failed", "configs", "seeds", "best_trial",
                  "best_iter", "seed_n", "reached"):
            assert g[k] == e[k], k
        for k in ("best", "seed_mean", "seed_std", "all_mean", "all_std"):
            assert g[k] == pytest.approx(e[k], rel=1e-12), k


def test_load_reads_every_trial_and_metric(sweep_dir):
    s = load_sweep(sweep_dir)
    t = trials(sweep_dir)
    assert sorted(s.trials["trial_id"]) == sorted(t["trial_id"])
    assert s.counts() == {k: int((t["status"] == k).sum())
                          for k in ("COMPLETED", "PRUNED", "FAILED")}
    assert {"psnr_gt", "ssim_gt", "stage"} <= set(s.metric_names)
    assert len(s.metrics()) == len(pd.read_parquet(sweep_dir / "metrics"))
    assert s.varying_config() == ["config.iters", "config.stages", "config.beta_schedule",
                                  "config.scheduler"]


def test_summarize_groups_match_pandas(sweep_dir):
    d = json.loads(invoke("results", "summarize", sweep_dir, "--by", "scheduler", "--by",
                          "config.beta_schedule", "--json").stdout)
    assert d["metric"] == "psnr_gt_best" and d["mode"] == "max"
    assert d["by"] == ["config.scheduler", "config.beta_schedule"]
    check_groups(d["groups"], d["by"], trials(sweep_dir))
    bests = [g["best"] for g in d["groups"]]
    assert bests == sorted(bests, reverse=True)


def test_inactive_keys_are_a_group_of_their_own(sweep_dir):
    """Plain-DIP trials have no stage scheduler (null): they form the "—" group, not part of
    a real scheduler's group, and are not dropped."""
    t = trials(sweep_dir)
    plain = t[t["config.stages"] == 1]
    assert len(plain) == 2 and plain["config.scheduler"].isna().all()
    d = json.loads(invoke("results", "summarize", sweep_dir, "--by", "scheduler",
                          "--json").stdout)
    check_groups(d["groups"], ["config.scheduler"], t)
    by = {g["config.scheduler"]: g for g in d["groups"]}
    assert set(by) == {"uniform", "sharp_linear", None}
    assert by[None]["trials"] == 2 and by[None]["configs"] == 1
    assert by[None]["best_trial"] in set(plain["trial_id"])
    assert sum(g["trials"] for g in d["groups"]) == len(t)
    assert by["uniform"]["trials"] == (t["config.scheduler"] == "uniform").sum()
    out = invoke("results", "summarize", sweep_dir, "--by", "scheduler").stdout
    assert any(line.split("│")[1].strip() == "—" for line in out.splitlines()
               if line.startswith("│") and by[None]["best_trial"] in line)


def test_mean_std_over_seeds_is_one_configuration(sweep_dir):
    """Grouped by scheduler, a group holds two configurations (beta schedules) of two seeds
    each: "over seeds" is the best trial's configuration, "over all" the whole group."""
    d = json.loads(invoke("results", "summarize", sweep_dir, "--by", "scheduler",
                          "--json").stdout)
    t = trials(sweep_dir)
    for g in d["groups"]:
        if g["config.scheduler"] is None:
            continue
        best = t.set_index("trial_id").loc[g["best_trial"]]
        same = t[(t["status"] == "COMPLETED") & (t["config.scheduler"] == g["config.scheduler"])
                 & (t["config.beta_schedule"] == best["config.beta_schedule"])]
        assert g["configs"] == 2 and g["seed_n"] == 2 and sorted(same["seed"]) == [0, 1]
        assert g["seed_mean"] == pytest.approx(same["psnr_gt_best"].mean())
        assert g["seed_std"] == pytest.approx(same["psnr_gt_best"].std())
        assert g["all_mean"] != pytest.approx(g["seed_mean"])
    out = invoke("results", "summarize", sweep_dir, "--by", "scheduler").stdout
    assert "mean ± std over seeds" in out and "mean ± std over all" in out
    assert "(n=2)" in out and "the best trial's configuration" in out


def test_summarize_counts_and_top_trials_match_pandas(sweep_dir):
    d = json.loads(invoke("results", "summarize", sweep_dir, "--top", "3", "--json").stdout)
    t = trials(sweep_dir)
    assert d["counts"] == t["status"].value_counts().to_dict()
    top = t.dropna(subset=["psnr_gt_best"]).nlargest(3, "psnr_gt_best")
    assert [r["trial_id"] for r in d["top"]] == list(top["trial_id"])
    assert [r["best_iter"] for r in d["top"]] == list(top["psnr_best_iter"])
    (g,) = d["groups"]
    assert g["trials"] == len(t) and g["completed"] == (t["status"] == "COMPLETED").sum()


def test_objective_ranks_pruned_trials_too(sweep_dir):
    d = json.loads(invoke("results", "summarize", sweep_dir, "--metric", "objective",
                          "--top", "20", "--json").stdout)
    t = trials(sweep_dir)
    assert len(d["top"]) == t["objective"].notna().sum()
    assert "PRUNED" in {r["status"] for r in d["top"]}
    assert d["mode"] == "max"  # the spec's mode for its objective


def test_threshold_reach_is_the_first_iteration_at_the_threshold(sweep_dir):
    d = json.loads(invoke("results", "summarize", sweep_dir, "--threshold", "13", "--top",
                          "20", "--json").stdout)
    m = pd.read_parquet(sweep_dir / "metrics")
    m = m[(m["metric"] == "psnr_gt") & (m["value"] >= 13)]
    first = m.groupby("trial_id")["iter"].min()
    for r in d["top"]:
        assert r["reach_iter"] == first.get(r["trial_id"]), r["trial_id"]
    assert any(r["reach_iter"] is None for r in d["top"]) or len(first) == len(d["top"])


def test_csv_is_the_group_table(sweep_dir):
    r = invoke("results", "summarize", sweep_dir, "--by", "beta_schedule", "--csv")
    df = pd.read_csv(io.StringIO(r.stdout))
    exp = expected_groups(trials(sweep_dir), ["config.beta_schedule"])
    assert {key_of([v]) for v in df["config.beta_schedule"]} == set(exp)
    for _, row in df.iterrows():
        e = exp[key_of([row["config.beta_schedule"]])]
        assert row["all_mean"] == pytest.approx(e["all_mean"])
        assert row["seed_mean"] == pytest.approx(e["seed_mean"])


def test_text_output_names_groups_and_counts(sweep_dir):
    out = invoke("results", "summarize", sweep_dir, "--by", "scheduler").stdout
    assert "sharp_linear" in out and "uniform" in out
    assert "1 pruned" in out and "1 failed" in out and "mean ± std" in out


def test_compare_rows_are_the_best_completed_trial(sweep_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(sweep_dir, other)
    d = json.loads(invoke("results", "compare", sweep_dir, other, "--by", "scheduler",
                          "--json").stdout)
    t = trials(sweep_dir)
    m = pd.read_parquet(sweep_dir / "metrics")
    assert len(d["final_best"]) == 2 * 3  # uniform, sharp_linear and null (plain DIP)
    assert len({r["sweep"] for r in d["final_best"]}) == 2  # same name: labelled by path
    for r, q in zip(d["final_best"], d["reach_max"], strict=True):
        same = (t["config.scheduler"].isna() if r["scheduler"] is None
                else t["config.scheduler"] == r["scheduler"])
        g = t[same & (t["status"] == "COMPLETED")]
        assert r["trials"] == same.sum()
        best = g.loc[g["psnr_gt_best"].idxmax()]
        assert r["best_trial"] == q["best_trial"] == best["trial_id"]
        assert r["final_psnr"] == pytest.approx(best["psnr_gt_final"])
        assert r["best_psnr"] == pytest.approx(best["psnr_gt_best"])
        assert r["best_iter"] == best["psnr_best_iter"] == q["max_psnr_iter"]
        assert r["gap_db"] == pytest.approx(best["psnr_gt_best"] - best["psnr_gt_final"])
        ssim = m[(m["trial_id"] == best["trial_id"]) & (m["metric"] == "ssim_gt")]
        assert q["max_ssim"] == pytest.approx(ssim["value"].max())
        assert q["max_ssim_iter"] == ssim.loc[ssim["value"].idxmax(), "iter"]


def test_compare_text_has_both_source_tables(sweep_dir):
    out = invoke("results", "compare", sweep_dir).stdout
    assert "iterations to reach max PSNR / SSIM" in out
    assert "final vs best PSNR and best iteration" in out


def test_export_json_and_csv_round_trip(sweep_dir, tmp_path):
    t = trials(sweep_dir)
    rows = json.loads(invoke("results", "export", sweep_dir, "--format", "json").stdout)
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"])
    by_id = {r["trial_id"]: r for r in rows}
    for _, row in t.iterrows():
        v = row["psnr_gt_best"]
        assert (by_id[row["trial_id"]]["psnr_gt_best"] is None) == pd.isna(v)
    out = tmp_path / "metrics.csv"
    invoke("results", "export", sweep_dir, "--format", "csv", "--table", "metrics", "--out", out)
    m = pd.read_csv(out)
    assert len(m) == len(pd.read_parquet(sweep_dir / "metrics"))
    assert list(m.columns) == ["sweep", "trial_id", "iter", "metric", "value"]


def test_trial_files_with_different_columns_are_unified(sweep_dir, tmp_path):
    """Rows written by another method or version: missing columns read as null, null-typed
    columns take the other files' type."""
    d = tmp_path / "mixed"
    shutil.copytree(sweep_dir, d)
    row = {"sweep": "fixture", "trial_id": "x999", "status": "FAILED", "error": "boom",
           "method": "ddpm", "seed": 7, "iters_done": 0, "objective": None,
           "config.sampler": "ddim"}
    table = pa.Table.from_pylist([row])  # objective is a null-typed column here
    table = table.replace_schema_metadata({"dipddpm.schema_version": "1"})
    pq.write_table(table, d / "trials" / "part-x999.parquet")
    s = load_sweep(d)
    assert len(s.trials) == len(trials(sweep_dir)) + 1
    x = s.trials.set_index("trial_id")
    assert x.loc["x999", "config.sampler"] == "ddim" and pd.isna(x.loc["t000", "config.sampler"])
    assert pd.isna(x.loc["x999", "psnr_gt_best"]) and x["objective"].dtype == "float64"
    assert s.counts()["FAILED"] == 2


def test_analysis_needs_neither_ray_nor_torch(sweep_dir):
    """A results folder copied from a cluster is analysed without Ray (or torch) loaded."""
    code = ("import sys\n"
            "from dipddpm.analysis import load_sweep, plots, report, summarize\n"
            "s = load_sweep(sys.argv[1])\n"
            "summarize.summarize(s, by=['scheduler']); plots.plot_curves(s)\n"
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code, str(sweep_dir)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
