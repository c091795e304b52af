"""`dipddpm inspect stages|betas`: print (and plot) stage schedules and beta schedules."""

from __future__ import annotations

from pathlib import Path

import typer

from dipddpm.cli.app import inspect_app
from dipddpm.cli.common import print_json, user_errors
from dipddpm.config import parse_set
from dipddpm.errors import ConfigError
from dipddpm.outputs import check_output


def scheduler_values(scheduler: str, sets: list[str] | None) -> dict:
    """--set values as guided-DIP config keys: a scheduler's declared parameter may be given
    by its short name (x=10 -> sharp_linear_x); another scheduler's parameter is an error."""
    from dipddpm.stages import STAGE_SCHEDULERS

    entry = STAGE_SCHEDULERS.get(scheduler)  # unknown name -> error listing the valid ones
    own = {p.name: p.field for p in entry.params}
    others = {key: (p.name, name) for name, e in STAGE_SCHEDULERS.items() if name != scheduler
              for p in e.params for key in (p.name, p.field)}
    values = {}
    for k, v in parse_set(sets).items():
        if k in others and k not in own and k not in own.values():
            short, owner = others[k]
            raise ConfigError(f"--set {short}=... is a parameter of {owner}, not of "
                              f"{scheduler}; drop it or use --scheduler {owner}")
        values[own.get(k, k)] = v
    return {**entry.pairs, **values}


def stage_plan(scheduler: str, iters: int, stages: int, sets: list[str] | None) -> dict:
    """Counts and timesteps of `scheduler` for N iterations over K stages."""
    from dipddpm.config import build
    from dipddpm.methods.guided_dip import GuidedDipConfig

    values = scheduler_values(scheduler, sets)
    values.update(iters=iters, stages=stages, scheduler=scheduler)
    cfg = build(GuidedDipConfig, values)
    counts = cfg.counts()
    return {"scheduler": scheduler, "iters": iters, "stages": stages, "counts": counts,
            "timesteps": cfg.timesteps_list(), "beta_schedule": cfg.beta_schedule}


def check_plot(plot: Path) -> None:
    """--plot names a figure file (.png, .svg or .pdf) that can be written."""
    from dipddpm.analysis.plots import SUFFIXES

    check_output(plot, "--plot", suffixes=SUFFIXES)


def _plot_stages(plan: dict, out: Path) -> None:
    import numpy as np

    from dipddpm.analysis.plots import new_figure, save_figure

    stage = np.repeat(np.arange(1, plan["stages"] + 1), plan["counts"])
    fig = new_figure(6, 3.5)
    ax = fig.subplots()
    ax.step(np.arange(len(stage)), stage, where="post", lw=1.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("stage index k")
    ax.set_title(f"{plan['scheduler']}: N={plan['iters']}, K={plan['stages']}")
    ax.set_ylim(0.5, plan["stages"] + 0.5)
    ax.grid(alpha=0.3)
    save_figure(fig, out, "--plot")


def stage_set_help() -> str:
    """--set help text, from the stage scheduler registry's declared parameters."""
    from dipddpm.stages import STAGE_SCHEDULERS

    params = [f"{p.name}={e.default(p):g} ({name})" for name, e in STAGE_SCHEDULERS.items()
              for p in e.params]
    return (", ".join(params) + ", or guided-DIP keys such as beta_schedule=cosine, "
            "t_max=500, t_min=40.")


SCHEDULER_HELP = "{names:stage_schedulers}."  # filled when the command is looked up (cli/app.py)
STAGE_SET_HELP = "{call:dipddpm.cli.inspect.stage_set_help}"  # filled when looked up


@inspect_app.command("stages")
@user_errors
def stages_command(
    scheduler: str = typer.Option(..., "--scheduler", help=SCHEDULER_HELP),
    iters: int = typer.Option(..., "--iters", help="Total fitting iterations N."),
    stages: int = typer.Option(..., "--stages", help="Number of stages K."),
    sets: list[str] | None = typer.Option(None, "--set", help=STAGE_SET_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print {"counts": [...], ...}.'),
    plot: Path | None = typer.Option(None, "--plot", help="Write stage index vs iteration."),
) -> None:
    """Print the iterations each stage gets (most noisy stage first)."""
    if plot is not None:
        check_plot(plot)
    plan = stage_plan(scheduler, iters, stages, sets)
    if plot is not None:
        _plot_stages(plan, plot)
    if as_json:
        print_json(plan)
        return
    typer.echo(f"{scheduler}: {iters} iterations over {stages} stages "
               f"({plan['beta_schedule']} betas)")
    typer.echo(f"{'stage':>5} {'t_k':>5} {'iters':>6} {'from':>6} {'to':>6}")
    start = 0
    for k, (t, n) in enumerate(zip(plan["timesteps"], plan["counts"], strict=True), 1):
        span = f"{start:>6} {start + n - 1:>6}" if n else f"{'-':>6} {'-':>6}"
        typer.echo(f"{k:>5} {t:>5} {n:>6} {span}")
        start += n
    if plot is not None:
        typer.echo(f"plot: {plot}")


def _plot_betas(name: str, betas, abar, out: Path) -> None:
    from dipddpm.analysis.plots import new_figure, save_figure

    fig = new_figure(8, 3.2)
    a1, a2 = fig.subplots(1, 2)
    a1.plot(betas.numpy())
    a1.set_title(f"{name}: beta_t")
    a2.plot(abar.numpy())
    a2.set_title("alphas_cumprod")
    for a in (a1, a2):
        a.set_xlabel("t")
        a.grid(alpha=0.3)
    save_figure(fig, out, "--plot")


@inspect_app.command("betas")
@user_errors
def betas_command(
    schedule: str = typer.Option(..., "--schedule", help="{names:beta_schedules}."),
    timesteps: int = typer.Option(..., "--timesteps", help="Number of timesteps T."),
    sets: list[str] | None = typer.Option(None, "--set", help="Schedule parameter, e.g. "
                                          "min_beta=1e-4 (cosine), scale_with_T=false."),
    as_json: bool = typer.Option(False, "--json", help="Print betas and alphas_cumprod."),
    plot: Path | None = typer.Option(None, "--plot", help="Write beta_t and abar_t plots."),
) -> None:
    """Print a beta schedule's key values (float64; t is 0-based)."""
    from dipddpm.diffusion import DiffusionProcess, make_betas

    if plot is not None:
        check_plot(plot)
    if timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    betas = make_betas(schedule, timesteps, **parse_set(sets))
    abar = DiffusionProcess(betas).alphas_cumprod
    if plot is not None:
        _plot_betas(schedule, betas, abar, plot)
    if as_json:
        print_json({"schedule": schedule, "timesteps": timesteps, "betas": betas.tolist(),
                    "alphas_cumprod": abar.tolist()})
        return
    typer.echo(f"{schedule}, T={timesteps}")
    typer.echo(f"{'t':>6} {'beta_t':>12} {'abar_t':>12}")
    for t in sorted({0, timesteps // 4, timesteps // 2, 3 * timesteps // 4, timesteps - 1}):
        typer.echo(f"{t:>6} {betas[t].item():>12.6g} {abar[t].item():>12.6g}")
