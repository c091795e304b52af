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


def _registries():
    from dipddpm.data.datasets import DATASETS
    from dipddpm.diffusion.schedules import SCHEDULES
    from dipddpm.methods import METHODS
    from dipddpm.stages import STAGE_SCHEDULERS

    return [(("fit", "dip"), sorted(METHODS.get("dip").presets)),
            (("fit", "guided-dip"), sorted(METHODS.get("guided_dip").presets)),
            (("fit", "ddpm"), DATASETS.names() + sorted(METHODS.get("ddpm").presets)),
            (("fit", "dip-prior-ddpm"), sorted(METHODS.get("dip_prior_ddpm").presets)),
            (("inspect", "betas"), SCHEDULES.names()),
            (("inspect", "stages"), STAGE_SCHEDULERS.names())]


@pytest.mark.parametrize("i", range(6))
def test_a_help_text_names_every_registered_entry(i):
    command, names = _registries()[i]
    out = help_of(*command)
    assert [n for n in names if n not in out] == []


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
    assert {p: t for p, t in texts.items() if "{names:" in t or "{presets:" in t} == {}
