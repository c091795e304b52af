"""Spec rules that span keys: `when:` conditions in any order (a YAML mapping has none), a
smoke run that validates the whole spec first, and every corner of the search space checked
before Ray starts (dip_prior_ddpm's noise_passes input depth). `sweep validate` and
`sweep run --smoke` refuse every malformed spec alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_sweep_spec import BAD, DELETE, GOOD, with_
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.errors import ConfigError, DipddpmError
from dipddpm.sweep.spec import load_spec, parse_spec
from dipddpm.sweep.spec.corners import corners

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
SMOKE = {"num_samples": 2, "fixed": {"iters": 20}}


def write(tmp_path: Path, spec: dict, sort_keys: bool = False) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=sort_keys))
    return p


def test_when_keys_in_any_order(tmp_path):
    """yaml.safe_dump's sorted keys put exp_c before the scheduler it depends on."""
    path = write(tmp_path, GOOD, sort_keys=True)
    assert list(yaml.safe_load(path.read_text())["search"])[0] == "exp_c"
    spec = load_spec(path)
    keys = [d.key for d in spec.search]
    assert keys.index("scheduler") < keys.index("exp_c")
    same = {d.key: d for d in parse_spec(GOOD).search}  # the same space as written in order
    assert {d.key: d for d in spec.search} == same


def test_when_cycle_is_named():
    spec = with_(search__scheduler__when={"noise_affine": [[1.0, 0.0]]},
                 search__noise_affine__when={"scheduler": "uniform"})
    with pytest.raises(ConfigError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert "\n" not in msg and "cycle" in msg
    assert "scheduler -> noise_affine -> scheduler" in msg or \
        "noise_affine -> scheduler -> noise_affine" in msg


def test_smoke_run_validates_the_whole_spec(tmp_path):
    """The smoke block would replace num_samples: -3, but the spec sent to the cluster keeps it."""
    path = write(tmp_path, {**with_(num_samples=-3), "smoke": SMOKE})
    with pytest.raises(ConfigError, match="num_samples must be >= 1, got -3"):
        load_spec(path, smoke=True)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["sweep", "run", str(path), "--smoke", "--storage", str(out)])
    assert r.exit_code == 2 and "num_samples must be >= 1" in r.output, r.output
    assert not out.exists()


def test_command_line_still_wins_over_the_smoke_block(tmp_path):
    path = write(tmp_path, {**GOOD, "smoke": SMOKE})
    spec = load_spec(path, smoke=True, sets=["fixed.iters=24"], num_samples=3,
                     storage=str(tmp_path / "s"))
    assert spec.fixed["iters"] == 24 and spec.num_samples == 3
    assert spec.storage == str(tmp_path / "s") and spec.name == "t-smoke"


@pytest.mark.parametrize("changes,words", BAD, ids=[str(list(c)[0]) for c, _ in BAD])
def test_validate_and_smoke_run_refuse_alike(tmp_path, changes, words):
    path = write(tmp_path, {**with_(**changes), "smoke": SMOKE})
    out = tmp_path / "out"
    runner = CliRunner()
    v = runner.invoke(app, ["sweep", "validate", str(path)])
    r = runner.invoke(app, ["sweep", "run", str(path), "--smoke", "--storage", str(out)])
    assert v.exit_code == 2 and r.exit_code == 2, (v.output, r.output)
    assert v.output == r.output and v.output.count("\n") == 1, (v.output, r.output)
    assert not out.exists()


def test_corners_cover_every_value_and_respect_conditions():
    spec = parse_spec(GOOD)
    seen = list(corners(spec.search))
    # scheduler 2 (exp_weighted x exp_c 2 bounds) x stages {2, 6} x lr 2 x noise_affine 2
    assert len(seen) == (1 + 2) * 2 * 2 * 2
    assert all(("exp_c" in p) == (p["scheduler"] == "exp_weighted") for p in seen)
    assert {p["stages"] for p in seen} == {2, 6} and {p["lr"] for p in seen} == {1e-3, 3e-2}


def test_a_rule_joining_two_searched_keys_fails_before_ray(tmp_path):
    """sharp_linear needs (stages - 1) * x < iters: fine for each key alone, broken for the
    corner stages=6 with x=10 at 30 iterations."""
    spec = with_(search__scheduler={"choice": ["uniform", "sharp_linear"]},
                 search__exp_c=DELETE, search__sharp_linear_x={"choice": [1, 10]})
    with pytest.raises(ConfigError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert "\n" not in msg and "scheduler='sharp_linear'" in msg and "stages=6" in msg


def _dip_prior_spec(tmp_path: Path, ckpt: Path, fix: bool) -> Path:
    raw = yaml.safe_load((SWEEPS / "dip_prior_ddpm.yaml").read_text())
    if not fix:
        raw["search"].pop("dip_input_depth")
    raw["fixed"]["checkpoint"] = str(ckpt)
    return write(tmp_path, raw)


def test_dip_prior_noise_passes_input_depth_caught_by_validate(tmp_path, tiny_ddpm):
    """dip_input_depth != channels with noise_passes and dip_passes >= 2 used to fail trials after
    its whole DIP fit; now validation names the trial values and the fix."""
    r = CliRunner().invoke(app, ["sweep", "validate", str(_dip_prior_spec(tmp_path, tiny_ddpm,
                                                                           fix=False)),
                                 "--smoke"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "dip_prior_mode='noise_passes'" in r.output and "dip_passes=" in r.output
    assert "dip_input_depth must equal the image channels (1), got 4" in r.output  # tiny: 4
    r = CliRunner().invoke(app, ["sweep", "validate", str(_dip_prior_spec(tmp_path, tiny_ddpm,
                                                                           fix=True)),
                                 "--smoke"])
    assert r.exit_code == 0, r.output


def test_dip_prior_trial_refused_before_its_fit(tiny_ddpm, monkeypatch):
    """A trial's problem is built with its config: the rule fails there, before any DIP step."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS, dip_prior_ddpm

    monkeypatch.setattr(dip_prior_ddpm, "run_dip", lambda *a, **k: pytest.fail("fit ran"))
    m = METHODS.get("dip_prior_ddpm")
    cfg = build(m.config_cls, {**m.preset_values("tiny"), "checkpoint": str(tiny_ddpm),
                               "dip_prior_mode": "noise_passes", "dip_passes": 2,
                               "dip_input_depth": 4})
    with pytest.raises(DipddpmError) as e:
        m.make_problem({"image": "skimage:camera", "resize": True}, cfg)
    assert "dip_input_depth must equal the image channels (1), got 4" in str(e.value)
