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
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

THIN = {  # module -> the commands (functions) that are parse -> one API call -> print
    "dipddpm/cli/results.py": ("summarize_command", "compare_command", "plot_command",
                               "report_command", "export_command"),
    "dipddpm/cli/effect.py": ("effect_command",),
    "dipddpm/cli/sweep.py": ("run", "resume"),
}
PARSE_AND_PRINT = {  # module -> names a thin command may import besides dipddpm.api
    "dipddpm.analysis.tables": {"GROUP_NOTE", "records", "to_csv"},  # printing
    "dipddpm.analysis.effect": {"parse_filters"},  # KEY=VALUE options
    "dipddpm.analysis.plots": {"KINDS", "SUFFIXES"},  # option checks
    "dipddpm.analysis.export": {"FORMATS"},  # option check
    "dipddpm.api.results": {"report_line"},  # printing
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
