"""No plug-in is known by its name outside its entry, not even by the entry itself: no module
of dipddpm/ compares a string literal that is a registered name (of any registry) with
anything, by ==, !=, is, in / not in a literal tuple, set or list, or a match-case. An
entry's behaviour comes from its fields (`Method.rung_rule`, `TuneScheduler.rungs`,
`Searcher.grid`, `Backend.lock`), which is what makes a new plug-in a one-entry change.

The registries and their names are collected when the test runs (every module imported,
`Registry.every()`), so a new registry or name is covered without editing this file.
ALLOWED lists the few comparisons whose string is not a plug-in name, each with its reason.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (file, string, the other operand's source): a string that is not a plug-in name there
ALLOWED = {
    # a search domain's kind (spec keywords: uniform, loguniform, int, choice, grid), not the
    # stage scheduler `uniform` or the searcher `grid`
    **{(f, k, op): "a search domain's kind"
       for f, k, op in (("dipddpm/sweep/spec/space.py", "uniform", "d.kind"),
                        ("dipddpm/sweep/spec/space.py", "grid", "d.kind"),
                        ("dipddpm/sweep/spec/search_space.py", "uniform", "kind"),
                        ("dipddpm/sweep/spec/validate.py", "grid", "d.kind"),
                        ("dipddpm/sweep/spec/schema.py", "grid", "d.kind"),
                        ("dipddpm/sweep/spec/corners.py", "grid", "d.kind"),
                        ("dipddpm/cli/sweep.py", "grid", "d.kind"))},
    # DIP's input noise is drawn uniform or normal (Ulyanov et al.): a distribution
    ("dipddpm/methods/input_rules.py", "uniform", "cfg.input_noise"): "a noise distribution",
    # the pairs table's `ensemble` column and the effect filter of that name (an ensemble row
    # or not), not the output rule `ensemble`
    **{("dipddpm/analysis/effect.py", "ensemble", op): "the pairs table's ensemble column"
       for op in ("p", "x", "filters")},
    # es_rule `none` is the absence of a GT-free early-stopping rule (a Literal option, not an
    # ES_RULES entry); the string happens to name the Tune scheduler `none` too
    ("dipddpm/methods/fitting.py", "none", "cfg.es_rule"): "no early-stopping rule",
    ("dipddpm/sweep/spec/validate.py", "none", "rules"): "no early-stopping rule",
    # a timestep spacing (linear or quadratic strides), not the beta schedule `linear`
    ("dipddpm/stages/timesteps.py", "linear", "spacing"): "a timestep spacing",
    # what a path is on disk (outputs.py), not the dataset `folder`
    ("dipddpm/outputs.py", "folder", "kind"): "a kind of path",
}


def registered_names() -> dict[str, list[str]]:
    """Every registered name -> the kinds of the registries that hold it."""
    import dipddpm
    from dipddpm.registry import Registry

    for mod in pkgutil.walk_packages(dipddpm.__path__, "dipddpm."):
        importlib.import_module(mod.name)
    names: dict[str, list[str]] = {}
    for reg in Registry.every():
        for name in reg.names():
            names.setdefault(name, []).append(reg.kind)
    return names


def _strings(node: ast.AST, names: dict) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
        return [node.value]
    return []


def _compared(node: ast.Compare, names: dict) -> list[tuple[str, ast.AST]]:
    """(registered string, the other operand) of each comparison in `node`."""
    out = []
    operands = [node.left, *node.comparators]
    for i, op in enumerate(node.ops):
        left, right = operands[i], operands[i + 1]
        for this, other in ((left, right), (right, left)):
            out += [(s, other) for s in _strings(this, names)]
        if isinstance(op, ast.In | ast.NotIn) and isinstance(right, ast.Tuple | ast.Set |
                                                               ast.List):
            out += [(s, left) for e in right.elts for s in _strings(e, names)]
    return out


def name_checks(source: str, names: dict) -> list[tuple[int, str, str]]:
    """(line, string, the other operand's source) of every comparison of a registered name
    in `source`, match-case patterns included."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            found += [(node.lineno, s, ast.unparse(o)) for s, o in _compared(node, names)]
        elif isinstance(node, ast.Match):
            for case in node.cases:
                for p in ast.walk(case.pattern):
                    if isinstance(p, ast.MatchValue):
                        found += [(p.lineno, s, ast.unparse(node.subject))
                                  for s in _strings(p.value, names)]
    return found


@pytest.fixture(scope="module")
def names():
    return registered_names()


def test_the_names_of_every_registry_are_collected(names):
    from dipddpm.registry import Registry

    kinds = {reg.kind for reg in Registry.every()}
    assert {"method", "Tune scheduler", "searcher", "storage backend", "baseline",
            "rung rule", "tracking backend", "stage scheduler"} <= kinds
    assert {"asha", "pbt", "none", "optuna", "grid", "final", "dip", "s3", "bm3d"} <= set(names)


def test_no_module_compares_a_plug_in_name(names):
    found = []
    for path in sorted((ROOT / "dipddpm").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, s, other in name_checks(path.read_text(), names):
            if (rel, s, other) not in ALLOWED:
                found.append(f"{rel}:{line}: {other} vs {s!r} ({', '.join(names[s])})")
    assert found == [], "compare an entry's field instead:\n" + "\n".join(found)


def test_every_allowance_is_still_needed(names):
    """An allowance whose comparison is gone is taken out, so the list stays short."""
    seen = set()
    for path in sorted((ROOT / "dipddpm").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        seen |= {(rel, s, other) for _, s, other in name_checks(path.read_text(), names)}
    stale = [a for a in ALLOWED if a not in seen and a[1] in names]
    assert stale == []


@pytest.mark.parametrize("source", [
    'if self.name == "final": pass',
    'ok = spec.scheduler.type != "asha"',
    'ok = kind in ("s3", "gs")',
    'ok = "optuna" == searcher.type',
    'match method:\n    case "dip":\n        pass',
])
def test_each_form_of_a_name_check_is_found(names, source):
    assert name_checks(source, names), source


def test_a_string_that_names_nothing_is_not_a_name_check(names):
    assert name_checks('ok = mode == "max" and status in ("COMPLETED", "PRUNED")', names) == []
