"""Figures of a sweep, drawn with matplotlib's Agg canvas (no display, no global pyplot state).

- curves:     PSNR (and SSIM) against iteration for the best trials, or mean +/- std per group
- stages:     PSNR against iteration with the stage boundaries marked, one panel per trial (or
              per group's best trial), as the staged-DIP source's figures
- pareto:     quality against compute (iterations or seconds) with the Pareto front
- importance: Optuna parameter importances from the sweep's study (optuna.db)

Each `plot_*` returns a `matplotlib.figure.Figure`; `save_figure` writes it atomically and
`png_bytes` renders it for the HTML report.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dipddpm.analysis.load import Sweep
from dipddpm.analysis.output import write_atomic
from dipddpm.analysis.summarize import metric_mode, resolve_metric, top_trials, trial_table
from dipddpm.analysis.tables import fmt
from dipddpm.errors import DipddpmError
from dipddpm.registry import Registry

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn: the CLI reads PLOT_KINDS
    from matplotlib.figure import Figure

SUFFIXES = (".png", ".svg", ".pdf")
CURVES = (("psnr_gt", "PSNR vs clean (dB)"), ("ssim_gt", "SSIM vs clean"))
DPI = 110


def new_figure(w: float, h: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | Path, option: str = "--out") -> Path:
    """Write the figure to out (.png, .svg or .pdf), whole or not at all; `option` names
    the command-line option in the error."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise DipddpmError(f"{option} must end in {', '.join(SUFFIXES)}, got {out}")
    buf = io.BytesIO()
    fig.savefig(buf, format=out.suffix[1:].lower())
    return write_atomic(out, buf.getvalue())


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _value_text(v) -> str:
    """A key's value in a label: `tables.fmt`, but floats as short as they go (0.001, 1e-05)."""
    if isinstance(v, float | np.floating) and not pd.isna(v):
        return f"{float(v):g}"
    return fmt(v)


def trial_label(sweep: Sweep, row: dict | pd.Series) -> str:
    """The trial id, then key=value for what varies across the sweep's trials (method, searched
    config keys, seed); a key that did not apply to this trial (null) is left out."""
    t = sweep.trials
    keys = ["method"] if t["method"].nunique() > 1 else []
    keys += sweep.varying_config()
    if "seed" in t and t["seed"].nunique(dropna=False) > 1:
        keys.append("seed")
    params = [f"{k.removeprefix('config.')}={_value_text(row[k])}" for k in keys
              if k in row and pd.notna(row[k])]
    return " · ".join([str(row["trial_id"]), *([", ".join(params)] if params else [])])


def group_label(keys: list[str], values) -> str:
    """key=value per grouping key; null (the key did not apply) shows as —."""
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k.removeprefix('config.')}={_value_text(v)}"
                     for k, v in zip(keys, values, strict=True))


def _curve_names(sweep: Sweep) -> list[tuple[str, str]]:
    names = [(m, label) for m, label in CURVES if m in sweep.metric_names]
    if not names:
        raise DipddpmError(f"sweep {sweep.name!r} has no psnr_gt or ssim_gt curve in its "
                           f"metrics table (it has: {', '.join(sweep.metric_names) or 'none'}); "
                           "curves need a method that reports them (dip, guided_dip)")
    return names


def _noisy_line(ax, sweep: Sweep) -> None:
    if "psnr_noisy_input" in sweep.trials and sweep.trials["psnr_noisy_input"].notna().any():
        v = float(sweep.trials["psnr_noisy_input"].median())
        ax.axhline(v, color="0.4", ls="--", lw=1, label=f"noisy input {v:.2f} dB")


def _ranked(sweep: Sweep, metric: str | None, top: int) -> tuple[str, pd.DataFrame]:
    metric = resolve_metric(sweep, metric)
    table = trial_table(sweep, metric)
    return metric, top_trials(table, metric, metric_mode(sweep, metric), top)


