"""Studies through `sweep run` on the shared local Ray: a trial per configuration fits every
(image, replicate) pair; the trials row holds the set's numbers, `pairs/` a row per pair,
`metrics/` the pairs' curves; a crash restarts a chunked study from its checkpoint; a SIGKILLed
driver resumes a study with nothing lost or doubled; bad sets are one line before Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_sweep_run import quiet  # the one quiet console of the sweep tests

TINY = {"width": 8, "depth": 2, "input_depth": 4, "report_every": 5, "es_window": 4,
        "es_patience": 10}


def write_spec(tmp_path: Path, **spec) -> Path:
    base = {"method": "dip", "preset": "tiny", "metric": "psnr_best", "mode": "max",
            "problem": {"images": ["skimage:astronaut", "skimage:coffee"], "replicates": 2,
                        "size": 32, "sigma": 25},
            "fixed": {**TINY, "iters": 30}, "checkpoint_every": 10,
            "searcher": {"type": "grid"}, "scheduler": {"type": "none"}, "num_samples": 1,
            "storage": str(tmp_path / "results")}
    p = tmp_path / f"{spec['name']}.yaml"
    p.write_text(yaml.safe_dump({**base, **spec}, sort_keys=False))
    return p


@pytest.mark.ray
@pytest.mark.slow
def test_a_study_writes_set_rows_pair_rows_and_pair_curves(ray_local, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from dipddpm.cli import app
    from dipddpm.sweep.runner import run_sweep

    spec = write_spec(tmp_path, name="study", search={"lr": {"grid": [0.01, 0.03]}},
                      baselines=["bm3d"])
    sweep = Path(run_sweep(spec, console=quiet()).path)
    trials = pd.read_parquet(sweep / "trials")
    pairs = pd.read_parquet(sweep / "pairs")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    assert len(pairs) == 8 and not pairs.duplicated(["trial_id", "image", "replicate"]).any()
    for _, p in pairs.iterrows():  # each pair's own command: its image, noise seed and seed
        assert f"--image {p['image']}" in p["reproduce"]
        assert f"--noise-seed {p['noise_seed']} " in p["reproduce"]
        assert f"--seed {p['seed']} " in p["reproduce"]
    for _, t in trials.iterrows():
        own = pairs[pairs["trial_id"] == t["trial_id"]]
        assert t["n_pairs"] == 4
        for k in ("psnr_gt_final", "psnr_es", "ssim_gt_final"):
            assert t[k] == pytest.approx(own[k].mean())
        assert t["psnr_gt_best_pairmean"] == pytest.approx(own["psnr_gt_best"].mean())
        assert t["psnr_gt_best"] <= t["psnr_gt_best_pairmean"] + 1e-9  # one stop for all
    m = pd.read_parquet(sweep / "metrics")
    per_pair = m[m["image"].notna()]
    assert set(per_pair["replicate"]) == {0, 1}
    curves = per_pair[per_pair["metric"] == "psnr_gt"].groupby(
        ["trial_id", "image", "replicate"])["iter"].apply(sorted)
    assert len(curves) == 8 and all(v == list(range(5, 31, 5)) for v in curves)
    assert not m.duplicated(["trial_id", "iter", "metric", "image", "replicate"]).any()
    # the set's own curve (image null) is the mean of the pairs' at every report
    t0 = trials["trial_id"].iloc[0]
    mine = m[(m["trial_id"] == t0) & (m["metric"] == "psnr_gt")]
    own = mine[mine["image"].isna()].set_index("iter")["value"]
    mean = mine[mine["image"].notna()].groupby("iter")["value"].mean()
    assert own.to_dict() == pytest.approx(mean.to_dict())
    # the paired verdict over the study's (image, replicate) pairs
    r = CliRunner().invoke(app, ["results", "effect", str(sweep), "--a", "lr=0.01",
                                 "--b", "lr=0.03", "--json"])
    assert r.exit_code == 0, r.output
    verdict = json.loads(r.output)
    assert verdict["n_pairs"] == 4 and len(verdict["per_image_delta"]) == 2
    # the baseline ran once on the same observations, and pairs with the trials
    base = pd.read_parquet(sweep / "baselines")
    assert len(base) == 4 and set(base["baseline"]) == {"bm3d"}
    assert (base["psnr_gt_final"] > base["psnr_noisy_input"]).all()
    first = pairs.drop_duplicates(["image", "replicate"]).set_index(["image", "replicate"])
    assert (first["psnr_noisy_input"] == base.set_index(["image", "replicate"])
            .loc[first.index, "psnr_noisy_input"]).all()  # the very same observations
    r = CliRunner().invoke(app, ["results", "effect", str(sweep), "--a", "baseline=bm3d",
                                 "--b", "lr=0.03", "--metric", "psnr_es", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n_pairs"] == 4
    out = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["results", "report", str(sweep), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Against the baselines" in out.read_text()


@pytest.mark.ray
@pytest.mark.slow
def test_a_crashed_chunked_study_restarts_from_its_checkpoint(ray_local, tmp_path):
    """Images of two sizes cannot share a fused net: the pairs run chunked, and a crash at
    iteration 17 restarts every pair from the checkpoint at 10, ending as if uninterrupted."""
    import pandas as pd

    from dipddpm.data.images import load_image, save_image
    from dipddpm.sweep.runner import run_sweep

    img = load_image("skimage:astronaut")
    save_image(img[:, :32, :32], tmp_path / "a.png")
    save_image(img[:, 100:148, 100:148], tmp_path / "b.png")
    problem = {"images": [str(tmp_path / "a.png"), str(tmp_path / "b.png")], "sigma": 25}
    runs = {}
    for name, faults in (("whole", []), ("crashed", [{"at_iter": 17, "kind": "raise"}])):
        spec = write_spec(tmp_path, name=name, problem=problem, faults=faults,
                          max_failures=1)
        sweep = Path(run_sweep(spec, console=quiet()).path)
        runs[name] = (pd.read_parquet(sweep / "trials"), pd.read_parquet(sweep / "pairs"))
    (whole, wp), (crashed, cp) = runs["whole"], runs["crashed"]
    assert crashed["retries"].iloc[0] == 1 and crashed["resumed_from_iter"].iloc[0] == 10
    assert crashed["status"].iloc[0] == "COMPLETED"
    assert cp["psnr_gt_final"].tolist() == pytest.approx(wp["psnr_gt_final"].tolist(), abs=1e-5)
    assert crashed["psnr_gt_best"].iloc[0] == pytest.approx(whole["psnr_gt_best"].iloc[0],
                                                            abs=1e-5)


@pytest.mark.ray
@pytest.mark.slow
def test_sigkill_driver_then_resume_a_study(ray_local, tmp_path):
    import pandas as pd
    from test_sweep_resume import files_settle, kill_driver_at_a_checkpoint

    spec = write_spec(tmp_path, name="killstudy", method="guided_dip",
                      fixed={**TINY, "iters": 120, "stages": 2},
                      search={"scheduler": {"grid": ["uniform", "exp_weighted"]},
                              "lr": {"grid": [0.01, 0.02]}},
                      searcher={"type": "grid", "max_concurrent": 2})
    sweep = tmp_path / "results" / "killstudy"
    address = ray_local.get_runtime_context().gcs_address
    cli = [sys.executable, "-c", "from dipddpm.cli import main; main()"]
    kill_driver_at_a_checkpoint(spec, sweep, address, tmp_path / "driver.log")
    files_settle(sweep / "tune")
    r = subprocess.run([*cli, "sweep", "resume", str(sweep), "--address", address, "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = pd.read_parquet(sweep / "trials")
    assert len(trials) == 4 and (trials["status"] == "COMPLETED").all()
    pairs = pd.read_parquet(sweep / "pairs")
    assert len(pairs) == 16 and not pairs.duplicated(["trial_id", "image", "replicate"]).any()
    m = pd.read_parquet(sweep / "metrics")
    assert not m.duplicated(["trial_id", "iter", "metric", "image", "replicate"]).any()
    gt = m[m["metric"] == "psnr_gt"]
    per = gt.groupby(["trial_id", gt["image"].fillna("set"), gt["replicate"].fillna(-1)])
    assert len(per) == 4 * 5  # the set and its 4 pairs, per trial
    assert all(v == list(range(5, 121, 5)) for v in per["iter"].apply(sorted))


@pytest.mark.parametrize("problem, fixed, metric, match", [
    ({"images": []}, {}, "psnr_best", "non-empty"),
    ({"images": ["skimage:astronaut", "nope.png"]}, {}, "psnr_best", "image nope.png"),
    ({"images": ["skimage:astronaut"], "replicates": 0}, {}, "psnr_best", "replicates"),
    ({"images": ["skimage:astronaut"], "size": 12}, {"depth": 3}, "psnr_best",
     "image skimage:astronaut"),
    ({"images": ["skimage:astronaut"]}, {"es_rule": "none"}, "psnr_es", "es_rule is none"),
])
def test_bad_studies_are_one_line_before_ray(tmp_path, problem, fixed, metric, match):
    from typer.testing import CliRunner

    from dipddpm.cli import app

    spec = write_spec(tmp_path, name="bad", problem={"size": 32, **problem},
                      fixed={**TINY, "iters": 30, **fixed}, metric=metric)
    r = CliRunner().invoke(app, ["sweep", "validate", str(spec)])
    assert r.exit_code == 2, r.output
    assert match in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("baselines, problem, match", [
    (["wnnm"], None, "unknown baseline 'wnnm'"), ("bm3d", None, "list of names"),
    (["bm3d"], {"image": "skimage:astronaut", "size": 32}, "one image and seed")])
def test_bad_baselines_are_one_line(tmp_path, baselines, problem, match):
    from typer.testing import CliRunner

    from dipddpm.cli import app

    extra = {"problem": problem} if problem else {}
    spec = write_spec(tmp_path, name="bad", baselines=baselines, **extra)
    r = CliRunner().invoke(app, ["sweep", "validate", str(spec)])
    assert r.exit_code == 2 and match in r.output, r.output


def test_a_study_s_start_up_builds_its_problem_once(tmp_path, monkeypatch):
    """Validating the spec, writing the problem images and the baselines share one build of
    the study's pairs (each image read and degraded once), released after the start-up."""
    from dipddpm.dataset.storage import resolve
    from dipddpm.methods import study_pairs
    from dipddpm.sweep.runner import run_baselines_once
    from dipddpm.sweep.spec import load_spec

    builds = []
    real = study_pairs.build_pairs
    monkeypatch.setattr(study_pairs, "build_pairs",
                        lambda *a, **k: builds.append(1) or real(*a, **k))
    spec = load_spec(write_spec(tmp_path, name="once", baselines=["bm3d"],
                                problem={"images": ["skimage:astronaut", "skimage:coffee"],
                                         "size": 32, "sigma": 25}))
    sweep = resolve(tmp_path / "results" / "once")
    sweep.child("x").write_text("")  # the sweep dir exists, as the runner makes it
    run_baselines_once(spec, sweep, quiet())
    assert len(builds) == 1
    assert (tmp_path / "results" / "once" / "baselines" / "part-bm3d.parquet").exists()
    assert len(list((tmp_path / "results/once/artifacts/problem/pairs").glob("*.png"))) == 4
    assert study_pairs._STARTUP == {}  # released
