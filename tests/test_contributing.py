"""CONTRIBUTING.md's "How to add …" guides: each names at most two files besides tests, those
files exist, and the test it names follows it with a toy (registers it the guide's way and
takes it out again). The toys of the guides whose test lives here: a baseline variant, a
Parquet column and a results command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ("A method", "A loss or input rule", "A stage scheduler", "A Tune scheduler",
          "A searcher", "A baseline", "A storage backend", "A tracking callback",
          "A Parquet column", "A results command")
NOT_YET: set[str] = set()  # guides still to write (none)


def guides() -> dict[str, str]:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_guide_is_there():
    assert list(guides()) == list(GUIDES)


@pytest.mark.parametrize("title", [g for g in GUIDES if g not in NOT_YET])
def test_a_guide_names_two_files_at_most_and_a_test_that_registers_a_toy(title):
    body = guides()[title]
    files_line = re.search(r"^Files: (.+)$", body, flags=re.M)
    assert files_line, f"{title}: no 'Files:' line"
    files = re.findall(r"`([^`]+)`", files_line.group(1))
    assert 1 <= len(files) <= 2, f"{title}: {files}"
    for f in files:  # a NAME file is new: its folder exists
        assert (ROOT / f).exists() or ("NAME" in f and (ROOT / f).parent.is_dir()), f
    tests = re.findall(r"`(tests/test_[a-z_]+\.py)`", body.split("Test:")[-1])
    assert tests, f"{title}: no test named"
    source = (ROOT / tests[0]).read_text()
    assert re.search(r"\.register\(|declare\(|results_app", source), tests[0]
    assert re.search(r"unregister\(|undeclare\(|registered_commands", source), tests[0]


# ---------------------------------------------------------------- a baseline variant
def test_a_toy_baseline_runs_on_a_studys_pairs():
    """A variant registered the guide's way: a study's spec takes it, and it runs on every
    (image, replicate) pair with the declared summary keys."""
    from dipddpm.errors import ConfigError
    from dipddpm.methods import METHODS
    from dipddpm.sweep.baselines import BASELINES, Baseline, baseline_rows
    from dipddpm.sweep.spec import parse_spec

    raw = {"name": "b", "method": "dip", "metric": "psnr_best", "preset": "tiny",
           "problem": {"images": ["skimage:camera"], "replicates": 2, "size": 32,
                       "sigma": 25}, "search": {"lr": {"grid": [0.01]}},
           "searcher": {"type": "grid"}, "scheduler": {"type": "none"},
           "baselines": ["bm3d_toy"]}
    with pytest.raises(ConfigError, match="unknown baseline 'bm3d_toy'"):
        parse_spec(raw, load_problem=False)
    BASELINES.register("bm3d_toy")(Baseline("bm3d", {"profile": "vn"}, "a test toy"))
    try:
        spec = parse_spec(raw, load_problem=False)
        rows = baseline_rows(spec, "bm3d_toy")
    finally:
        BASELINES.unregister("bm3d_toy")
    assert "bm3d_toy" not in BASELINES
    assert [(r["image"], r["replicate"]) for r in rows] == [("skimage:camera", 0),
                                                            ("skimage:camera", 1)]
    for r in rows:
        assert set(METHODS.get("bm3d").summary) <= set(r) and 10 < r["psnr_gt_final"] < 40


# ---------------------------------------------------------------- a Parquet column
def test_a_toy_column_is_bookkeeping_by_its_declaration(sweep_dir):
    """A column declared as bookkeeping is not a metric to rank by; declared as a metric,
    it is (analysis asks its declared role, nothing else)."""
    import pandas as pd

    from dipddpm.analysis.load import load_sweep
    from dipddpm.analysis.summarize import numeric_columns
    from dipddpm.dataset.columns import BOOKKEEPING, INT, METRIC, declare, undeclare

    sweep = load_sweep(sweep_dir)
    sweep.trials["toy_count"] = pd.Series(range(len(sweep.trials)), dtype="int64")
    assert "toy_count" in numeric_columns(sweep)  # undeclared, not of a family: a metric
    for role, ranked in ((BOOKKEEPING, False), (METRIC, True)):
        declare(INT, role, "toy_count")
        try:
            assert ("toy_count" in numeric_columns(sweep)) is ranked
        finally:
            undeclare("toy_count")


# ---------------------------------------------------------------- a results command
def test_a_toy_results_command_reads_a_sweep(sweep_dir):
    """A command added to `dipddpm results` the guide's way reads the sweep and prints JSON;
    taken out again, it is an unknown command."""
    from dipddpm.analysis.load import load_sweep
    from dipddpm.cli import app
    from dipddpm.cli.common import print_json, user_errors
    from dipddpm.cli.results import results_app

    def toy_count(path: str = typer.Argument(...)) -> None:
        print_json({"trials": len(load_sweep(path).trials)})

    results_app.command("toy-count", help="a test toy")(user_errors(toy_count))
    try:
        r = CliRunner().invoke(app, ["results", "toy-count", str(sweep_dir)])
    finally:
        results_app.registered_commands[:] = [
            c for c in results_app.registered_commands if c.name != "toy-count"]
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"trials": 12}
    r = CliRunner().invoke(app, ["results", "toy-count", str(sweep_dir)])
    assert r.exit_code == 2


# ---------------------------------------------------------------- a storage backend
def test_a_toy_storage_backend_holds_a_sweep_dir(tmp_path):
    """A backend registered the guide's way: its scheme resolves, its options are checked
    (an unknown one named with the keys it takes), files written through it land in its
    store, and taken out again its scheme is refused."""
    import pyarrow.fs as pafs

    from dipddpm.dataset.storage import resolve
    from dipddpm.dataset.storage_backends import STORAGE_BACKENDS, Backend
    from dipddpm.errors import ConfigError, DipddpmError

    (tmp_path / "bucket").mkdir()

    def open_toy(uri, options):
        return pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()), uri[len(
            "toyfs://"):]

    STORAGE_BACKENDS.register("toy")(Backend(("toyfs",), open_toy, "a test toy",
                                             options=("flavour",)))
    try:
        with pytest.raises(ConfigError, match="flavour"):
            resolve("toyfs://bucket/sweep", {"colour": "red"})
        loc = resolve("toyfs://bucket/sweep", {"flavour": "plain"})
        assert not loc.local
        loc.fs.create_dir(loc.path)
        with loc.fs.open_output_stream(loc.child("note.txt").path) as f:
            f.write(b"hello")
    finally:
        STORAGE_BACKENDS.unregister("toy")
    assert (tmp_path / "bucket" / "sweep" / "note.txt").read_bytes() == b"hello"
    with pytest.raises(DipddpmError, match="toyfs"):
        resolve("toyfs://bucket/sweep")


def test_the_docs_how_to_page_is_contributing_md():
    """docs/how-to.md includes CONTRIBUTING.md (built by docs/hooks.py), one source."""
    assert "<!-- include: CONTRIBUTING.md -->" in (ROOT / "docs" / "how-to.md").read_text()
