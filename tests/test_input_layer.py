"""The input layer: strict YAML, pydantic-checked configs, the trial count, show without the
data, feasibility rules, the fit forms' options. The one-line errors themselves are the
bad-input table's (tests/test_bad_input.py); these check what the table cannot: values that
must be accepted, numbers printed, and the rules' own arithmetic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.cluster.feasibility import memory_error, resource_error
from dipddpm.config import AllowInf, build, coerce, parse_set
from dipddpm.errors import ConfigError
from dipddpm.methods.ddpm_config import DdpmConfig
from dipddpm.methods.guided_dip import GuidedDipConfig
from dipddpm.yaml_input import load_text

SPEC = {"name": "ok", "method": "dip", "preset": "tiny",
        "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
        "metric": "psnr_best", "fixed": {"iters": 6, "report_every": 2},
        "search": {"lr": {"loguniform": [0.001, 0.01]}},
        "searcher": {"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 1},
        "scheduler": {"type": "none"}, "resources": {"cpu": 1, "gpu": 0}, "num_samples": 2,
        "smoke": {"num_samples": 1}}


def invoke(*args, **kw):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"}, **kw)


def write(tmp_path, **changes) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}, sort_keys=False))
    return str(path)


# --- YAML -----------------------------------------------------------------------------------------
def test_yaml_reads_exponent_floats_as_numbers_and_keeps_strings():
    data = load_text("a: 1e3\nb: 1e-4\nc: '1e3'\nd: abc1e3\ne: 12\n")
    assert data == {"a": 1000.0, "b": 0.0001, "c": "1e3", "d": "abc1e3", "e": 12}


def test_yaml_merge_keys_may_override_but_a_key_twice_may_not():
    assert load_text("b: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n")["d"] == {"x": 2}
    with pytest.raises(ConfigError, match=r"'x' is written twice .*1:5 and 1:11"):
        load_text("a: {x: 1, x: 2}", "f.yaml")


# --- configs through pydantic ---------------------------------------------------------------------
def test_configs_take_what_yaml_and_the_command_line_give():
    cfg = build(GuidedDipConfig, {"iters": "1e3", "width": "none", "noise_affine": "(0.5, 0.5)",
                                  "backtracking": "no", "lr": "1e-3"})
    assert cfg.iters == 1000 and cfg.width is None and cfg.noise_affine == (0.5, 0.5)
    assert cfg.backtracking is False and cfg.lr == 0.001
    assert build(DdpmConfig, {"net_widths": [8, 16]}).net_widths == (8, 16)
    np = pytest.importorskip("numpy")
    assert build(GuidedDipConfig, {"iters": np.int64(40), "lr": np.float32(0.5)}).iters == 40


@pytest.mark.parametrize("values, words", [
    ({"iters": True}, ["iters must be an integer", "True"]),
    ({"lr": float("nan")}, ["lr must be a finite number", "nan"]),
    ({"noise_affine": [1, 2, 3]}, ["noise_affine must be a list of 2 values"]),
    ({"noise_affine": [1, "x"]}, ["noise_affine[1] must be a number"]),
    ({"t_spacing": "lin"}, ["t_spacing must be one of 'linear', 'log'", "'lin'"]),
])
def test_config_errors_name_the_key_the_value_and_an_example(values, words):
    with pytest.raises(ConfigError) as e:
        build(GuidedDipConfig, values, prefix="fixed.")
    assert all(w.replace("t_spacing", "fixed.t_spacing") in str(e.value) or w in str(e.value)
               for w in words), str(e.value)
    assert "\n" not in str(e.value)


def test_a_field_may_declare_that_infinity_means_something():
    @dataclass(frozen=True)
    class Budget:
        seconds: Annotated[float, AllowInf] = float("inf")
        step: float = 1.0

    assert build(Budget, {"seconds": "inf"}).seconds == float("inf")
    with pytest.raises(ConfigError, match="step must be a finite number"):
        build(Budget, {"step": float("inf")})
    assert coerce("--threshold", None, float | None) is None


def test_a_set_key_given_twice_is_an_error():
    assert parse_set(["a=1", "b=[1, 2]"]) == {"a": 1, "b": [1, 2]}
    with pytest.raises(ConfigError, match="--set a=1 and --set a=2"):
        parse_set(["a=1", "a=2"])


# --- stages ---------------------------------------------------------------------------------------
def test_schedulers_that_leave_early_stages_empty_by_design_are_not_refused():
    cfg = build(GuidedDipConfig, {"iters": 20, "stages": 4, "scheduler": "log10_linspace"})
    assert 0 in cfg.counts()  # [1, 0, 5, 14]: the source's log spacing
    assert build(GuidedDipConfig, {"iters": 11, "stages": 11}).counts() == [1] * 11
    with pytest.raises(ConfigError, match="11 stages in 10 iterations"):
        build(GuidedDipConfig, {"iters": 10, "stages": 11, "scheduler": "log10_linspace"})
    with pytest.raises(ConfigError, match="sharp_linear scheduler gives stage 1 of 3"):
        build(GuidedDipConfig, {"iters": 10, "stages": 3, "scheduler": "sharp_linear",
                                "sharp_linear_x": 0})


# --- sweep validate / show ------------------------------------------------------------------------
def test_validate_and_show_count_grid_points_times_num_samples(tmp_path):
    spec = write(tmp_path, searcher={"type": "grid"}, num_samples=1,
                 search={"lr": {"grid": [0.001, 0.01]}, "seed": {"grid": [0, 1, 2]}})
    r = invoke("sweep", "validate", spec, "--storage", str(tmp_path / "r"))
    assert r.exit_code == 0, r.output
    assert "6 trials (6 grid points x num_samples 1)" in r.stdout
    r = invoke("sweep", "show", spec, "--json")
    assert json.loads(r.stdout)["trials"] == 6


def test_show_resolves_the_rung_rule_and_measures_time(tmp_path):
    spec = write(tmp_path, method="guided_dip", scheduler={"type": "asha", "grace_period": 2},
                 fixed={"iters": 8, "report_every": 2, "stages": 2})
    r = invoke("sweep", "show", spec, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rung_rule"] == "final" and out["resolved"]["scheduler"]["rung_rule"] == "final"
    t = out["time"]
    assert t["s_per_iter"] > 0 and t["iters_per_trial"] == 8 and t["device"] == "cpu"
    assert t["trial_s"] == pytest.approx(t["setup_s"] + 8 * t["s_per_iter"], abs=0.1)
    assert "time per trial: at most" in invoke("sweep", "show", spec).stdout


def test_show_previews_a_spec_whose_image_is_absent(tmp_path):
    spec = write(tmp_path, problem={"image": str(tmp_path / "absent.png"), "sigma": 25})
    r = invoke("sweep", "show", spec)
    assert r.exit_code == 0, r.output
    assert "time: not measured" in r.stdout and "not estimated" in r.stdout
    assert invoke("sweep", "validate", spec).exit_code == 2  # validate still needs the image


def test_the_smoke_block_is_validated_without_smoke(tmp_path):
    spec = write(tmp_path, smoke={"fixed": {"lr": 0}})
    r = invoke("sweep", "validate", spec, "--storage", str(tmp_path / "r"))
    assert r.exit_code == 2 and "smoke" in r.stderr and "lr" in r.stderr
    spec = write(tmp_path, smoke={"fixed": {"iters": 4}})
    assert invoke("sweep", "validate", spec, "--storage", str(tmp_path / "r")).exit_code == 0


# --- feasibility ----------------------------------------------------------------------------------
def spec_of(cpu=1.0, gpu=0.0):
    from dipddpm.sweep.spec import parse_spec

    return parse_spec({**SPEC, "resources": {"cpu": cpu, "gpu": gpu}}, load_problem=False)


NODES = [{"ip": "10.0.0.1", "cpu": 8.0, "gpu": 0.0, "memory": 16 * 2**30},
         {"ip": "10.0.0.2", "cpu": 4.0, "gpu": 2.0, "memory": 32 * 2**30}]


def test_a_trial_must_fit_on_one_node_not_on_the_sum():
    assert resource_error(spec_of(cpu=8), NODES) is None
    assert "largest node has 8" in resource_error(spec_of(cpu=10), NODES)  # 12 in all
    assert "largest node has 2" in resource_error(spec_of(gpu=3), NODES)
    assert "no single node has both 8 CPUs and 1 GPUs" in resource_error(spec_of(8, 1), NODES)


def test_memory_is_judged_on_the_nodes_that_hold_the_trial():
    gib = 2**30
    no_gpus = lambda nodes: {}  # noqa: E731
    assert memory_error(spec_of(cpu=1), NODES, 30 * gib, no_gpus) is None  # the 32 GiB node
    assert "gives tasks 16.0 GiB" in memory_error(spec_of(cpu=5), NODES, 30 * gib, no_gpus)
    gpus = lambda nodes: {n["ip"]: 80 * gib for n in nodes}  # noqa: E731
    assert memory_error(spec_of(gpu=0.5), NODES, 30 * gib, gpus) is None  # 40 GiB share
    err = memory_error(spec_of(gpu=0.25), NODES, 30 * gib, gpus)
    assert "20.0 GiB of the largest GPU (80 GiB)" in err and "raise resources.gpu" in err
    assert memory_error(spec_of(gpu=0.25), NODES, 30 * gib, no_gpus) is None  # not judged


# --- fit forms ------------------------------------------------------------------------------------
def test_fit_bm3d_lists_only_what_it_takes():
    out = invoke("fit", "bm3d", "--help").stdout
    assert "--sigma" in out and "--noise-seed" in out
    assert all(f"--{o} " not in out for o in ("iters", "replicates", "fusion"))
    assert "--iters" in invoke("fit", "dip", "--help").stdout


def test_fit_method_options_show_their_types_and_an_override_says_so():
    out = invoke("fit", "noop", "--help").stdout
    assert "--iters" in out and "<int>" in out and "<float>" in out
    r = invoke("fit", "noop", "--iters", "3", "--set", "x=0.9", "--x", "0.1", "--json")
    assert r.exit_code == 0, r.output
    assert "note: --x 0.1 overrides --set x=0.9" in r.stderr
    assert json.loads(r.stdout)["config"]["x"] == 0.1


def test_show_never_runs_a_fit_this_machine_cannot_hold():
    from types import SimpleNamespace

    import torch

    from dipddpm.methods import METHODS
    from dipddpm.sweep.spec.estimate import _too_big_here

    dip = METHODS.get("dip")
    cfg = build(dip.config_cls, {})  # the reference skip net: ~205 GiB at 4096 x 4096
    huge = SimpleNamespace(observed=torch.empty(3, 4096, 4096, device="meta"))
    assert "more than half of this machine's" in _too_big_here(dip, cfg, huge, "cpu")
    small = SimpleNamespace(observed=torch.empty(3, 32, 32, device="meta"))
    assert _too_big_here(dip, cfg, small, "cpu") is None
