"""Sweep specs without Ray: every bad input is one line naming the key, exit 2, nothing written;
YAML domains -> Optuna distributions (define-by-run, conditional); bundled specs validate."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.errors import ConfigError
from dipddpm.sweep.spec import load_spec, parse_spec
from dipddpm.sweep.spec.space import decode, define_by_run, distributions

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
GOOD = {
    "name": "t", "method": "guided_dip", "preset": "tiny",
    "problem": {"image": "skimage:astronaut", "size": 32},
    "metric": "psnr_best", "mode": "max",
    "fixed": {"iters": 30, "width": 8, "depth": 3, "input_depth": 4},
    "search": {"scheduler": {"choice": ["uniform", "exp_weighted"]},
               "exp_c": {"loguniform": [50, 1000], "when": {"scheduler": "exp_weighted"}},
               "stages": {"int": [2, 6], "step": 2},
               "lr": {"loguniform": [1e-3, 3e-2]},
               "noise_affine": {"choice": [[1.0, 0.0], [0.5, 0.5]]}},
    "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 2},
    "scheduler": {"type": "asha", "grace_period": 10, "reduction_factor": 2},
    "num_samples": 4,
}


def with_(**changes) -> dict:
    spec = yaml.safe_load(yaml.safe_dump(GOOD, sort_keys=False))
    for dotted, value in changes.items():
        node = spec
        *path, last = dotted.split("__")
        for p in path:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return spec


DELETE = object()

BAD = [  # (changes, words the one-line error must contain)
    ({"method": "dipp"}, ["method", "did you mean 'dip'"]),
    ({"metrik": "x"}, ["unknown spec key 'metrik'", "metric"]),
    ({"fixed__lrr": 0.1}, ["fixed", "'lrr'", "did you mean 'lr'"]),
    ({"search__bogus": {"choice": [1, 2]}}, ["search.bogus", "unknown config key"]),
    ({"search__lr": {"loguniform": [0.1, 0.01]}}, ["search.lr", "low 0.1 > high 0.01"]),
    ({"search__stages": {"int": [6, 2]}}, ["search.stages", "low 6 > high 2"]),
    ({"search__net": {"grid": ["unet", "skip"]}}, ["search.net", "grid", "searcher"]),
    ({"metric": "val_loss"}, ["metric", "'val_loss'", "not reported by guided_dip"]),
    ({"scheduler__grace_period": 100}, ["scheduler.grace_period (100) > max_t (30"]),
    ({"resources": {"cpu": -1}}, ["resources.cpu", ">= 0"]),
    ({"resources": {"gpu": -0.5}}, ["resources.gpu", ">= 0"]),
    ({"search__scheduler": {"choice": ["uniform", "nope"]}}, ["search.scheduler", "'nope'"]),
    ({"search__lr": {"uniform": [0.1]}}, ["search.lr", "[low, high]"]),
    ({"search__lr": {"loguniform": [0, 1]}}, ["search.lr", "low > 0"]),
    ({"search__exp_c__when": {"stages": 4}}, ["search.exp_c.when", "choice or grid"]),
    ({"searcher__sampler": "tpee"}, ["searcher.sampler", "tpe"]),
    ({"num_samples": 0}, ["num_samples", ">= 1"]),
    ({"fixed__iters": 40, "search__iters": {"choice": [20]}}, ["search.iters", "fixed"]),
    ({"problem__image": "/no/such.png"}, ["problem", "image not found"]),
    ({"preset": "huge"}, ["preset", "'huge'", "valid presets"]),
]


@pytest.mark.parametrize("changes,words", BAD, ids=[str(list(c)[0]) for c, _ in BAD])
def test_bad_spec_is_one_line_naming_the_key(changes, words):
    with pytest.raises(ConfigError) as e:
        parse_spec(with_(**changes))
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def _write(tmp_path: Path, spec: dict) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


@pytest.mark.parametrize("changes", [{"method": "dipp"}, {"search__lr": {"loguniform": [1, 0.1]}},
                                     {"scheduler__grace_period": 999}])
def test_cli_bad_spec_exit_2_nothing_written(tmp_path, changes):
    spec = _write(tmp_path, with_(**changes))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["sweep", "run", str(spec), "--storage", str(out)])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1
    assert not out.exists()


def test_cli_unwritable_storage(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    spec = _write(tmp_path, GOOD)
    r = CliRunner().invoke(app, ["sweep", "run", str(spec), "--storage", str(blocker / "sub")])
    assert r.exit_code == 2 and "not writable" in r.output and "--storage" in r.output


def test_cli_existing_sweep_with_other_spec(tmp_path):
    from dipddpm.sweep.runner import resolved_yaml

    out = tmp_path / "out"
    (out / "t").mkdir(parents=True)
    old = load_spec(_write(tmp_path, with_(num_samples=9)), storage=str(out))
    (out / "t" / "spec.resolved.yaml").write_text(resolved_yaml(old))
    before = sorted(p.name for p in (out / "t").iterdir())
    r = CliRunner().invoke(app, ["sweep", "run", str(_write(tmp_path, GOOD)), "--storage",
                                 str(out)])
    assert r.exit_code == 2 and "different spec" in r.output and "resume" in r.output
    assert sorted(p.name for p in (out / "t").iterdir()) == before


def test_space_to_optuna_distributions_and_conditions():
    spec = parse_spec(GOOD)
    dists = distributions(spec.search)
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)
    assert dists["stages"] == optuna.distributions.IntDistribution(2, 6, step=2)
    assert dists["scheduler"].choices == ("uniform", "exp_weighted")
    assert dists["exp_c"].log and dists["exp_c"].low == 50
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = define_by_run(spec.search)
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = decode(spec.search, space(trial))
        seen.add(params["scheduler"])
        # exp_c exists exactly when the scheduler is exp_weighted
        assert ("exp_c" in params) == (params["scheduler"] == "exp_weighted")
        assert params["stages"] in (2, 4, 6)  # int bounds are inclusive, with the step
        assert 1e-3 <= params["lr"] <= 3e-2
        assert params["noise_affine"] in ([1.0, 0.0], [0.5, 0.5])  # lists survive Optuna
        study.tell(trial, 0.0)
    assert seen == {"uniform", "exp_weighted"}


def test_smoke_and_set_overrides(tmp_path):
    spec = load_spec(SWEEPS / "quick.yaml", smoke=True, sets=["problem.size=48"],
                     num_samples=5, storage=str(tmp_path))
    assert spec.num_samples == 5 and spec.problem["size"] == 48
    assert spec.domain("iters").values == (20, 30) and spec.scheduler.max_t == 30
    assert spec.storage == str(tmp_path)
    assert "smoke" not in spec.resolved_dict()


# paths that bundled specs take from the user (--set) on a real run
OVERRIDES = {"quick": [],
             "staged_dip_f16": ["problem.image=skimage:camera", "problem.size=64"],
             "guided_dip_butterfly": ["problem.image=skimage:chelsea"],
             "ddpm_mnist": ["problem={dataset: skimage-patches, size: 16, count: 64}"],
             "dip_prior_ddpm": None,  # needs a trained DDPM: tests/test_sweep_specs.py
             "study_guided_vs_dip": [], "dip_cset9": ["problem.images=[skimage:camera]"],
             "study_dip_family": [],
             "study_dip_family_cset9": ["problem.images=[skimage:camera]"],
             **{name: ["problem.image=skimage:camera"] for name in (
                 "beat_staged_f16", "beat_staged_f16_mini", "reach_fast_f16",
                 "reach_fast_f16_mini")}}


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_bundled_spec_validates_and_documents_itself(name):
    path = SWEEPS / f"{name}.yaml"
    text = path.read_text()
    head = text.split("\nname:")[0]
    for word in ("Purpose", "Command", "Cost"):
        assert f"# {word}" in head, f"{name}: opening comment lacks {word}"
    assert "smoke" in yaml.safe_load(text)
    sets = OVERRIDES[name]
    if sets is None:
        pytest.skip("validated with a trained checkpoint in test_sweep_specs.py")
    full = load_spec(path, sets=sets)
    smoke = load_spec(path, smoke=True)
    assert full.name == name and smoke.name == f"{name}-smoke"  # apart on disk
    assert smoke.num_samples <= full.num_samples


# smoke blocks that train their own tiny model (`recipe:tiny-ddpm`): seconds, so marked slow
SLOW_SMOKE = {"dip_prior_ddpm"}


def test_every_bundled_spec_is_listed():
    """A spec added to sweeps/ is checked by the two tests above and below, never left out."""
    assert sorted(p.stem for p in SWEEPS.glob("*.yaml")) == sorted(OVERRIDES)


@pytest.mark.parametrize("name", [
    pytest.param(p.stem, marks=[pytest.mark.slow] if p.stem in SLOW_SMOKE else [])
    for p in sorted(SWEEPS.glob("*.yaml"))])
def test_every_spec_in_sweeps_validates_with_smoke(name, monkeypatch):
    monkeypatch.chdir(SWEEPS.parent)  # specs name images relative to the repo root
    spec = load_spec(SWEEPS / f"{name}.yaml", smoke=True)  # smoke blocks need no fetched data
    assert spec.name == f"{name}-smoke"


def test_cli_validate_and_show_json():
    import json

    r = CliRunner().invoke(app, ["sweep", "validate", str(SWEEPS / "quick.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True
    r = CliRunner().invoke(app, ["sweep", "show", str(SWEEPS / "quick.yaml"), "--smoke",
                                 "--json"])
    data = json.loads(r.output)
    assert data["space"]["scheduler"]["when"] == {"stages": [4, 8]}
    assert data["max_t"] == 30


def test_validate_checks_storage_and_an_existing_sweep_writing_nothing(tmp_path):
    import os

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = CliRunner().invoke(app, ["sweep", "validate", str(SWEEPS / "quick.yaml"),
                                 "--storage", str(blocker / "results")])
    assert r.exit_code == 2 and "not writable" in r.output and len(r.output.splitlines()) == 1
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:  # a read-only folder: root passes os.access, so the check must really write
        if os.geteuid() != 0:
            r = CliRunner().invoke(app, ["sweep", "validate", str(SWEEPS / "quick.yaml"),
                                         "--storage", str(tmp_path / "ro")])
            assert r.exit_code == 2 and "not writable" in r.output
    finally:
        os.chmod(tmp_path / "ro", 0o700)
    other = tmp_path / "store" / "quick"
    other.mkdir(parents=True)
    (other / "spec.resolved.yaml").write_text("name: quick\nmethod: dip\n")
    r = CliRunner().invoke(app, ["sweep", "validate", str(SWEEPS / "quick.yaml"),
                                 "--storage", str(tmp_path / "store")])
    assert r.exit_code == 2 and "different spec" in r.output
    r = CliRunner().invoke(app, ["sweep", "validate", str(SWEEPS / "quick.yaml"),
                                 "--storage", str(tmp_path / "fresh")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ro", "store"]
    assert not list((tmp_path / "ro").iterdir())


@pytest.mark.parametrize("grace,rf,max_t,brackets", [(10, 3, 300, 1), (100, 3, 400, 1),
                                                     (5, 2, 40, 2), (7, 2.5, 200, 3)])
def test_trials_report_at_exactly_ashas_rungs(grace, rf, max_t, brackets):
    """Reports between rungs may be batched; the rungs themselves must be Ray's own."""
    from ray.tune.schedulers import ASHAScheduler

    from dipddpm.sweep.trainable import milestones

    spec = parse_spec(with_(scheduler={"type": "asha", "grace_period": grace,
                                       "reduction_factor": rf, "max_t": max_t,
                                       "brackets": brackets}))
    asha = ASHAScheduler(time_attr="iter", max_t=max_t, grace_period=grace,
                         reduction_factor=rf, brackets=brackets)
    ray_rungs = sorted({m for b in asha._brackets for m, _ in b._rungs})
    assert milestones(spec) == pytest.approx(ray_rungs)