def plot_curves(sweep: Sweep, metric: str | None = None, top: int = 8,
                by: list[str] | None = None) -> Figure:
    """PSNR / SSIM against iteration: the `top` best trials, or mean +/- std per group."""
    names = _curve_names(sweep)
    fig = new_figure(5.2 * len(names), 4.0)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    if by:
        cols = [sweep.column(k) for k in by]
        curves = sweep.curves([m for m, _ in names])
        curves = curves.merge(sweep.trials[["trial_id", *cols]], on="trial_id")
        for ax, (m, label) in zip(axes, names, strict=True):
            for key, g in curves.groupby(cols, dropna=False, sort=True):
                stats = g.groupby("iter")[m].agg(["mean", "std", "count"])
                x = stats.index.to_numpy()
                line, = ax.plot(x, stats["mean"], lw=1.6,
                                label=f"{group_label(cols, key)} (n={g['trial_id'].nunique()})")
                std = stats["std"].fillna(0).to_numpy()
                ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, alpha=0.15,
                                color=line.get_color(), lw=0)
            ax.set_ylabel(label)
        title = f"{sweep.name}: mean ± std over the trials of each group"
    else:
        metric, best = _ranked(sweep, metric, top)
        rows = sweep.trials.set_index("trial_id").loc[best["trial_id"]].reset_index()
        curves = sweep.curves([m for m, _ in names], list(best["trial_id"]))
        for ax, (m, label) in zip(axes, names, strict=True):
            for _, row in rows.iterrows():
                c = curves[curves["trial_id"] == row["trial_id"]]
                if m in c:
                    ax.plot(c["iter"], c[m], lw=1.4, label=trial_label(sweep, row))
            ax.set_ylabel(label)
        title = f"{sweep.name}: the {len(best)} best trials by {metric}"
    _noisy_line(axes[0], sweep)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # the same lines in every panel
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=2, frameon=False)
    fig.set_figheight(4.0 + 0.16 * ((len(labels) + 1) // 2))  # room for the legend rows
    fig.suptitle(title)
    return fig


def stage_boundaries(stage: pd.DataFrame) -> list[float]:
    """Iterations where the reported stage index changes (midway between the two reports)."""
    s = stage.sort_values("iter")
    it, k = s["iter"].to_numpy(), s["value"].to_numpy()
    change = np.nonzero(k[1:] != k[:-1])[0]
    return [float(it[i] + it[i + 1]) / 2 for i in change]


def _stage_picks(sweep: Sweep, metric: str | None, top: int,
                 by: list[str] | None) -> tuple[str, list[tuple[str, str]]]:
    """(metric, [(trial id, label)]): the best staged trials, or each group's best."""
    metric = resolve_metric(sweep, metric)
    mode = metric_mode(sweep, metric)
    table = trial_table(sweep, metric)
    staged = set(sweep.metrics(["stage"])["trial_id"])
    table = table[table["trial_id"].isin(staged)]
    if not by:
        best = top_trials(table, metric, mode, top)
        rows = sweep.trials.set_index("trial_id")
        return metric, [(t, trial_label(sweep, rows.loc[t].to_dict() | {"trial_id": t}))
                        for t in best["trial_id"]]
    cols = [sweep.column(k) for k in by]
    table = table.merge(sweep.trials[["trial_id", *[c for c in cols if c not in table]]],
                        on="trial_id")
    picks = []
    for key, g in table.groupby(cols, dropna=False, sort=True):
        best = top_trials(g, metric, mode, 1)
        if len(best):
            tid = best.iloc[0]["trial_id"]
            picks.append((tid, f"{tid} · {group_label(cols, key)}"))
    return metric, picks


def _stage_panel(ax, c: pd.DataFrame, label: str, trial: pd.Series) -> None:
    """One trial's PSNR curve with its stages shaded in turn and its best point starred."""
    ax.plot(c["iter"], c["psnr_gt"], lw=1.5, color="C0")
    edges = [float(c["iter"].min()) - 0.5, *stage_boundaries(
        c[["iter", "stage"]].rename(columns={"stage": "value"})),
        float(c["iter"].max()) + 0.5]
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        if i % 2:
            ax.axvspan(a, b, color="0.92", lw=0)
    for x in edges[1:-1]:
        ax.axvline(x, color="C3", lw=0.8, ls=":")
    best_it, best_v = trial.get("psnr_best_iter"), trial.get("psnr_gt_best")
    if best_it is not None and pd.notna(best_it) and pd.notna(best_v):
        ax.plot([best_it], [best_v], marker="*", ms=10, color="C1",
                label=f"best {best_v:.2f} dB @ {int(best_it)}")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(textwrap.fill(f"{label}  ({len(edges) - 2} boundaries)", 90), fontsize=8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR vs clean (dB)")
    ax.grid(alpha=0.3)


def plot_stages(sweep: Sweep, metric: str | None = None, top: int = 4,
                by: list[str] | None = None) -> Figure:
    """PSNR vs iteration with stage boundaries: the best trials, or each group's best trial."""
    for m in ("stage", "psnr_gt"):
        if m not in sweep.metric_names:
            raise DipddpmError(f"sweep {sweep.name!r} has no {m!r} metric in its metrics "
                               "table; stage plots need guided_dip trials (which report stage "
                               "and psnr_gt); use --kind curves")
    metric, picks = _stage_picks(sweep, metric, top, by)
    if not picks:
        raise DipddpmError(f"sweep {sweep.name!r} has no trial with both a stage curve and a "
                           f"value of {metric}; expected finished guided_dip trials")
    curves = sweep.curves(["psnr_gt", "stage", "stage_t"], [t for t, _ in picks])
    n = len(picks)
    ncols = min(n, 2)
    nrows = (n + ncols - 1) // ncols
    fig = new_figure(5.6 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    trials = sweep.trials.set_index("trial_id")
    for ax, (tid, label) in zip(axes, picks, strict=False):
        c = curves[curves["trial_id"] == tid].sort_values("iter")
        _stage_panel(ax, c, label, trials.loc[tid])
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{sweep.name}: PSNR per stage (dotted: stage boundaries, within half a "
                 "report interval)", fontsize=10)
    return fig


def pareto_front(compute: np.ndarray, quality: np.ndarray, mode: str = "max") -> np.ndarray:
    """Indices of the points no other point beats on both axes (less compute, better quality),
    in order of increasing compute."""
    q = quality if mode == "max" else -quality
    order = np.lexsort((-q, compute))  # by compute, then best quality first
    front, best = [], -np.inf
    for i in order:
        if q[i] > best:
            front.append(i)
            best = q[i]
    return np.array(front, dtype=int)


def plot_pareto(sweep: Sweep, metric: str | None = None, x: str = "iters",
                by: list[str] | None = None) -> Figure:
    """Quality against compute (iterations done or wall seconds), with the Pareto front.

    Quality is the metric, by default `objective` (the spec's best-so-far value, which pruned
    trials have too, so the early-stopped ones show where they stopped)."""
    xcol = {"iters": "iters_done", "seconds": "wall_s"}.get(x)
    if xcol is None:
        raise DipddpmError(f"--x must be iters or seconds, got {x!r}")
    if xcol not in sweep.trials:
        raise DipddpmError(f"sweep {sweep.name!r} has no {xcol} column; use --x iters")
    if metric is None and "objective" in sweep.trials and sweep.trials["objective"].notna().any():
        metric = "objective"  # best-so-far: pruned trials have it too
    metric = resolve_metric(sweep, metric)
    mode = metric_mode(sweep, metric)
    t = sweep.trials[sweep.trials[metric].notna() & sweep.trials[xcol].notna()]
    if t.empty:
        raise DipddpmError(f"sweep {sweep.name!r} has no trial with both {metric} and {xcol}")
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    cols = [sweep.column(k) for k in by] if by else ["status"]
    markers = {"COMPLETED": "o", "PRUNED": "v", "FAILED": "x"}
    for key, g in t.groupby(cols, dropna=False, sort=True):
        label = group_label(cols, key) if by else str(key[0] if isinstance(key, tuple) else key)
        marker = "o" if by else markers.get(label, "s")
        ax.scatter(g[xcol], g[metric], s=28, alpha=0.8, marker=marker,
                   label=f"{label} ({len(g)})")
    ok = t[t["status"] != "FAILED"]  # a failed trial is no trade-off anyone can choose
    cx = ok[xcol].to_numpy(dtype=float)
    qy = ok[metric].to_numpy(dtype=float)
    front = pareto_front(cx, qy, mode)
    ax.step(cx[front], qy[front], where="post", color="k", lw=1.2, label="Pareto front")
    for i in front:
        ax.annotate(str(ok["trial_id"].iloc[i]), (cx[i], qy[i]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    cx = t[xcol].to_numpy(dtype=float)
    if cx.min() > 0 and cx.max() / cx.min() > 30:
        ax.set_xscale("log")
    ax.set_xlabel({"iters_done": "iterations done", "wall_s": "wall time per trial (s)"}[xcol])
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    missing = len(sweep.trials) - len(t)
    ax.set_title(f"{sweep.name}: {metric} vs compute"
                 + (f" ({missing} trials without {metric} not shown)" if missing else ""),
                 fontsize=9)
    return fig


def param_importances(sweep: Sweep) -> tuple[dict[str, float], str, int]:
    """Optuna importances of the searched parameters: (importances, evaluator, trials used)."""
    from dipddpm.dataset.optuna_study import STUDY_FILE, param_importances

    db = sweep.study_path
    if db is None:
        raise DipddpmError(f"sweep {sweep.name!r} has no Optuna study ({sweep.path / STUDY_FILE}"
                           " is absent: the searcher was not optuna, or the file was not copied "
                           "from the cluster); importance needs the study")
    return param_importances(db, sweep.name)


def plot_importance(sweep: Sweep) -> Figure:
    """A bar chart of Optuna's parameter importances (normalised to sum to 1)."""
    imp, evaluator, n = param_importances(sweep)
    names = list(imp)[::-1]
    fig = new_figure(6.0, 0.9 + 0.45 * len(names))
    ax = fig.subplots()
    ax.barh(names, [imp[k] for k in names], color="C0")
    for i, k in enumerate(names):
        ax.text(imp[k], i, f" {imp[k]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(imp.values()) * 1.15))
    ax.set_xlabel("importance")
    ax.set_title(f"{sweep.name}: parameter importances ({evaluator}, {n} complete trials)",
                 fontsize=9)
    return fig


@dataclass(frozen=True)
class PlotKind:
    """A figure `results plot --kind NAME` draws: the options it reads (of metric, top, by,
    x, passed by keyword) and its default --top."""

    draw: Callable[..., Figure]
    params: tuple[str, ...]
    help: str
    top: int | None = None


PLOT_KINDS: Registry[PlotKind] = Registry("plot kind")
PLOT_KINDS.register("curves")(PlotKind(
    plot_curves, ("metric", "top", "by"), "PSNR/SSIM vs iteration", top=8))
PLOT_KINDS.register("stages")(PlotKind(
    plot_stages, ("metric", "top", "by"), "PSNR with stage boundaries", top=4))
PLOT_KINDS.register("pareto")(PlotKind(
    plot_pareto, ("metric", "x", "by"), "quality vs compute"))
PLOT_KINDS.register("importance")(PlotKind(
    plot_importance, (), "Optuna parameter importances"))
KINDS = tuple(PLOT_KINDS.names())


def plot(sweep: Sweep, kind: str, metric: str | None = None, top: int | None = None,
         by: list[str] | None = None, x: str = "iters") -> Figure:
    """Draw the figure of plot kind `kind` (see PLOT_KINDS), given the options it reads."""
    if kind not in PLOT_KINDS:
        raise DipddpmError(f"unknown plot kind {kind!r}; expected one of: "
                           f"{', '.join(PLOT_KINDS.names())}")
    entry = PLOT_KINDS.get(kind)
    given = {"metric": metric, "top": top or entry.top, "by": by, "x": x}
    return entry.draw(sweep, **{k: given[k] for k in entry.params})
