"""The package's import graph: no two modules import each other at module level, and the layers
hold (the core never imports the sweep runner, its Ray plumbing, the CLI, the API or tracking;
the dataset and the Tune schedulers' entries sit under both the sweep runner and the analysis,
which never imports the runner, not even inside a function).

The graph is read with `ast` from dipddpm/**.py, so it covers every module whether or not a test
imports it. A module-level import is a statement in the module's body (or in a top-level try or
if block, not `if TYPE_CHECKING:`); an import inside a function runs only when it is called.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dipddpm"

CORE = ("nn", "diffusion", "stages", "methods", "metrics", "data", "dataset")
ABOVE_CORE = ("sweep", "cluster", "cli", "api", "tracking")
# pairs of modules that import each other, one side inside a function; a new pair (such as the
# old cli/app.py <-> cli/fit_method.py loop) fails the test
LAZY_PAIRS = {
    # feasibility asks estimate for a trial's memory; estimate asks feasibility for the RAM
    ("dipddpm.cluster.feasibility", "dipddpm.sweep.spec.estimate"),
    # storage resolves a URI with its backend; the backends open it with storage's helpers
    ("dipddpm.dataset.storage", "dipddpm.dataset.storage_backends"),
    # the runner plans a start with continuation, which reads Tune's storage path from it
    ("dipddpm.sweep.continuation", "dipddpm.sweep.runner"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _top_level(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body + node.orelse + node.finalbody
                                  + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _top_level(node.body + node.orelse)


def _targets(node: ast.Import | ast.ImportFrom, here: str) -> list[str]:
    """The dipddpm modules an import statement loads: `from pkg import sub` loads the
    submodule when there is one, else the package."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if node.level:  # relative: from the module's own package
        pkg = here if MODULES[here].name == "__init__.py" else here.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            pkg = pkg.rsplit(".", 1)[0]
        base = f"{pkg}.{base}" if base else pkg
    out = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    if len(out) < len(node.names) and base in MODULES:
        out.append(base)
    return out


def imports(top_level_only: bool) -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        nodes = (_top_level(tree.body) if top_level_only else
                 (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)))
        graph[name] = {t for n in nodes for t in _targets(n, name) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_the_graph_is_read():
    g = imports(top_level_only=True)
    assert "dipddpm.dataset.parquet" in g["dipddpm.sweep.recorder"]
    assert "dipddpm.methods.fitting" in g["dipddpm.methods.dip"]
    assert len(MODULES) > 100


def test_no_two_modules_import_each_other_at_module_level():
    assert cycles(imports(top_level_only=True)) == []


def test_no_new_pair_of_modules_imports_each_other_even_in_a_function():
    g = imports(top_level_only=False)
    pairs = {tuple(sorted((a, b))) for a, bs in g.items() for b in bs if a in g[b]}
    assert pairs <= LAZY_PAIRS, sorted(pairs - LAZY_PAIRS)
    assert ("dipddpm.cli.app", "dipddpm.cli.fit_method") not in pairs  # the loop broken


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("core", CORE)
def test_the_core_never_imports_the_layers_above_at_module_level(core):
    bad = sorted((m, t) for m, ts in imports(top_level_only=True).items()
                 if package(m) == core for t in ts if package(t) in ABOVE_CORE)
    assert bad == []


def test_analysis_never_imports_the_sweep_runner():
    g = imports(top_level_only=True)
    assert sorted((m, t) for m, ts in g.items() if package(m) == "analysis"
                  for t in ts if package(t) == "sweep") == []
    lazy = {(m, t) for m, ts in imports(top_level_only=False).items()
            if package(m) == "analysis" for t in ts if package(t) == "sweep"}
    assert lazy == set()  # not even inside a function: the entries analysis asks sit below


def test_the_dataset_never_imports_the_sweep_runner_or_the_analysis():
    bad = sorted((m, t) for m, ts in imports(top_level_only=False).items()
                 if package(m) == "dataset" for t in ts if package(t) in ("sweep", "analysis"))
    assert bad == []


def test_only_the_cli_imports_the_cli():
    """The CLI is the top layer: nothing else imports it, not even inside a function (the
    API it calls holds what both need, e.g. dipddpm/outputs.py's path checks)."""
    bad = sorted((m, t) for m, ts in imports(top_level_only=False).items()
                 if package(m) not in ("cli", "", "__main__", "_compat")
                 for t in ts if package(t) == "cli")
    assert bad == []
