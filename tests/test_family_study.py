"""The DIP-family study (sweeps/study_dip_family.yaml and its arms): every arm is the base plus
its overlay and validates with its smoke block; an arm takes only what its method has; bad
overlays and unregistered methods are one error each; the README's table is what
benchmarks/family_table.py renders from the committed verdict; and, end to end on the methods
that exist, the driver runs every arm's sweep, pairs them and writes a verdict and a table."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from dipddpm.analysis import effect
from dipddpm.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SWEEPS = REPO / "sweeps"
BASES = ["study_dip_family.yaml", "study_dip_family_cset9.yaml"]
# the arms whose methods land with issue 25's four methods: pending until they are registered
FOUR = {"self_diffusion", "dip_sure", "aseq_dip", "dip_tv"}

sys.path.insert(0, str(REPO / "benchmarks"))
import family  # noqa: E402
import family_study  # noqa: E402
import family_table  # noqa: E402
import family_verdict  # noqa: E402, F401  (imported by name in a test)

sys.path.remove(str(REPO / "benchmarks"))


@pytest.mark.parametrize("base", BASES)
def test_every_arm_validates_on_the_base_s_observations(base, monkeypatch):
    monkeypatch.chdir(REPO)
    fam = family.load_family(SWEEPS / base)
    assert fam.reference == "dip" and list(fam.arms)[0] == "dip"
    assert set(fam.arms) | set(fam.pending) == {"dip", "guided_dip", *FOUR}
    assert set(fam.pending) <= FOUR and all(fam.pending[a] == a for a in fam.pending)
    assert fam.baselines == ("bm3d", "nlm")
    problem = fam.arms["dip"].raw["problem"]
    for arm in fam.arms.values():
        assert arm.raw["problem"] == problem  # the same observations for every arm
        full = family.load_arm(arm, load_problem=False)
        smoke = family.load_arm(arm, smoke=True)
        assert full.metric in family.GT_FREE_METRICS and full.name.startswith(fam.name)
        assert smoke.name == f"{full.name}-smoke" and smoke.trials <= full.trials
        assert (full.baselines != ()) == (arm.name == fam.reference)


def write_family(tmp: Path, overlays: dict[str, dict], base: dict | None = None) -> Path:
    base = base or yaml.safe_load((SWEEPS / "study_dip_family.yaml").read_text())
    path = tmp / "fam.yaml"
    path.write_text(yaml.safe_dump({**base, "name": "fam"}))
    (tmp / "fam").mkdir()
    for name, overlay in overlays.items():
        (tmp / "fam" / f"{name}.yaml").write_text(yaml.safe_dump(overlay))
    return path


def test_an_arm_takes_only_what_its_method_has(tmp_path):
    path = write_family(tmp_path, {"classic": {
        "method": "nlm", "metric": "psnr_es", "fixed": {"iters": 1, "fast_mode": False},
        "search": {"h_factor": {"grid": [0.6, 0.8]}}, "smoke": {"fixed": {"iters": 1}}}})
    fam = family.load_family(path)
    arm = fam.arms["classic"].raw
    assert arm["name"] == "fam-classic" and arm["method"] == "nlm"
    # the base's net keys are not NL-means fields; iters is, and the overlay's value wins
    assert arm["fixed"] == {"iters": 1, "fast_mode": False}
    assert arm["smoke"]["fixed"] == {"iters": 1}
    assert arm["search"] == {"h_factor": {"grid": [0.6, 0.8]}}  # not the base's lr grid
    assert "baselines" not in arm and arm["problem"] == fam.arms["dip"].raw["problem"]


@pytest.mark.parametrize("overlay,words", [
    ({"method": "dip", "metric": "psnr_es", "problem": {"image": "skimage:camera"}},
     "may not set 'problem'"),
    ({"method": "dip", "metric": "psnr_best"}, "not a GT-free pick"),
    ({"metric": "psnr_es"}, "at least method"),
])
def test_a_bad_overlay_is_one_error(tmp_path, overlay, words):
    path = write_family(tmp_path, {"bad": overlay})
    with pytest.raises(ConfigError, match=words):
        family.load_family(path)


def test_the_driver_refuses_pending_arms_and_unknown_names(tmp_path, capsys):
    path = write_family(tmp_path, {"later": {"method": "not_yet_a_method",
                                             "metric": "psnr_output"}})
    assert family_study.main([str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "later (method not_yet_a_method)" in err[0]
    assert "--arms" in err[0]
    assert family_study.main([str(path), "--check", "--arms", "dip"]) == 0
    assert "ok: arm dip" in capsys.readouterr().out
    assert family_study.main([str(path), "--check", "--arms", "dip,nope"]) == 2
    assert "no arm 'nope'" in capsys.readouterr().err


def test_the_readme_table_is_the_committed_verdict_s():
    text = (REPO / "README.md").read_text()
    start = text.index(family_table.BEGIN)
    end = text.index(family_table.END) + len(family_table.END)
    assert text[start:end] == family_table.render(family_table.committed())


def test_an_incomplete_verdict_is_never_the_readme_s():
    with pytest.raises(ValueError, match="incomplete"):
        family_table.render({"study": "x", "complete": False})


@pytest.mark.ray
@pytest.mark.slow
def test_the_study_runs_end_to_end_on_the_methods_that_exist(ray_local, tmp_path, monkeypatch):
    """The stand-in for the four methods to come: plain DIP and guided DIP, their smoke
    blocks, the baselines, the verdict and its table (never the committed verdict)."""
    monkeypatch.chdir(REPO)
    base = tmp_path / "spec"
    shutil.copytree(SWEEPS / "study_dip_family", base / "study_dip_family")
    shutil.copy(SWEEPS / "study_dip_family.yaml", base)
    rc = family_study.main([str(base / "study_dip_family.yaml"), "--smoke", "--arms",
                            "dip,guided_dip", "--storage", str(tmp_path / "r")])
    assert rc == 0
    doc = json.loads((tmp_path / "r" / "study_dip_family-smoke-verdict.json").read_text())
    assert doc["complete"] is False and doc["arms"] == ["dip", "guided_dip"]
    assert doc["git_sha"] and doc["hardware"] and doc["command"]
    assert {r["arm"] for r in doc["methods"]} == {"dip", "guided_dip"}
    assert {b["label"] for b in doc["baselines"]} == {"bm3d", "nlm"}
    guided = next(r for r in doc["methods"] if r["arm"] == "guided_dip")
    # 2 images x 2 replicates sharing one observation per image (problem.shared_noise): the
    # verdict pairs by observation, 2 of them
    assert guided["n_obs"] == 2 and guided["es_gap_db"] >= -1e-6
    for name in ("dip", "bm3d", "nlm"):
        v = guided["vs"][name]
        assert v["n_pairs"] == 2 and v["ci95"] is not None and v["p_wilcoxon"] is not None
    # a 20-iteration guided DIP (B) loses to BM3D (A) on every observation
    assert guided["vs"]["bm3d"]["wins"] == 0 and guided["vs"]["bm3d"]["mean_delta"] < 0
    block = family_table.render({**doc, "complete": True})
    assert block.count("\n| ") == 1 + len(doc["methods"])  # the header, and a line each
    assert "guided_dip" in block and "Gaps to plain DIP" in block
    assert not (REPO / "benchmarks" / "results" / "study_dip_family.json").exists() or \
        json.loads((REPO / "benchmarks" / "results" / "study_dip_family.json").read_text())[
            "complete"]


def synthetic_sweep(tmp: Path):
    """A study sweep of two configurations (lr 0.01: trial a, lr 0.02: trial b) on 2 images x
    2 replicates, each with its ensemble rows (replicate -1): a's single runs are the better,
    b's ensemble is."""
    import pandas as pd

    from dipddpm.analysis.load import Sweep

    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": ["COMPLETED"] * 2,
                           "method": ["dip"] * 2, "config.lr": [0.01, 0.02],
                           "git_sha": ["x"] * 2, "hostname": ["h"] * 2, "wall_s": [1.0, 2.0]})
    rows = []
    for tid, single, ens in (("a", 25.0, 26.0), ("b", 24.0, 30.0)):
        for i, image in enumerate(("i1", "i2")):
            for r in (0, 1):
                rows.append({"trial_id": tid, "image": image, "replicate": r,
                             "ensemble": False, "noise_seed": i, "height": 8, "width": 8,
                             "psnr_es": single + i + r / 10, "psnr_gt_best": single + 1})
            rows.append({"trial_id": tid, "image": image, "replicate": -1, "ensemble": True,
                         "noise_seed": i, "height": 8, "width": 8, "psnr_es": ens + i,
                         "psnr_gt_best": ens + 1})
    (tmp / "pairs").mkdir()
    pd.DataFrame(rows).to_parquet(tmp / "pairs" / "part-0.parquet")
    return Sweep(path=tmp, name="syn", trials=trials, metric_files=[])


