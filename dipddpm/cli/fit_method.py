"""`dipddpm fit METHOD`: a command for every registered method, built when it is first asked
for (so `dipddpm --help` loads no torch), its options taken from one table (OPTIONS).

The image forms (`fit dip|guided-dip|bm3d|nlm`: a method entry's `image_form`, run by cli/fit.py)
take --image and the problem's options; `fit ddpm|dip-prior-ddpm` are hand-written
(cli/ddpm.py); every other registered method (noop, or one a plug-in registers) gets the
generic form:

    dipddpm fit noop --iters 20 --x 0.1 --json
    dipddpm fit METHOD --preset tiny --problem image=skimage:camera --set lr=0.01

Each config field is an option (`--report-every 5`, the value read as `--set` reads it, its
help showing the field's type); `--set key=value` works too, and a field's own option
overrides a `--set` of that key (one line says so). `--problem key=value` (repeatable) is the
problem spec, checked for type and range before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import typer

from dipddpm.cli.common import print_json, user_errors

# the generic command's own options; a config field of the same name is set with --set
COMMON = ("preset", "set", "problem", "seed", "device", "save", "json", "help")


def generic_command(name: str, *, as_json: bool = False, preset: str | None = None,
                    sets: list[str] | None = None, problem_sets: list[str] | None = None,
                    seed: int = 0, device: str = "auto", save: Path | None = None,
                    **field_options: str | None) -> None:
    """The generic form (`fit noop ...`): its options -> `dipddpm.fit_request` -> one line per
    summary value, or --json. `field_options`: field_NAME -> the text of --NAME (None: not
    given)."""
    from dipddpm.api import FitRequest, fit_request
    from dipddpm.cli.progress import ProgressReport

    fields = {k.removeprefix("field_"): v for k, v in field_options.items() if v is not None}
    result = fit_request(FitRequest(name, preset=preset, sets=sets, fields=fields, seed=seed,
                                    problem_sets=problem_sets, device=device, save=save),
                         bar=None if as_json else ProgressReport,
                         notes=functools.partial(typer.echo, err=True))
    if as_json:
        print_json(result.summary)
    else:
        _print_fields(result.summary)


def _print_fields(summary: dict) -> None:
    for k, v in summary.items():
        if k != "config":
            typer.echo(f"{k:>24}  {v}")


def command_name(method: str) -> str:
    return method.replace("_", "-")


def type_label(tp: Any) -> str:
    """A field's type as its option shows it: <int>, <float|null>, <uniform|normal>,
    <[float, float]>."""
    if get_origin(tp) in (Union, types.UnionType):
        return "|".join(type_label(a) for a in get_args(tp))
    if get_origin(tp) is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if get_origin(tp) is tuple:
        args = get_args(tp)
        inner = f"{type_label(args[0])}, ..." if args[-1] is Ellipsis else ", ".join(
            type_label(a) for a in args)
        return f"[{inner}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _field_params(cfg_cls: type) -> list[inspect.Parameter]:
    """One --option per config field: its value read as YAML, as --set reads it, then checked
    against the field's type (so a bad value is one line naming the field, not a usage
    error); the help shows that type."""
    out = []
    hints = typing.get_type_hints(cfg_cls)
    for f in dataclasses.fields(cfg_cls):
        flag = command_name(f.name)
        if flag in COMMON:
            continue
        default = "" if f.default is dataclasses.MISSING else f" (default {f.default!r})"
        out.append(inspect.Parameter(
            f"field_{f.name}", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
            default=typer.Option(None, f"--{flag}", help=f"{f.name}{default}.",
                                 metavar=f"<{type_label(hints[f.name])}>",
                                 show_default=False)))
    return out


# every option of a `fit` command, declared once: keyword -> (type, typer.Option). The generic
# form takes COMMON (and one option per config field); the image forms of cli/fit.py take
# IMAGE_FORM, less ITERATIVE where the method has no stage plan (BM3D: one deterministic pass,
# no iterations to set, no seeds to replicate, nothing to fuse).
OPTIONS: dict[str, tuple[Any, Callable[[], Any]]] = {
    "image": (str, lambda: typer.Option(..., "--image", help="PNG/JPEG path or skimage:NAME "
                                        "(e.g. skimage:astronaut).")),
    "preset": (str | None, lambda: typer.Option(None, "--preset", help="Named preset of the "
                                                "method.")),
    "size": (int | None, lambda: typer.Option(None, "--size", help="Resize to SIZE x SIZE "
                                              "(center square crop first).")),
    "sigma": (float | None, lambda: typer.Option(None, "--sigma", help="Noise std in 0-255 "
                                                 "units (default 25).")),
    "iters": (int | None, lambda: typer.Option(None, "--iters", help="Fitting iterations.")),
    "sets": (list[str] | None, lambda: typer.Option(None, "--set", help="Config override "
                                                    "key=value (repeatable), e.g. --set "
                                                    "lr=0.001.")),
    "seed": (int, lambda: typer.Option(0, "--seed", help="Seed of the run (of a fit: the "
                                       "noise, z and the net).")),
    "grey": (bool, lambda: typer.Option(False, "--grey", help="Convert the image to grey.")),
    "device": (str, lambda: typer.Option("auto", "--device", help="auto, cpu, cuda or "
                                         "cuda:N.")),
    "save": (Path | None, lambda: typer.Option(None, "--save", help="Write the output image "
                                               "here.")),
    "as_json": (bool, lambda: typer.Option(False, "--json", help="Print one JSON object.")),
    "noise_seed": (int | None, lambda: typer.Option(
        None, "--noise-seed", help="Seed of the noise alone (default: --seed), as a sweep's "
        "problem seed.")),
    "problem_sets": (list[str] | None, lambda: typer.Option(
        None, "--problem", help="Problem key=value (repeatable), e.g. --problem "
        "image=skimage:camera --problem size=64; a key another option also sets is an "
        "error.")),
    "replicates": (int, lambda: typer.Option(
        1, "--replicates", help="K fits of the same image with seeds SEED..SEED+K-1, run as "
        "one fused net (the default on CUDA); --json adds every member's metrics and their "
        "mean.")),
    "fusion": (str, lambda: typer.Option(
        "auto", "--fusion", help="With --replicates: auto (fused on CUDA, on CPU what "
        "measured faster), fused or serial.")),
}
COMMON_FORM = ("preset", "sets", "problem_sets", "seed", "device", "save", "as_json")
IMAGE_FORM = ("image", "preset", "size", "sigma", "iters", "sets", "seed", "grey", "device",
              "save", "as_json", "noise_seed", "problem_sets", "replicates", "fusion")
ITERATIVE = ("iters", "replicates", "fusion")  # taken by a method with a stage plan


def params(names: tuple[str, ...]) -> list[inspect.Parameter]:
    """The keyword parameters of a command taking the options `names` (OPTIONS' keys)."""
    return [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=OPTIONS[n][0],
                              default=OPTIONS[n][1]()) for n in names]


