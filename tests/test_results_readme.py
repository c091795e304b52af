"""The results sections run as written: the three `dipddpm results` commands and the paired
verdict (README.md, and in full docs/index.md, the site's Getting started), and the pandas /
polars / DuckDB snippets (docs/api.md, the site's Python API), on the fixture sweep
(tests/results_data.py: real trials written by the sweep runner's writer, in seconds) placed
at results/quick, where `dipddpm sweep run sweeps/quick.yaml` writes. A missing section fails:
docs are part of CI."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from results_data import shared_sweep
from typer.testing import CliRunner

from dipddpm.cli import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = ("README.md", "docs/index.md")  # the teaser, and the site's page that says it in full
API = "docs/api.md"
COMMANDS = "## Look at the results: three commands"
SNIPPETS = "## Analyse with pandas / polars / DuckDB"
EFFECT = "## Is B better than A? A paired verdict"


def section(title: str, where: str = "README.md") -> str:
    path = REPO / where
    text = path.read_text() if path.is_file() else ""
    if title not in text:
        pytest.fail(f"{where} has no {title!r} section")
    body = text.split(title, 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


@pytest.fixture
def in_results(tmp_path_factory, tmp_path, monkeypatch):
    """A working directory whose results/quick is the fixture sweep."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quick").symlink_to(shared_sweep(tmp_path_factory))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_main_job_writes_results_quick():
    """The three commands read what README's main job writes: <storage>/<name> of quick.yaml."""
    from dipddpm.sweep.spec import load_spec

    assert "dipddpm sweep run sweeps/quick.yaml" in README.read_text()
    spec = load_spec(README.parent / "sweeps" / "quick.yaml")
    assert f"{spec.storage}/{spec.name}" == "results/quick"


@pytest.mark.parametrize("where", PAGES)
def test_the_three_commands(in_results, where):
    lines = [ln for b in blocks(section(COMMANDS, where), "bash") for ln in b.splitlines()
             if ln.startswith("dipddpm results")]
    assert len(lines) == 3
    args = [shlex.split(line)[1:] for line in lines]
    assert [a[:3] for a in args] == [["results", "summarize", "results/quick"],
                                     ["results", "plot", "results/quick"],
                                     ["results", "report", "results/quick"]]
    for line, a in zip(lines, args, strict=True):
        r = CliRunner().invoke(app, a)
        assert r.exit_code == 0, f"{line}\n{r.output}"
    plot = Path(args[1][args[1].index("--out") + 1])
    assert plot.stat().st_size > 10_000
    assert (in_results / "quick_report.html").stat().st_size > 10_000


def test_the_snippets(in_results):
    text = section(SNIPPETS, API)
    codes = blocks(text, "python")
    assert len(codes) >= 3
    assert "pip install polars duckdb" in text  # they are in the test extra only
    for lib in ("pandas", "polars", "duckdb"):
        assert any(f"import {lib}" in code for code in codes), lib
    for code in codes:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"{code}\n{p.stderr[-2000:]}"
        assert p.stdout.strip()


@pytest.mark.parametrize("where", PAGES)
def test_the_effect_command(in_results, where):
    (line,) = [ln for b in blocks(section(EFFECT, where), "bash") for ln in b.splitlines()
               if ln.startswith("dipddpm results effect")]
    r = CliRunner().invoke(app, shlex.split(line)[1:])
    assert r.exit_code == 0, f"{line}\n{r.output}"
    assert "95% bootstrap CI" in r.output
