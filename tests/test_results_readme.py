"""README's results sections run as written: the three `dipddpm results` commands and the
pandas / polars / DuckDB snippets, on the fixture sweep placed at results/quick."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from results_data import shared_sweep
from typer.testing import CliRunner

from dipddpm.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = "## Look at the results: three commands"
SNIPPETS = "## Analyse with pandas / polars / DuckDB"


def section(title: str) -> str:
    text = README.read_text() if README.is_file() else ""
    if title not in text:
        pytest.skip(f"README.md has no {title!r} section")
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


def test_the_three_commands(in_results):
    lines = [ln for b in blocks(section(COMMANDS), "bash") for ln in b.splitlines()
             if ln.startswith("dipddpm results")]
    assert len(lines) == 3
    for line in lines:
        r = CliRunner().invoke(app, shlex.split(line)[1:])
        assert r.exit_code == 0, f"{line}\n{r.output}"
    assert (in_results / "quick_report.html").stat().st_size > 10_000


def test_the_snippets(in_results):
    codes = blocks(section(SNIPPETS), "python")
    assert len(codes) >= 3
    for code in codes:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"{code}\n{p.stderr[-2000:]}"
        assert p.stdout.strip()
