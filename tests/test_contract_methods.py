"""The method contract (dipddpm/methods/base.py), checked for every registered method on its
own example run (`Method.example_config`, `Method.example_problem`): a new method is covered
by registering it, with no test list to edit.

- every report carries the method's `metrics` (`iter` is the report's iteration);
- the same seed gives the same reports, summary and images;
- a run resumed from `state()` taken at a report continues as the uninterrupted run;
- an unknown config key is refused;
- one tiny sweep through the Ray trainable writes the trial's row (marked ray).

The helpers take a `Method`, so a method registered by a test is checked the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import pytest
import torch

from dipddpm.config import build
from dipddpm.errors import ConfigError
from dipddpm.methods import METHODS, Method, Result


@dataclass
class Reports:
    """A report callback keeping every report and the state at the first one."""

    rows: list[dict] = field(default_factory=list)
    state: dict | None = None

    def __call__(self, it, metrics, state) -> None:
        self.rows.append({**metrics, "iter": it})
        if self.state is None:
            self.state = state()


def _untimed(d: dict) -> dict:
    return {k: v for k, v in d.items() if "wall" not in k}


def assert_same(a, b, where: str = "") -> None:
    """Equal, floats within 1e-6 relative (BM3D's library varies in the 8th digit from call
    to call) and NaN equal to NaN; tensors likewise, element by element."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True), where
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6,
                                                                  abs_tol=1e-9), \
            f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def example_values(method: Method, request=None) -> dict:
    """The method's example config values; a `checkpoint` field gets the tiny trained DDPM."""
    values = dict(method.example_config)
    if "checkpoint" in {f.name for f in fields(method.config_cls)} and request is not None:
        values.setdefault("checkpoint", str(request.getfixturevalue("tiny_ddpm")))
    return values


def run_example(method: Method, values: dict, seed: int = 0,
                resume: dict | None = None) -> tuple[Result, Reports]:
    cfg = build(method.config_cls, values)
    problem = method.make_problem(dict(method.example_problem), cfg)
    reports = Reports()
    result = method.run(cfg, problem, report=reports, seed=seed, resume=resume, device="cpu")
    return result, reports


def check_report_keys(method: Method, reports: Reports) -> None:
    assert reports.rows, f"{method.name} reported nothing"
    for row in reports.rows:
        missing = set(method.metrics) - set(row)
        assert not missing, f"{method.name} report at {row['iter']} lacks {sorted(missing)}"


def check_deterministic(a: tuple[Result, Reports], b: tuple[Result, Reports]) -> None:
    assert_same([_untimed(r) for r in a[1].rows], [_untimed(r) for r in b[1].rows], "reports")
    assert_same(_untimed(a[0].metrics), _untimed(b[0].metrics), "metrics")
    assert_same(a[0].images, b[0].images, "images")


def check_resume(method: Method, values: dict, whole: tuple[Result, Reports], seed: int) -> None:
    """Resumed from the state taken at the first report: the resumed run's reports are the
    uninterrupted run's after it (none repeated), and so is the summary. (A one-report
    method, e.g. BM3D's single pass, has no later report: only its summary is compared.)"""
    at = whole[1].rows[0]["iter"]
    resumed = run_example(method, values, seed=seed, resume=whole[1].state)
    after = [_untimed(r) for r in whole[1].rows if r["iter"] > at]
    got = [_untimed(r) for r in resumed[1].rows]
    assert_same(got if after else [r for r in got if r["iter"] > at], after, "reports")
    assert_same(_untimed(resumed[0].metrics), _untimed(whole[0].metrics), "metrics")


def check_unknown_key_refused(method: Method) -> None:
    with pytest.raises(ConfigError, match="no_such_key"):
        build(method.config_cls, {**method.example_config, "no_such_key": 1})


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name, request):
    method = METHODS.get(name)
    values = example_values(method, request)
    first = run_example(method, values, seed=3)
    check_report_keys(method, first[1])
    check_deterministic(first, run_example(method, values, seed=3))
    check_resume(method, values, first, seed=3)
    check_unknown_key_refused(method)


@pytest.mark.parametrize("name", METHODS.names())
def test_problem_presets_are_declared_on_the_entry(name):
    """Each of the entry's problem presets names a preset of the method, and a spec with that
    preset gets its problem keys (the spec's own problem: keys win)."""
    from dipddpm.sweep.spec import parse_spec

    method = METHODS.get(name)
    assert set(method.problem_presets) <= set(method.presets)
    for preset in [None, *method.presets]:
        implied = method.problem_preset(preset)
        assert implied == dict(method.problem_presets.get(preset, {}))
        if not implied:
            continue
        metric = next(m for m in method.metrics if m != "iter")
        own = {k: v for k, v in method.example_problem.items() if k not in implied}
        raw = {"name": "p", "method": name, "metric": metric, "search": {}, "preset": preset,
               "fixed": dict(method.example_config), "problem": own,
               "searcher": {"type": "grid"}, "scheduler": {"type": "none"}}
        assert parse_spec(raw, load_problem=False).problem == {**implied, **own}
        mine = {**raw, "problem": dict(method.example_problem)}  # the spec's own keys win
        assert parse_spec(mine, load_problem=False).problem == {**implied,
                                                                 **method.example_problem}
    if not method.problem_presets:
        pytest.skip(f"{name} declares no problem presets")


