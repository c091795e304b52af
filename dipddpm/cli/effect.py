"""`dipddpm results effect`: a paired verdict, B against A, with its confidence interval."""

from __future__ import annotations

import pandas as pd
import typer

from dipddpm.cli.app import results_app
from dipddpm.cli.common import print_json, user_errors
from dipddpm.cli.results import DIR_HELP, _console, _print_table


def print_effect(e) -> None:
    """The verdict in words, then the per-image table."""
    console = _console()
    console.print(f"[bold]{e.metric}: B ({e.b}) - A ({e.a})[/bold], {e.n} paired "
                  f"observation(s) (image, replicate)")
    if e.mean is None or e.ci is None:
        console.print(f"  {e.note}" + (f"; mean delta {e.mean:+.3f}" if e.mean is not None
                                       else ""))
    else:
        p = "n/a" if e.p_wilcoxon is None else f"{e.p_wilcoxon:.3g}"
        console.print(f"  mean delta {e.mean:+.3f}, 95% bootstrap CI [{e.ci[0]:+.3f}, "
                      f"{e.ci[1]:+.3f}]; B wins {e.wins}, ties {e.ties}, loses {e.losses}; "
                      f"Wilcoxon signed-rank p = {p}")
    if e.per_image:
        _print_table("mean delta per image (B - A)", pd.DataFrame(
            {"image": list(e.per_image), "delta": list(e.per_image.values())}), console)


@results_app.command(
    "effect",
    help=("Paired verdict of B against A: each side is the COMPLETED trials matching its "
          "KEY=VALUE filters, narrowed to its best configuration; they are paired by (image, "
          "replicate) and the differences B - A give the mean with a 95% bootstrap CI, wins / "
          "ties / losses, the Wilcoxon signed-rank p and the mean per image. With DIR_B, A is "
          "taken from DIR and B from DIR_B."))
@user_errors
def effect_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    other: str | None = typer.Argument(None, metavar="DIR_B",
                                        help="A second sweep for B (default: DIR)."),
    a: list[str] | None = typer.Option(None, "--a", help="A's filter KEY=VALUE (repeatable), "
                                       "e.g. --a stages=1."),
    b: list[str] | None = typer.Option(None, "--b", help="B's filter KEY=VALUE (repeatable), "
                                       "e.g. --b stages=4 --b scheduler=log10_linspace."),
    metric: str = typer.Option("psnr_gt_best", "--metric",
                               help="The value compared: a trials (or pairs) column."),
    mode: str = typer.Option("max", "--mode", help="max or min: which configuration of a "
                             "side is its best."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    from dipddpm.analysis.effect import parse_filters
    from dipddpm.api import load
    from dipddpm.errors import DipddpmError

    if mode not in ("max", "min"):
        raise DipddpmError(f"--mode must be max or min, got {mode!r}")
    fa, fb = parse_filters(a, "--a"), parse_filters(b, "--b")
    if other is None and not fa and not fb:
        raise DipddpmError("give --a and/or --b filters (KEY=VALUE), e.g. --a stages=1 "
                           "--b stages=4, or a second sweep DIR_B")
    e = load(directory).effect(a=fa, b=fb, metric=metric, mode=mode,
                               other=None if other is None else load(other))
    if as_json:
        print_json(e.as_dict())
    else:
        print_effect(e)
