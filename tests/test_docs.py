"""The documentation site: `mkdocs build --strict` passes, and the generated pages (spec and
CLI references, docs/hooks.py) say what the code has, so they cannot drift."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Example:
    a: int = 1  # the first
    # said above b,
    b: str = "x"  # and beside it
    c: float = 0.5  # an open note (that goes on
    # on the next line)
    d: bool = False


def test_field_comments_are_read_from_the_source():
    h = hooks()
    assert h.field_comments(Example) == {"a": "the first", "b": "said above b, and beside it",
                                         "c": "an open note (that goes on on the next line)",
                                         "d": ""}
    table = h.fields_table(Example)
    assert "| `c` | `float` | `0.5` | an open note (that goes on on the next line) |" in table


def test_internal_note_citations_are_dropped_from_the_site():
    h = hooks()
    assert h.scrub("what the net predicts (SPEC §3.2)") == "what the net predicts"
    assert h.scrub("counts (exact counts of SPEC §4.5) here") == "counts here"
    assert h.scrub("--data ../shared/data --jobs 1") == "--data DATA --jobs 1"


def text_of(page: Path) -> str:
    import html

    body = page.read_text().split("<article", 1)[-1]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]', which the test "
                        f"extra includes)")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                        str(site)], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1",
                            "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    pages = {"index" if p.parent == site else p.parent.name: p for p in site.rglob("index.html")}
    for name in ("concepts", "api", "tracking", "spec", "cli", "cluster", "how-to", "results"):
        assert name in pages, sorted(pages)
    every = " ".join(text_of(p) for p in pages.values())
    for note in ("SPEC §", "SPEC.md", "DESIGN.md", "shared/data", "../shared"):
        assert note not in every, note

    # the spec reference: every key of the spec and of each section, every tracking backend
    # and its options, every registry's names
    from dipddpm.registry import Registry
    from dipddpm.sweep.spec import SchedulerSpec, SearcherSpec, SweepSpec
    from dipddpm.tracking import TRACKING

    spec = text_of(pages["spec"])
    for cls in (SweepSpec, SearcherSpec, SchedulerSpec):
        for f in dataclasses.fields(cls):
            if f.name not in ("raw", "warnings"):
                assert f" {f.name} " in spec, f.name
    for name, entry in TRACKING.items():
        assert f" {name} " in spec
        assert all(f" {f.name} " in spec for f in dataclasses.fields(entry.options))
    for _, reg in hooks().registries():
        assert isinstance(reg, Registry) and all(f" {n} " in spec for n in reg.names())
    assert "iterations between trial checkpoints" in spec  # a field's comment

    # the CLI reference: every command of the typer app, with its options
    cli = text_of(pages["cli"])
    for command in ("dipddpm sweep run", "dipddpm sweep resume", "dipddpm results effect",
                    "dipddpm results summarize", "dipddpm fit dip", "dipddpm fit noop",
                    "dipddpm cluster doctor", "dipddpm inspect stages"):
        assert command in cli, command
    assert "--num-samples" in cli and "--storage" in cli
    # the API reference (mkdocstrings) and the README's set-up commands
    api = text_of(pages["api"])
    assert "Fit method to one image without Ray" in api.replace("`", "")
    readme = (REPO / "README.md").read_text()
    assert "pip install -e '.[test]' && pytest" in readme
    assert "pip install -e '.[test]' && pytest" in text_of(pages["index"])
