"""The typer apps every CLI module adds its commands to (the helpers they share, the
user-error wrapper among them, are cli/common.py). Every app takes -h as well as --help;
`dipddpm --version` prints the version. `fit METHOD` is built by cli/fit_method.py when asked
for, so `dipddpm --help` loads no torch.
"""

from __future__ import annotations

import re

import typer
from typer.core import TyperGroup

from dipddpm._compat import moved_names
from dipddpm.cli.common import HELP_OPTIONS


def _click():
    """The click typer runs on: its own copy (typer >= 0.22 vendors click as typer._click), or
    click itself (older typer)."""
    from types import SimpleNamespace

    try:
        from typer._click import exceptions
        from typer._click.utils import echo
    except ImportError:
        from click import echo, exceptions

    return SimpleNamespace(echo=echo, NoArgsIsHelpError=exceptions.NoArgsIsHelpError,
                           UsageError=exceptions.UsageError, Abort=typer.Abort,
                           ClickException=exceptions.ClickException)


# registries whose names a help text may list as {names:KEY} ('a, b or c'), or whose entries'
# `help` it may list as {about:KEY} ('a: its help; b: ...'); {presets:METHOD} lists a method's
# presets; {call:MODULE.FUNCTION} is what that function returns (a text built from entries'
# own fields, e.g. the stage schedulers' parameters). Filled in when the command is looked up
# (its modules may load torch), so a plug-in registered after its module was imported is
# listed too. ("datasets" are the DDPM training datasets, "data_sets" the benchmark images of
# `dipddpm data`.)
HELP_REGISTRIES = {"datasets": ("dipddpm.data.datasets", "DATASETS"),
                   "data_sets": ("dipddpm.data.catalog", "DATA"),
                   "beta_schedules": ("dipddpm.diffusion.schedules", "SCHEDULES"),
                   "nets": ("dipddpm.nn", "NETS"),
                   "unet_presets": ("dipddpm.nn.time_unet", "UNET_PRESETS"),
                   "stage_schedulers": ("dipddpm.stages.schedulers", "STAGE_SCHEDULERS"),
                   "reverse_samplers": ("dipddpm.diffusion.sampling", "REVERSE_SAMPLERS"),
                   "plot_kinds": ("dipddpm.analysis.plots", "PLOT_KINDS"),
                   "storage_backends": ("dipddpm.dataset.storage_backends", "STORAGE_BACKENDS")}
_PLACEHOLDER = re.compile(r"\{(names|about|presets|call):([A-Za-z0-9_.]+)\}")


def _names(kind: str, key: str) -> str:
    import importlib

    if kind == "presets":
        from dipddpm.methods import METHODS

        presets = sorted(METHODS.get(key).presets)
        return ", ".join(presets[:-1]) + f" or {presets[-1]}" if len(presets) > 1 else "".join(
            presets)
    if kind == "call":
        module, func = key.rsplit(".", 1)
        return getattr(importlib.import_module(module), func)()
    module, attr = HELP_REGISTRIES[key]
    registry = getattr(importlib.import_module(module), attr)
    if kind == "about":
        return "; ".join(f"{name}: {entry.help}" for name, entry in registry.items())
    return registry.help()


def fill_help(text: str | None) -> str | None:
    """A help text with its {names:KEY}, {about:KEY} and {presets:METHOD} filled from the
    registries."""
    return text if not text else _PLACEHOLDER.sub(lambda m: _names(*m.groups()), text)


class RegistryHelpGroup(TyperGroup):
    """A command group whose commands' help texts name registry entries (`fill_help`). Its own
    help lists its commands by their own help alone: their options' help texts (and the
    modules those name) wait until the command is looked up by itself."""

    _listing = False  # True while this group's own help is written

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx, name: str):
        return filled(super().get_command(ctx, name), options=not self._listing)


def filled(cmd, options: bool = True):
    """The command with its help text filled (`fill_help`), and its options' too unless
    `options` is False; each once."""
    if cmd is not None and not getattr(cmd, "_help_filled", False):
        cmd.help = fill_help(cmd.help)
        if options:
            for p in cmd.params:
                if getattr(p, "help", None):
                    p.help = fill_help(p.help)
            cmd._help_filled = True
    return cmd


class OneLineUsageErrors(RegistryHelpGroup):
    """The root command: a usage error (an option's value of the wrong type, an unknown option
    or command, a missing argument) is one line on stderr, exit 2, like every other bad input,
    instead of click's usage block and framed message. Everything else runs as click runs it."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        import sys

        click = _click()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as e:  # a group named alone: its help
            click.echo(e.ctx.get_help())
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = f" (see `{e.ctx.command_path} -h`)" if e.ctx is not None else ""
            message = " ".join(e.format_message().split())
            click.echo(f"error: {message}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="dipddpm",
    help="Deep Image Prior x DDPM: fit, sample, inspect, and run distributed sweeps on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
    cls=OneLineUsageErrors,
)

__getattr__ = moved_names(__name__)  # names that moved out: _compat.MOVED_NAMES


def _print_version(value: bool) -> None:
    if value:
        from dipddpm import __version__

        typer.echo(f"dipddpm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="Print the version and exit.")
          ) -> None:
    """Deep Image Prior x DDPM: fit, sample, inspect, and run distributed sweeps on Ray."""

class FitGroup(RegistryHelpGroup):
    """`dipddpm fit`: the hand-written commands (cli/ddpm.py), and `fit METHOD` for every other
    registered method (cli/fit_method.py), built when asked for; METHOD may be written with _
    or -."""

    def list_commands(self, ctx) -> list[str]:
        from dipddpm.cli.fit_method import method_names

        own = super().list_commands(ctx)
        return own + [n for n in method_names() if n not in own]

    def get_command(self, ctx, name: str):
        own = super().get_command(ctx, name) or super().get_command(ctx, name.replace("_", "-"))
        if own is not None:
            return own
        from dipddpm.cli.fit_method import method_command

        return filled(method_command(name.replace("-", "_")),
                      options=not self._listing)


fit_app = typer.Typer(help="Fit one method on one problem (no Ray needed).", no_args_is_help=True,
                      cls=FitGroup, context_settings=HELP_OPTIONS)
inspect_app = typer.Typer(help="Inspect stage schedulers and beta schedules.",
                          no_args_is_help=True, cls=RegistryHelpGroup,
                          context_settings=HELP_OPTIONS)
sweep_app = typer.Typer(help="Run Ray Tune + Optuna + ASHA sweeps from YAML specs.",
                        no_args_is_help=True, cls=RegistryHelpGroup, context_settings=HELP_OPTIONS)
results_app = typer.Typer(help="Analyse a sweep's Parquet results.", no_args_is_help=True,
                          cls=RegistryHelpGroup, context_settings=HELP_OPTIONS)
cluster_app = typer.Typer(help="Check and use Ray clusters.", no_args_is_help=True,
                          context_settings=HELP_OPTIONS)
app.add_typer(fit_app, name="fit")
app.add_typer(inspect_app, name="inspect")
app.add_typer(sweep_app, name="sweep")
app.add_typer(results_app, name="results")
app.add_typer(cluster_app, name="cluster")

