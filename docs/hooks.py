"""MkDocs hooks: the pages that must not drift are written at build time from the code.

A page holds a marker comment that `on_page_markdown` replaces:

    <!-- generate: spec -->        the sweep spec's keys (the SweepSpec dataclass and its
                                   sections: field, type, default, the field's comment), the
                                   tracking backends' options, and every registry's entries
    <!-- generate: cli -->         every `dipddpm` command and option, from the typer app
    <!-- include: PATH -->         a repository file (cluster/README.md, benchmarks/RESULTS.md),
                                   its relative links to files outside the site as plain text
    <!-- readme: HEADING -->       one section of README.md (the set-up commands, the family
                                   study's table)

Run by `mkdocs build` (mkdocs.yml `hooks:`); tests/test_docs.py builds the site --strict.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*(generate|include|readme):\s*(.+?)\s*-->")
# Code comments, help texts and the ledger (benchmarks/ledger.py) still cite the project's
# working notes ("SPEC §4.5", DESIGN.md) and a data folder beside the repository, which a
# reader of the site does not have: such citations are dropped from what the site shows
# (tests/test_docs.py checks the built site for them).
SCRUB = ((re.compile(r"\(SPEC\.md §6, transcribed in (`[^`]+`)\)"), r"(\1)"),
         (re.compile(r"\s*\((?:[^()]*?\s)?(?:SPEC|DESIGN\.md)\b[^()]*\)"), ""),
         (re.compile(r"(\.\./|/work/)shared/data"), "DATA"))


def scrub(text: str) -> str:
    for pattern, repl in SCRUB:
        text = pattern.sub(repl, text)
    return text


# --- the spec reference -----------------------------------------------------------------------
def field_comments(cls: type) -> dict[str, str]:
    """Each dataclass field's comment: the one on its line, after comment lines above it."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    above: list[str] = []
    last = None  # the field whose comment a comment line may continue (an open parenthesis)
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            words = text.lstrip("#").strip()
            if last is not None and out[last].count("(") > out[last].count(")"):
                out[last] = f"{out[last]} {words}"
            else:
                above.append(words)
            continue
        m = re.match(r"(\w+)\s*:", text)
        if m and m.group(1) in names and m.group(1) not in out:
            tail = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            out[m.group(1)] = " ".join([*above, tail]).strip()
            last = m.group(1)
        above = []
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "required"


def _text(text: object) -> str:
    """Prose for a table cell or a paragraph: markup characters escaped, on one line."""
    return html.escape(str(text or "")).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    """A table cell's code span (a pipe in a code span does not split the cell)."""
    return str(text).replace("`", "'").replace("\n", " ")


def fields_table(cls: type, skip: tuple[str, ...] = ()) -> str:
    comments = field_comments(cls)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        rows.append(f"| `{f.name}` | `{_code(f.type)}` | `{_code(_default(f))}` | "
                    f"{_text(comments.get(f.name, ''))} |")
    return "\n".join(rows)


def registries() -> list[tuple[str, object]]:
    """Every `Registry` the package defines, found by importing its modules."""
    import dipddpm
    from dipddpm.registry import Registry

    found: dict[int, tuple[str, object]] = {}
    for mod in pkgutil.walk_packages(dipddpm.__path__, "dipddpm."):
        module = importlib.import_module(mod.name)
        for name, value in vars(module).items():
            if isinstance(value, Registry) and id(value) not in found:
                found[id(value)] = (f"{module.__name__}.{name}", value)
    return sorted(found.values(), key=lambda item: item[1].kind)


def describe(entry: object) -> str:
    """An entry's one line: its `help`, else its (function's) docstring's first line."""
    text = getattr(entry, "help", None)
    if isinstance(text, str) and text:
        return text
    run = getattr(entry, "run", None)  # a method: the module of its loop says what it is
    for doc in (_doc(entry), _doc(getattr(entry, "fn", None)),
                inspect.getdoc(inspect.getmodule(run)) if callable(run) else ""):
        if doc:
            return doc.split("\n\n")[0].replace("\n", " ")
    return ""


def _doc(obj: object) -> str:
    if obj is not None and (inspect.isfunction(obj) or inspect.isclass(obj)):
        return inspect.getdoc(obj) or ""
    return ""


