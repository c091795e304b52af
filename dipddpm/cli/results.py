"""`dipddpm results summarize|compare|plot|report|export|compact`: a sweep's Parquet results.

Every command reads only the sweep directory (trials/ and metrics/ Parquet files, plus the
artifacts, spec and Optuna study when present): no Ray session is needed, so a results folder
copied from a cluster works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from dipddpm.analysis.plots import PLOT_KINDS
from dipddpm.cli.app import results_app
from dipddpm.cli.common import print_json, user_errors
from dipddpm.errors import DipddpmError
from dipddpm.outputs import check_output

DIR_HELP = ("Sweep results directory: <storage>/<sweep> (holds trials/ and metrics/), a local "
            "path or an s3://bucket/prefix/<sweep> URI.")
BY_HELP = ("Group by this trials column (repeatable), e.g. --by scheduler --by beta_schedule; "
           "the config. prefix is optional.")
METRIC_HELP = ("Numeric trials column to rank by (default psnr_gt_best, else objective), e.g. "
               "psnr_gt_final, ssim_gt_final, objective.")


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200)


def _print_table(title: str, df: pd.DataFrame, console: Console | None = None) -> None:
    from dipddpm.analysis.tables import display

    shown = display(df)
    table = Table(title=title, title_justify="left", title_style="bold")
    for i, c in enumerate(shown.columns):
        table.add_column(str(c), justify="left" if i == 0 else "right", no_wrap=True)
    for row in shown.itertuples(index=False):
        table.add_row(*map(str, row))
    (console or _console()).print(table)


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise DipddpmError("--json and --csv print different formats; pass only one of them")


@results_app.command(
    "summarize",
    help=("The best trials, and a table per group: best value with its trial and iteration, mean ± "
          "std over the seeds of the best trial's configuration and over all the group's "
          "COMPLETED trials, iterations to reach the PSNR threshold, and how many trials "
          "completed, were pruned or failed. A trial where a --by key did not apply (null) is "
          "in a group of its own, shown as —."))
@user_errors
def summarize_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    by: list[str] | None = typer.Option(None, "--by", help=BY_HELP),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP),
    top: int = typer.Option(10, "--top", help="How many best trials to list."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="PSNR (dB) for 'iterations to reach': the first reported "
        "iteration with psnr_gt >= this (default: the trials' own first_reach_iter, set by "
        "the config's psnr_threshold)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the group table as CSV (the "
                                "best-trials table without --by)."),
) -> None:
    from dipddpm.analysis.tables import GROUP_NOTE, records, to_csv
    from dipddpm.api import load
    from dipddpm.config import coerce

    _one_format(as_json, as_csv)
    coerce("--threshold", threshold, float | None)  # a finite PSNR or none
    s = load(directory).summary(by=by, metric=metric, top=top, threshold=threshold)
    if as_json:
        print_json({"sweep": s.sweep.name, "path": s.sweep.uri, "metric": s.metric,
                    "mode": s.mode, "by": s.by, "threshold": s.threshold, "counts": s.counts,
                    "top": records(s.top), "groups": records(s.groups)})
        return
    if as_csv:
        sys.stdout.write(to_csv(s.groups if s.by else s.top))
        return
    c = s.counts
    console = _console()
    console.print(f"sweep [bold]{s.sweep.name}[/] ({s.sweep.uri}): {sum(c.values())} trials: "
                  f"{c['COMPLETED']} completed, {c['PRUNED']} pruned, {c['FAILED']} failed; "
                  f"ranked by {s.metric} ({s.mode})", highlight=False)
    _print_table(f"best {len(s.top)} trials by {s.metric}", s.top, console)
    title = ("by " + ", ".join(k.removeprefix("config.") for k in s.by) if s.by
             else "all trials")
    _print_table(f"{title} ({s.metric}; statistics over COMPLETED trials)", s.groups, console)
    console.print(f"[dim]{GROUP_NOTE}[/]", highlight=False)
    if not s.by:
        keys = ", ".join(k.removeprefix("config.") for k in s.sweep.varying_config()[:3])
        if keys:
            console.print(f"[dim]group with --by (searched: {keys})[/]")


@results_app.command(
    "compare",
    help=("Source-style tables across sweeps, one row per sweep (or per sweep and group with "
          "--by): 'iterations to reach max PSNR / SSIM' and 'final vs best PSNR and best "
          "iteration', each row the best COMPLETED trial of its group."))
@user_errors
def compare_command(
    directories: list[str] = typer.Argument(..., metavar="DIR_A DIR_B ...",
                                             help="One or more sweep results directories."),
    by: list[str] | None = typer.Option(None, "--by", help=BY_HELP),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP + " Picks the best "
                                      "trial of each row."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    from dipddpm.analysis.tables import records
    from dipddpm.api import compare

    c = compare(*directories, by=by, metric=metric)
    if as_json:
        print_json({"metric": c.metric, "by": c.by, "reach_max": records(c.reach_max),
                    "final_best": records(c.final_best)})
        return
    console = _console()
    _print_table("iterations to reach max PSNR / SSIM", c.reach_max, console)
    _print_table("final vs best PSNR and best iteration (gap = best - final, dB)",
                 c.final_best, console)


def plot_tops() -> str:
    """--top's defaults, from each plot kind's entry (`PlotKind.top`)."""
    return ", ".join(f"{name} {k.top}" for name, k in PLOT_KINDS.items() if k.top)


@results_app.command(
    "plot", help="Draw one figure of a sweep ({names:plot_kinds}) and write it to --out.")
@user_errors
def plot_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    kind: str = typer.Option(..., "--kind", help="{about:plot_kinds}."),
    out: Path = typer.Option(..., "--out", help="Image to write (.png, .svg or .pdf)."),
    by: list[str] | None = typer.Option(None, "--by", help=BY_HELP + " curves: mean ± std per "
                                        "group; stages: each group's best trial."),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP + " Picks the trials "
                                      "shown; pareto's y axis (default objective)."),
    top: int | None = typer.Option(None, "--top", help="Trials shown (default "
                                   "{call:dipddpm.cli.results.plot_tops})."),
    x: str = typer.Option("iters", "--x", help="pareto: compute as iters or seconds."),
) -> None:
    from dipddpm.analysis.plots import SUFFIXES
    from dipddpm.api import load

    check_output(out, "--out", suffixes=SUFFIXES)
    if kind not in PLOT_KINDS:  # the registry now: a plug-in's kind too, as --kind lists it
        raise DipddpmError(f"--kind must be one of {', '.join(PLOT_KINDS.names())}, got {kind!r}")
    if top is not None and top < 1:
        raise DipddpmError(f"--top must be >= 1, got {top}")
    fig = load(directory).plot(kind, out=out, metric=metric, top=top, by=by, x=x)
    w, h = fig.get_size_inches() * fig.dpi
    typer.echo(f"wrote {out} ({kind}, {int(w)}x{int(h)} px)")


@results_app.command(
    "report",
    help=("Write one self-contained HTML page (opens offline): a sortable leaderboard with "
          "thumbnails, parallel coordinates, learning curves with ASHA's rungs, the best "
          "trials' outputs over iterations, the spec, summary tables and figures. --watch "
          "rewrites it every --every seconds while the sweep runs, and stops when it ends."))
@user_errors
def report_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    out: Path = typer.Option(..., "--out", help="HTML file to write."),
    top: int = typer.Option(6, "--top", help="Best trials in the tables and contact sheet."),
    watch: bool = typer.Option(False, "--watch", help="Rewrite the page while the sweep "
                               "runs (driver.json says so); stop after its end."),
    every: float = typer.Option(30.0, "--every", help="Seconds between rewrites with --watch."),
    a: list[str] | None = typer.Option(None, "--a", help="With --b: add the paired verdict of "
                                       "B against A (as `results effect`), A's KEY=VALUE."),
    b: list[str] | None = typer.Option(None, "--b", help="B's KEY=VALUE (repeatable)."),
) -> None:
    from dipddpm.analysis.effect import parse_filters
    from dipddpm.api import load
    from dipddpm.api.results import report_line

    check_output(out, "--out", suffixes=(".html", ".htm"))
    if top < 1:
        raise DipddpmError(f"--top must be >= 1, got {top}")
    if every <= 0:
        raise DipddpmError(f"--every must be > 0 seconds, got {every}")
    sides = parse_filters(a, "--a"), parse_filters(b, "--b")
    if any(sides) and not all(sides):
        raise DipddpmError("the report's paired verdict needs both --a and --b "
                           "(KEY=VALUE each), e.g. --a stages=1 --b stages=4")
    status = Console(stderr=True).status
    if not watch:
        typer.echo(report_line(load(directory, lazy=True).report(out, top, *sides,
                                                                  status=status)))
        return
    load(directory, lazy=True).watch_report(out, top, *sides, every=every, echo=typer.echo,
                                            status=status)


@results_app.command(
    "export",
    help=("Export the trials or metrics table as CSV or JSON (stdout, or --out FILE)."))
@user_errors
def export_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    fmt: str = typer.Option(..., "--format", help="csv or json (an array of row objects)."),
    table: str = typer.Option("trials", "--table", help="trials (one row per trial) or "
                              "metrics (long: trial_id, iter, metric, value)."),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
) -> None:
    from dipddpm.analysis.export import FORMATS
    from dipddpm.api import load

    if fmt not in FORMATS:  # checked before reading anything
        raise DipddpmError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if out is not None:
        check_output(out, "--out")
    result = load(directory).export(fmt, table, out)
    if out is None:
        sys.stdout.write(result)
    else:
        typer.echo(f"wrote {result}", err=True)


@results_app.command(
    "compact",
    help=("Rewrite the per-trial Parquet files of the finished trials (trials/ and metrics/, "
          "part-<id>.parquet) into a few compact-NNNNN.parquet files, atomically; the part "
          "files of unfinished trials stay for `sweep resume`. A sweep does this itself when "
          "it ends (spec compact: false keeps the parts). Running it again does nothing."))
@user_errors
def compact_command(
    directory: str = typer.Argument(..., metavar="DIR", help=DIR_HELP),
    force: bool = typer.Option(False, "--force", help="Compact even though driver.json says "
                               "a driver is running on another host (it is gone)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    from dataclasses import asdict

    from dipddpm.dataset.compaction import compact
    from dipddpm.dataset.storage import is_remote

    if not is_remote(directory) and Path(directory).is_dir():  # it rewrites files in DIR
        check_output(directory, "results compact DIR", kind="folder")
    c = compact(directory, force=force)
    if as_json:
        print_json({**asdict(c), "changed": c.changed})
        return
    if not c.changed:
        typer.echo(f"{c.path}: already compact ({c.files_after['trials']} trials and "
                   f"{c.files_after['metrics']} metrics files); nothing to do")
        return
    kept = f"; {c.kept_parts} part file(s) of unfinished trials kept" if c.kept_parts else ""
    typer.echo(f"{c.path}: trials {c.files_before['trials']} -> {c.files_after['trials']} "
               f"files, metrics {c.files_before['metrics']} -> {c.files_after['metrics']} "
               f"files{kept}")
