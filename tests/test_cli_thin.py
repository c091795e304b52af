"""The CLI is a thin layer over the Python API (issue 24): the commands that have an API
counterpart hold no logic of their own, and give the numbers the API gives.

"No logic of its own", checkably: each such command body
- imports an entry of `dipddpm.api` (the one call that does the work);
- imports nothing else from dipddpm but option checks and printing helpers (PARSE_AND_PRINT):
  no analysis, sweep runner, dataset or cluster code, so it cannot compute a result itself;
- has no loop and no nested function or class (iteration and callbacks live in the API).
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

THIN = {  # module -> the commands (functions) that are parse -> one API call -> print
    "dipddpm/cli/results.py": ("summarize_command", "compare_command", "plot_command",
                               "report_command", "export_command"),
    "dipddpm/cli/effect.py": ("effect_command",),
    "dipddpm/cli/sweep.py": ("run", "resume"),
    "dipddpm/cli/fit.py": ("image_command",),  # fit dip|guided-dip|bm3d|nlm|...
    "dipddpm/cli/fit_method.py": ("generic_command",),  # fit noop, a plug-in's method
}
PARSE_AND_PRINT = {  # module -> names a thin command may import besides dipddpm.api
    "dipddpm.analysis.tables": {"GROUP_NOTE", "records", "to_csv"},  # printing
    "dipddpm.analysis.effect": {"parse_filters"},  # KEY=VALUE options
    "dipddpm.analysis.plots": {"KINDS", "SUFFIXES"},  # option checks
    "dipddpm.analysis.export": {"FORMATS"},  # option check
    "dipddpm.api.results": {"report_line"},  # printing
    "dipddpm.cli.progress": {"ProgressReport"},  # printing (the progress bar the API drives)
    "dipddpm.config": {"coerce"},  # option check
    "dipddpm.errors": {"DipddpmError"},
}


def command_bodies():
    for rel, names in THIN.items():
        tree = ast.parse((REPO / rel).read_text())
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for name in names:
            assert name in funcs, f"{rel}: no command function {name}"
            yield rel, funcs[name]


@pytest.mark.parametrize(("rel", "func"), list(command_bodies()),
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_a_command_is_parse_one_api_call_print(rel, func):
    api, other = set(), []
    for node in ast.walk(func):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dipddpm"):
            names = {a.name for a in node.names}
            if node.module == "dipddpm.api":
                api |= names
            elif not names <= PARSE_AND_PRINT.get(node.module, set()):
                other.append(f"{node.module}: {sorted(names)}")
        elif isinstance(node, ast.Import):
            other += [a.name for a in node.names if a.name.startswith("dipddpm")]
        elif node is not func and isinstance(node, ast.FunctionDef | ast.ClassDef | ast.For
                                             | ast.While | ast.AsyncFunctionDef):
            other.append(f"{type(node).__name__} at line {node.lineno}")
    assert api, f"{rel}:{func.name} calls no dipddpm.api entry"
    assert not other, f"{rel}:{func.name} holds logic of its own: {other}"


def test_the_check_finds_logic():
    """The check above fails on a command that computes a result itself."""
    src = ("def c(d):\n    from dipddpm.analysis import load_sweep\n"
           "    from dipddpm.api import load\n    for x in d:\n        pass\n")
    func = ast.parse(src).body[0]
    with pytest.raises(AssertionError, match="logic of its own"):
        test_a_command_is_parse_one_api_call_print("x.py", func)


def test_the_fit_commands_run_the_checked_bodies():
    """`fit dip` and `fit noop` call image_command and generic_command (checked above)."""
    from dipddpm.cli.fit import image_command
    from dipddpm.cli.fit_method import generic_command, method_command

    for name, body in (("dip", image_command), ("bm3d", image_command),
                       ("noop", generic_command)):
        callback = inspect.unwrap(method_command(name).callback)  # typer, user_errors
        assert callback.func is body and callback.args == (name,)


def cli(*args: str):
    from typer.testing import CliRunner

    from dipddpm.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r


def test_compare_and_export_give_the_api_numbers(results_sweep, tmp_path):
    import dipddpm
    from dipddpm.analysis.tables import records

    c = dipddpm.compare(results_sweep, str(results_sweep), by="stages")
    out = json.loads(cli("results", "compare", str(results_sweep), str(results_sweep),
                         "--by", "stages", "--json").stdout)
    clean = json.loads(json.dumps(records(c.reach_max)).replace("NaN", "null"))
    assert out["reach_max"] == clean and len(clean) == 4 and out["by"] == c.by
    results = dipddpm.load(results_sweep)
    for fmt in ("csv", "json"):
        text = cli("results", "export", str(results_sweep), "--format", fmt,
                   "--table", "metrics").stdout
        assert text == results.export(fmt, "metrics")
    path = results.export("csv", out=tmp_path / "t.csv")
    assert Path(path).read_text() == results.export("csv")


@pytest.mark.slow
def test_plot_and_report_write_what_the_api_writes(results_sweep, tmp_path):
    import dipddpm

    results = dipddpm.load(results_sweep)
    r = cli("results", "plot", str(results_sweep), "--kind", "curves", "--out",
            str(tmp_path / "cli.svg"), "--top", "3")
    fig = results.plot("curves", out=tmp_path / "api.svg", top=3)
    w, h = fig.get_size_inches() * fig.dpi
    assert r.stdout.strip() == f"wrote {tmp_path / 'cli.svg'} (curves, {int(w)}x{int(h)} px)"
    assert (tmp_path / "api.svg").stat().st_size > 0
    r = cli("results", "report", str(results_sweep), "--out", str(tmp_path / "cli.html"))
    page = dipddpm.load(results_sweep, lazy=True).report(tmp_path / "api.html")
    assert r.stdout.startswith(f"wrote {tmp_path / 'cli.html'} (")
    assert abs(page.stat().st_size - (tmp_path / "cli.html").stat().st_size) < 2000


@pytest.mark.slow
def test_watch_report_stops_after_the_sweep_ended(results_sweep, tmp_path):
    """The fixture sweep has ended (or has no driver.json): one report, then the watch stops."""
    import dipddpm

    lines: list[str] = []
    n = dipddpm.load(results_sweep, lazy=True).watch_report(tmp_path / "w.html", top=2,
                                                            every=0.01, echo=lines.append)
    assert n == 1 and len(lines) == 1 and lines[0].startswith(f"wrote {tmp_path / 'w.html'}")


def test_lazy_results_read_their_folder_at_first_use(results_sweep, tmp_path):
    import dipddpm
    from dipddpm.errors import DipddpmError

    lazy = dipddpm.load(tmp_path / "nowhere", lazy=True)  # nothing read yet
    assert lazy.outcome is None
    with pytest.raises(DipddpmError, match="does not exist"):
        lazy.trials  # noqa: B018
    assert len(dipddpm.load(results_sweep, lazy=True).trials) == 12


def test_resume_errors_are_the_cli_errors(tmp_path):
    import dipddpm
    from dipddpm.errors import DipddpmError

    with pytest.raises(DipddpmError) as e:
        dipddpm.resume(tmp_path / "nowhere")
    from typer.testing import CliRunner

    from dipddpm.cli import app

    r = CliRunner().invoke(app, ["sweep", "resume", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {e.value}"


NOOP = {"name": "thin", "method": "noop", "problem": {}, "metric": "score", "mode": "max",
        "fixed": {"iters": 4, "report_every": 1}, "search": {"x": {"uniform": [0.0, 1.0]}},
        "searcher": {"type": "optuna", "sampler": "random", "seed": 0},
        "scheduler": {"type": "none"}, "resources": {"cpu": 0.5, "gpu": 0}, "num_samples": 2}


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_run_and_resume_json_is_the_api_outcome(ray_local, tmp_path):
    import yaml

    import dipddpm

    spec = tmp_path / "thin.yaml"
    spec.write_text(yaml.safe_dump({**NOOP, "storage": str(tmp_path / "results")}))
    ran = json.loads(cli("sweep", "run", str(spec), "--json").stdout)
    assert ran["trials"] == 2 and ran["completed"] == 2 and not ran["already_finished"]
    sweep = ran["path"]
    again = dipddpm.run(spec, resume=True, quiet=True)  # finished: nothing runs
    assert again.outcome == {**ran, "already_finished": True}
    assert len(again.trials) == 2
    cli_resume = json.loads(cli("sweep", "resume", sweep, "--json").stdout)
    assert dipddpm.resume(sweep, quiet=True).outcome == cli_resume == again.outcome


FIT_DIP = ("--image", "skimage:astronaut", "--size", "32", "--preset", "tiny", "--iters", "6",
           "--set", "report_every=3", "--device", "cpu", "--seed", "1")


def same_run(a: dict, b: dict) -> bool:
    """Two summaries of one run: equal but for the wall-clock seconds."""
    return {k: v for k, v in a.items() if k != "wall_s"} == {
        k: v for k, v in b.items() if k != "wall_s"}


def test_fit_json_is_the_api_summary():
    import dipddpm

    out = json.loads(cli("fit", "dip", *FIT_DIP, "--json").stdout)
    r = dipddpm.fit_request(dipddpm.FitRequest(
        "dip", image="skimage:astronaut", size=32, preset="tiny", iters=6,
        sets=["report_every=3"], device="cpu", seed=1))
    assert same_run(out, r.summary) and out["size"] == [32, 32] and out["config"]["iters"] == 6
    assert list(r.history["iter"]) == [3, 6] and r.output.shape == (32, 32, 3)
    noop = json.loads(cli("fit", "noop", "--iters", "4", "--x", "0.25", "--json").stdout)
    api = dipddpm.fit_request(dipddpm.FitRequest("noop", fields={"iters": "4", "x": "0.25"}))
    assert same_run(noop, api.summary) and noop["config"]["x"] == 0.25


def test_fit_replicates_through_the_api(tmp_path):
    """K=2 serial replicates: the replicates block, a history row per member report, the
    output written to save, and the bar counting K x iters."""
    import dipddpm

    bars, seen = [], []

    class Bar:  # what the CLI's ProgressReport is to the API: (total, fields, description)
        def __init__(self, total, fields, description):
            bars.append((total, description))

        def __enter__(self):
            return lambda it, metrics, state: seen.append(it)

        def __exit__(self, *exc):
            return None

    r = dipddpm.fit_request(dipddpm.FitRequest(
        "dip", image="skimage:astronaut", size=32, preset="tiny", iters=4,
        sets=["report_every=2"], device="cpu", replicates=2, fusion="serial",
        save=tmp_path / "out.png"), bar=Bar)
    s = r.summary
    assert bars == [(8, "2 serial fits")] and seen == [2, 4, 6, 8]  # member 1 after 0
    assert s["replicates"] == 2 and s["fusion"] == "serial"
    assert [m["seed"] for m in s["members"]] == [0, 1]
    assert s["mean"]["psnr_gt_final"] == (s["members"][0]["psnr_gt_final"]
                                          + s["members"][1]["psnr_gt_final"]) / 2
    rows = r.history[["member", "iter"]].itertuples(index=False, name=None)
    assert sorted(rows) == [(0, 2), (0, 4), (1, 2), (1, 4)]
    assert s["saved"] == str(tmp_path / "out.png") and (tmp_path / "out.png").stat().st_size


def test_fit_request_refuses_what_its_form_does_not_take():
    import dipddpm
    from dipddpm.errors import DipddpmError

    with pytest.raises(DipddpmError, match="noop has no image form: image, sigma apply"):
        dipddpm.fit_request(dipddpm.FitRequest("noop", image="skimage:camera", sigma=10))
    with pytest.raises(DipddpmError, match="fit dip needs an image"):
        dipddpm.fit_request(dipddpm.FitRequest("dip", device="cpu"))
    with pytest.raises(DipddpmError, match="generic form's options"):
        dipddpm.fit_request(dipddpm.FitRequest("dip", image="skimage:camera",
                                               fields={"lr": "0.1"}))