def entry_tables(name: str, entry: object) -> str:
    """The fields of the dataclasses an entry declares (a method's config, options)."""
    if not dataclasses.is_dataclass(entry) or isinstance(entry, type):
        return ""
    out = []
    for f in dataclasses.fields(entry):
        value = getattr(entry, f.name)
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            out.append(f"**`{name}`**: `{value.__name__}`\n\n{fields_table(value)}\n")
    return "\n".join(out)


def spec_reference() -> str:
    from dipddpm.sweep import spec as spec_pkg
    from dipddpm.sweep.spec import Fault, Resources, SchedulerSpec, SearcherSpec, SweepSpec
    from dipddpm.tracking import TRACKING

    intro = inspect.getdoc(spec_pkg) or ""
    example = intro.split("\n\n")[2] if intro.count("\n\n") >= 2 else ""
    parts = ["## An example\n", f"```yaml\n{inspect.cleandoc(example)}\n```\n",
             "## Top-level keys\n", fields_table(SweepSpec, skip=("raw", "warnings")),
             "\n`smoke:` holds overrides of any of these for a quick run (`--smoke`).\n"]
    for key, cls in (("searcher", SearcherSpec), ("scheduler", SchedulerSpec),
                     ("resources", Resources), ("faults", Fault)):
        parts += [f"## `{key}:`\n", fields_table(cls), ""]
    parts += ["## `tracking:`\n", "A list of backend names, or names -> options "
              "(`tracking: [mlflow, {wandb: {project: dip}}]`).\n"]
    for name, entry in TRACKING.items():
        parts += [f"### `{name}`\n", describe(entry) + "\n", fields_table(entry.options), ""]
    parts += ["## Registries\n", "Every name a spec (or a command) may use, by kind.\n"]
    for where, reg in registries():
        parts += [f"### {reg.kind}\n", f"`{where}`\n"]
        parts += [f"- `{n}`: {_text(describe(e))}" for n, e in reg.items()]
        parts += [""] + [t for n, e in reg.items() if (t := entry_tables(n, e))]
    return "\n".join(parts)


# --- the CLI reference --------------------------------------------------------------------
# (typer ships its own copy of click: the tree is walked by duck typing, not click's classes)
def _commands(cmd, path: list[str], ctx):
    yield path, cmd, ctx
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, [*path, name], sub.context_class(sub, ctx, name))


def _param_row(p, ctx) -> str:
    option = getattr(p, "param_type_name", "") == "option"
    names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts]) if option else (
        f"`{(p.metavar or p.name).upper()}`")
    default = "" if p.default in (None, False, ()) or callable(p.default) else f"`{p.default}`"
    kind = p.type.name if hasattr(p, "type") else p.display_type(ctx)  # click | typer's
    return f"| {names} | {_text(kind)} | {default} | {_text(getattr(p, 'help', ''))} |"


def cli_reference() -> str:
    import typer

    from dipddpm.cli import app

    root = typer.main.get_command(app)
    out = []
    for path, cmd, ctx in _commands(root, ["dipddpm"], root.context_class(root, None, "dipddpm")):
        out += [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`\n", _text(cmd.help) + "\n"]
        params = [p for p in cmd.params if p.name != "help"]
        if params and not hasattr(cmd, "list_commands"):
            out += ["| option | type | default | help |", "|---|---|---|---|",
                    *(_param_row(p, ctx) for p in params), ""]
    return "\n".join(out)


# --- included files -----------------------------------------------------------------------
def include(rel: str) -> str:
    text = (ROOT / rel).read_text()
    text = re.sub(r"^# .*\n", "", text, count=1)  # the page has its own title
    text = re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`\2`)", text)
    return text


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if m is None:
        raise ValueError(f"README.md has no section '## {heading}'")
    text = re.sub(r"<!--.*?-->\n?", "", m.group(1)).strip() + "\n"
    # README's links are relative to the repository root: docs/PAGE.md is the site's PAGE.md,
    # any other file (outside the site) becomes plain text, as include() writes it
    def link(m: re.Match) -> str:
        label, target = m.groups()
        if target.startswith("docs/"):
            return f"[{label}]({target.removeprefix('docs/')})"
        return f"{label} (`{target}`)"

    return re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", link, text)


GENERATORS = {"spec": spec_reference, "cli": cli_reference}


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(m: re.Match) -> str:
        kind, arg = m.groups()
        if kind == "generate":
            return GENERATORS[arg]()
        return include(arg) if kind == "include" else readme_section(arg)

    return scrub(MARKER.sub(replace, markdown))