@pytest.mark.skipif(not hasattr(effect, "pair_keys"), reason="the library pairs an ensemble's "
                    "rows by observation once issue 25's ensembles land (analysis/effect.py)")
def test_an_arm_s_ensemble_is_its_best_configuration_s_against_its_single_runs(tmp_path):
    import family_verdict as fv

    sweep = synthetic_sweep(tmp_path)
    alone = fv.arm_side(sweep, "psnr_es", "alone", "x")
    ens = fv.arm_side(sweep, "psnr_es", "ensemble", "x (ensemble)")
    assert alone.config == ens.config == {"lr": 0.01}  # chosen by the single runs
    assert set(ens.obs["replicate"]) == {-1} and len(ens.obs) == 2
    assert ens.obs["value"].tolist() == [26.0, 27.0] and ens.obs["psnr_gt_best"].mean() == 27.0
    ref = fv.Side("ref", "psnr_es", alone.obs)
    # by observation: each image's ensemble against the mean of its single runs
    v = fv.verdict(ref, ens)
    assert v["n_pairs"] == 2 and v["wins"] == 2
    assert v["mean_delta"] == pytest.approx(1.0 - 0.05)
    assert set(v["per_image_delta"]) == {"i1", "i2"}


def test_plain_dip_s_own_line_is_compared_with_its_pick_unless_it_is_that_pick(tmp_path):
    """The reference arm's line skips the comparison with itself only where it reports the
    pick plain DIP counts at; reporting another output (e.g. the smoothed pick under output:
    ensemble), it is compared with that pick."""
    import family_verdict as fv

    alone = fv.arm_side(synthetic_sweep(tmp_path), "psnr_es", "alone", "dip")
    ref = fv.Side("dip (best GT-free pick)", "psnr_es", alone.obs)
    same = fv.row(alone, "dip", "dip", "alone", {"dip": ref}, "dip")
    assert same["vs"]["dip"] is None
    other = fv.Side("dip", "psnr_output", alone.obs.assign(value=alone.obs["value"] - 1.0))
    line = fv.row(other, "dip", "dip", "alone", {"dip": ref}, "dip")
    assert line["vs"]["dip"]["mean_delta"] == pytest.approx(-1.0)
    assert line["vs"]["dip"]["metric"] == "psnr_output - psnr_es"