def form_options(method) -> tuple[str, ...]:
    """The options of a method's image form: ITERATIVE only where it has a stage plan."""
    return tuple(n for n in IMAGE_FORM if method.plan is not None or n not in ITERATIVE)


def _common_params(method) -> list[inspect.Parameter]:
    """COMMON_FORM, without --save for a method that returns no output image."""
    return params(tuple(n for n in COMMON_FORM if method.image_output or n != "save"))


def _click(name: str, command, help_text: str, signature: list[inspect.Parameter]):
    command.__signature__ = inspect.Signature(signature)
    one = typer.Typer(add_completion=False)
    one.command(command_name(name), help=help_text)(user_errors(command))
    return typer.main.get_command(one)


def method_command(name: str):
    """The click command of `dipddpm fit NAME` for registered method NAME (None if none)."""
    from dipddpm.methods import METHODS

    if name not in METHODS:
        return None
    method = METHODS.get(name)
    presets = ", ".join(sorted(method.presets)) or "none"
    if method.image_form is not None:  # its entry's help text
        from dipddpm.cli.fit import image_form

        text = method.image_form  # lists its presets itself where it says {presets:NAME}
        text = text if "{presets:" in text else f"{text} Presets: {presets}."
        return _click(name, image_form(name), text, params(form_options(method)))

    return _click(name, functools.partial(generic_command, name), f"Run method {name} once "
                  f"(options: its {method.config_cls.__name__} fields). Presets: {presets}.",
                  _common_params(method) + _field_params(method.config_cls))


def method_names() -> list[str]:
    """The command names of every registered method."""
    from dipddpm.methods import METHODS

    return [command_name(n) for n in METHODS.names()]
