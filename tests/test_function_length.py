"""No function in dipddpm/ or benchmarks/ runs over 60 lines (issue 14; the benchmarks since
issue 22). A function listed in BEING_SPLIT is being split by its owner; empty the list as
they go."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "dipddpm"
FOLDERS = (PKG, REPO / "benchmarks")
LIMIT = 60
BEING_SPLIT: set[str] = set()


def rel(path: Path) -> str:
    """dipddpm/ files as before (methods/fitting.py), the others from the repository root."""
    base = PKG if path.is_relative_to(PKG) else REPO
    return path.relative_to(base).as_posix()


def long_functions(limit: int = LIMIT) -> dict[str, int]:
    out = {}
    for path in sorted(p for folder in FOLDERS for p in folder.rglob("*.py")):
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = n.end_lineno - n.lineno + 1
                if lines > limit:
                    out[f"{rel(path)}:{n.name}"] = lines
    return out


def test_no_function_is_over_60_lines():
    over = {k: v for k, v in long_functions().items() if k not in BEING_SPLIT}
    assert over == {}, f"split these into small steps: {over}"


def test_the_rule_sees_the_benchmarks():
    assert any(k.startswith("benchmarks/") for k in long_functions(limit=20))