# ---------------------------------------------------------------- through the Ray trainable
def example_spec(method: Method, values: dict, storage) -> object:
    """One trial of the method's example as a sweep spec (grid searcher, no scheduler)."""
    from dipddpm.sweep.spec import parse_spec

    metric = next(m for m in method.metrics if m != "iter")
    return parse_spec({"name": f"contract-{method.name}", "method": method.name,
                       "problem": dict(method.example_problem), "metric": metric,
                       "fixed": values, "num_samples": 1, "searcher": {"type": "grid"},
                       "scheduler": {"type": "none"}, "storage": str(storage),
                       "resources": {"cpu": 1}})


def check_trials_row(method: Method, spec, outcome) -> None:
    budget = int(spec.fixed.get(method.iters_key, getattr(
        build(method.config_cls, spec.base_values), method.iters_key)))
    assert len(outcome.rows) == 1
    row = outcome.rows[0]
    assert row["status"] == "COMPLETED" and row["method"] == method.name
    assert row["iters_done"] == budget and row["objective"] is not None


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS.names())
def test_one_trial_through_the_ray_trainable_writes_its_row(name, request, ray_local,
                                                             tmp_path):
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_spec

    method = METHODS.get(name)
    spec = example_spec(method, example_values(method, request), tmp_path / "results")
    outcome = run_spec(spec, console=SweepConsole(spec.metric, spec.mode, quiet=True))
    check_trials_row(method, spec, outcome)


# ---------------------------------------------------------------- a method added by a test
@dataclass(frozen=True)
class ToyConfig:
    iters: int = 4
    step: float = 0.5


def run_toy(cfg: ToyConfig, problem=None, report=None, seed: int = 0, resume=None,
            device=None) -> Result:
    """x grows by `step` per iteration from a seeded start; resumable from its state."""
    g = torch.Generator().manual_seed(seed)
    x = float(torch.rand((), generator=g)) if resume is None else resume["x"]
    for it in range((resume or {}).get("it", 0) + 1, cfg.iters + 1):
        x += cfg.step
        report(it, {"x": x}, lambda it=it, x=x: {"it": it, "x": x})
    return Result(metrics={"x_final": x})


def test_a_method_registered_in_a_test_is_checked_by_the_same_helpers():
    toy = Method(name="toy", config_cls=ToyConfig, run=run_toy,
                 make_problem=lambda spec, cfg: None, metrics=("iter", "x"), presets={},
                 example_config={"iters": 3})
    METHODS.register("toy")(toy)
    try:
        method = METHODS.get("toy")
        values = example_values(method)
        first = run_example(method, values, seed=1)
        check_report_keys(method, first[1])
        check_deterministic(first, run_example(method, values, seed=1))
        check_resume(method, values, first, seed=1)
        check_unknown_key_refused(method)
        spec = example_spec(method, values, "results")  # the spec validator takes it too
        assert spec.method == "toy" and spec.metric == "x"
        with pytest.raises(AssertionError):  # a report without a declared key is caught
            check_report_keys(Method(**{**toy.__dict__, "metrics": ("iter", "y")}), first[1])
    finally:
        METHODS.unregister("toy")


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_method_goes_through_validate_run_and_summarize(ray_local, tmp_path):
    """The toy, registered here, is a sweep's method with no other edit: `sweep validate`, one
    Ray run (the trial's process gets the entry from the driver) and `results summarize`."""
    from contract_sweep import shipped, through_everything

    toy = Method(name="toy", config_cls=ToyConfig, run=run_toy,
                 make_problem=lambda spec, cfg: None, metrics=("iter", "x"), presets={},
                 example_config={"iters": 3})
    METHODS.register("toy")(toy)
    try:
        with shipped(__name__):
            spec = {"name": "toy-method", "method": "toy", "problem": {}, "metric": "x",
                    "fixed": {"iters": 6}, "search": {"step": {"grid": [0.5, 1.0]}},
                    "searcher": {"type": "grid", "max_concurrent": 2},
                    "scheduler": {"type": "none"}, "num_samples": 1,
                    "resources": {"cpu": 0.5}, "storage": str(tmp_path / "results")}
            _, outcome, summary = through_everything(tmp_path, spec)
    finally:
        METHODS.unregister("toy")
    assert summary["counts"]["COMPLETED"] == 2
    rows = sorted(outcome.rows, key=lambda r: r["config.step"])
    assert [r["method"] for r in rows] == ["toy", "toy"] and rows[0]["iters_done"] == 6
    assert rows[1]["x_final"] - rows[0]["x_final"] == pytest.approx(6 * 0.5)  # 6 steps of 1.0
