"""Learning curves of every trial: the sweep's metric against iteration, COMPLETED trials in
colour, PRUNED ones grey, FAILED ones red and dotted, with the Tune scheduler's rungs (the
iterations at which it judged trials: ASHA's rungs, PBT's perturbations; its entry in
dipddpm/trial_schedulers/ says where and what to call them) as dashed vertical lines.

One plotly trace per status (trials separated by gaps), so thousands of trials draw quickly;
hovering a point names its trial. The MAX_TRIALS best trials are drawn (a note says so).
"""

from __future__ import annotations

import pandas as pd

from dipddpm.analysis.leaderboard import panel_metric, ranked_trials
from dipddpm.analysis.load import Sweep
from dipddpm.analysis.plotly_embed import STATUS_COLORS
from dipddpm.errors import DipddpmError

MAX_TRIALS = 400


def curve_metric(sweep: Sweep) -> str:
    """The spec's metric when the metrics table has it, else psnr_gt, else the first one."""
    spec_metric = (sweep.spec or {}).get("metric") if isinstance(sweep.spec, dict) else None
    for m in (spec_metric, "psnr_gt"):
        if m and m in sweep.metric_names:
            return m
    names = [m for m in sweep.metric_names if m not in ("stage", "stage_t")]
    if not names:
        raise DipddpmError(f"sweep {sweep.name!r} has no metrics table to draw curves from "
                           f"({sweep.path / 'metrics'} is empty or absent)")
    return names[0]


def scheduler_rungs(sweep: Sweep) -> tuple[str, list[float]]:
    """(label, iterations) of the Tune scheduler's rungs from the spec as run (none without a
    scheduler that has rungs, or without the spec)."""
    from dipddpm.trial_schedulers import rung_lines

    return rung_lines((sweep.spec or {}).get("scheduler") if isinstance(sweep.spec, dict)
                      else None)


def _trace(go, curves: pd.DataFrame, ids: list[str], metric: str, status: str):
    xs, ys, names = [], [], []
    for tid, c in curves[curves["trial_id"].isin(ids)].groupby("trial_id", sort=False):
        xs += [*c["iter"].tolist(), None]
        ys += [*c["value"].tolist(), None]
        names += [tid] * len(c) + [None]
    faded = status != "COMPLETED"
    return go.Scatter(
        x=xs, y=ys, mode="lines+markers", marker={"size": 3}, text=names,
        name=f"{status} ({len(ids)})",
        hovertemplate="%{text}<br>iter %{x}<br>" + metric + " %{y:.4g}<extra></extra>",
        line={"color": STATUS_COLORS.get(status, "#1f77b4"), "width": 1.0 if faded else 1.4,
              "dash": "dot" if status == "FAILED" else "solid"},
        opacity=0.55 if faded else 0.9)


def learning_curves(sweep: Sweep, metric: str | None = None):
    """The plotly figure (see the module docstring)."""
    import plotly.graph_objects as go

    name = curve_metric(sweep)
    ranked = ranked_trials(sweep, panel_metric(sweep, metric)).head(MAX_TRIALS)
    curves = sweep.metrics([name], list(ranked["trial_id"]))
    if curves.empty:
        raise DipddpmError(f"sweep {sweep.name!r} has no {name!r} values in its metrics table")
    fig = go.Figure()
    for status in ("PRUNED", "FAILED", "COMPLETED"):  # completed drawn last, on top
        ids = list(ranked.loc[ranked["status"] == status, "trial_id"])
        if ids:
            fig.add_trace(_trace(go, curves, ids, name, status))
    label, rungs = scheduler_rungs(sweep)
    for i, r in enumerate(rungs):
        fig.add_vline(x=r, line={"color": "#555", "dash": "dash", "width": 1},
                      annotation_text=label if i == 0 else "",
                      annotation_position="top left")
    left = len(sweep.trials) - len(ranked)
    title = f"{sweep.name}: {name} per trial" + (f" (the {MAX_TRIALS} best; {left} more not "
                                                  "drawn)" if left > 0 else "")
    fig.update_layout(height=420, title={"text": title, "font": {"size": 14}},
                      xaxis_title="iteration", yaxis_title=name, hovermode="closest",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, template="plotly_white")
    return fig
