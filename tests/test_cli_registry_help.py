"""Help texts list registry entries from the registries, never a hand-kept copy."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from dipddpm.cli import app


def help_of(*args) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    return r.output


def every_registry():
    """Every registry of the package (each module imported: `Registry.every()`)."""
    import importlib
    import pkgutil

    import dipddpm
    from dipddpm.registry import Registry

    for mod in pkgutil.walk_packages(dipddpm.__path__, "dipddpm."):
        importlib.import_module(mod.name)
    return Registry.every()


def help_texts() -> dict[str, list[str]]:
    """Every command's help texts (its own and its options'), filled as a user reads it."""
    def walk(cmd, ctx, path: str):
        if hasattr(cmd, "list_commands"):  # a group
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(sub, type(ctx)(sub, parent=ctx, info_name=name),
                                f"{path} {name}")
        else:
            yield path, [cmd.help or "", *(getattr(p, "help", "") or "" for p in cmd.params)]

    root = typer.main.get_command(app)
    return dict(walk(root, root.make_context("dipddpm", ["--help"], resilient_parsing=True),
                     "dipddpm"))


def listing(texts: dict[str, list[str]], names: list[str]) -> list[str]:
    """The commands one of whose help texts (its own or an option's) names every one of
    `names`: a listing of a registry (names met in different texts, as `ddpm` in ddpm.pt and
    `ddim` in an example, list nothing)."""
    return [p for p, ts in texts.items() if any(all(n in t for n in names) for t in ts)]


# registries a help text lists, and a command that lists each (a listing must not vanish)
LISTED = {"dataset": "dipddpm fit ddpm", "beta schedule": "dipddpm inspect betas",
          "stage scheduler": "dipddpm inspect stages"}


@pytest.mark.parametrize("registry", every_registry(), ids=lambda r: r.kind)
def test_a_help_text_that_lists_a_registry_lists_a_new_entry(registry):
    """Wherever a help text lists every name of a registry, an entry registered now (a
    plug-in's) appears there too: the text comes from the registry, not a hand-kept copy."""
    names = registry.names()
    before = listing(help_texts(), names) if len(names) > 1 else []
    if registry.kind in LISTED:
        assert LISTED[registry.kind] in before, (registry.kind, before)
    if not before:
        pytest.skip(f"no help text lists every {registry.kind}")
    registry.register("zz_toy_entry")(registry.get(names[0]))
    try:
        after = listing(help_texts(), [*names, "zz_toy_entry"])
    finally:
        registry.unregister("zz_toy_entry")
    assert [p for p in before if p not in after] == []


def _methods() -> list[str]:
    from dipddpm.methods import METHODS

    return METHODS.names()


@pytest.mark.parametrize("name", _methods())
def test_a_method_commands_help_names_its_presets(name):
    from dipddpm.methods import METHODS

    presets = sorted(METHODS.get(name).presets)
    if not presets:
        pytest.skip(f"{name} has no presets")
    out = help_of("fit", name)
    if "--preset" not in out:
        pytest.skip(f"fit {name} takes no --preset")
    assert [n for n in presets if n not in out] == []


def test_no_help_text_keeps_a_placeholder():
    def walk(cmd, ctx, path: str):
        if hasattr(cmd, "list_commands"):  # a group
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(sub, type(ctx)(sub, parent=ctx, info_name=name),
                                f"{path} {name}")
        else:
            yield path, " ".join([cmd.help or "", *(getattr(p, "help", "") or ""
                                                    for p in cmd.params)])

    root = typer.main.get_command(app)
    texts = dict(walk(root, root.make_context("dipddpm", ["--help"], resilient_parsing=True),
                      "dipddpm"))
    assert len(texts) > 20
    assert {p: t for p, t in texts.items()
            if any(f"{{{kind}:" in t for kind in ("names", "about", "presets", "call"))} == {}


def test_help_built_from_entries_fields_shows_a_new_entry():
    """--set of `inspect stages` (each stage scheduler's parameters) and --top of `results
    plot` (each plot kind's default) are built from the entries when the help is read."""
    from dipddpm.analysis.plots import PLOT_KINDS
    from dipddpm.stages import STAGE_SCHEDULERS

    STAGE_SCHEDULERS.register("zz_stage_toy")(STAGE_SCHEDULERS.get("exp_weighted"))
    PLOT_KINDS.register("zz_plot_toy")(PLOT_KINDS.get("curves"))
    try:
        texts = help_texts()
    finally:
        STAGE_SCHEDULERS.unregister("zz_stage_toy")
        PLOT_KINDS.unregister("zz_plot_toy")
    assert any("(zz_stage_toy)" in t for t in texts["dipddpm inspect stages"])
    assert any("zz_plot_toy 8" in t for t in texts["dipddpm results plot"])
