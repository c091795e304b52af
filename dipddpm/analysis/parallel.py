"""Parallel coordinates of a sweep: one axis per searched parameter (the config keys that vary,
and the trial seed when it does), then the status and the objective, one line per trial
coloured by the objective (plotly `parcoords`).

Every trial is drawn, pruned and failed ones too: the status axis separates them, and a
failed trial (no objective) sits at the bottom of the objective axis, marked "failed". A
categorical parameter becomes an axis of its categories; a value that did not apply to a trial
(a conditional key, null) is the category "—" (on a numeric axis: a tick below the lowest).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dipddpm.analysis.leaderboard import panel_metric
from dipddpm.analysis.load import Sweep
from dipddpm.analysis.summarize import metric_mode
from dipddpm.errors import DipddpmError

NULL = "—"
STATUS_ORDER = ("FAILED", "PRUNED", "COMPLETED")


def _categorical_axis(label: str, values: pd.Series) -> dict:
    text = values.astype("string").fillna(NULL)
    cats = sorted(set(text) - {NULL}, key=_natural)
    if NULL in set(text):
        cats = [NULL, *cats]
    code = {c: i for i, c in enumerate(cats)}
    return {"label": label, "values": [code[v] for v in text], "tickvals": list(range(len(cats))),
            "ticktext": cats, "range": [-0.3, max(len(cats) - 1, 0) + 0.3]}


def _natural(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def _numeric_axis(label: str, values: pd.Series, null_text: str = NULL) -> dict:
    x = values.astype("float64")
    present = x.dropna()
    if present.empty:
        return _categorical_axis(label, values)
    lo, hi = float(present.min()), float(present.max())
    axis = {"label": label, "values": x.tolist()}
    if x.isna().any():  # a tick below the lowest value for the trials without one
        gap = (hi - lo) * 0.12 or max(abs(lo) * 0.1, 1.0)
        axis["values"] = x.fillna(lo - gap).tolist()
        ticks = np.linspace(lo, hi, 4 if hi > lo else 1)
        axis.update(tickvals=[lo - gap, *ticks.tolist()],
                    ticktext=[null_text, *(f"{t:.4g}" for t in ticks)],
                    range=[lo - 1.2 * gap, hi + 0.02 * (hi - lo)])
    return axis


def axis_for(label: str, values: pd.Series) -> dict:
    numeric = (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
               and values.nunique(dropna=True) > 6)
    return _numeric_axis(label, values) if numeric else _categorical_axis(label, values)


def parallel_coordinates(sweep: Sweep, metric: str | None = None):
    """The plotly figure (see the module docstring)."""
    import plotly.graph_objects as go

    t = sweep.trials
    params = sweep.varying_config()
    if "seed" in t and t["seed"].nunique(dropna=False) > 1:  # a searched trial seed
        params.append("seed")
    if not params:
        raise DipddpmError(f"sweep {sweep.name!r} searched no parameter that varies across its "
                           "trials; parallel coordinates need at least one")
    metric = panel_metric(sweep, metric)
    dims = [axis_for(c.removeprefix("config."), t[c]) for c in params]
    status = t["status"].astype("string")
    order = [s for s in STATUS_ORDER if s in set(status)] + sorted(
        set(status) - set(STATUS_ORDER))
    dims.append({"label": "status", "values": [order.index(s) for s in status],
                 "tickvals": list(range(len(order))), "ticktext": order,
                 "range": [-0.3, len(order) - 0.7]})
    objective = t[metric].astype("float64")
    spec_metric = (sweep.spec or {}).get("metric") if isinstance(sweep.spec, dict) else None
    label = f"objective ({spec_metric})" if metric == "objective" and spec_metric else metric
    dims.append(_numeric_axis(label, objective, null_text="failed"))
    present = objective.dropna()
    floor = float(present.min()) if len(present) else 0.0
    color = objective.fillna(floor).tolist()
    reverse = metric_mode(sweep, metric) == "min"  # the best trials bright either way
    fig = go.Figure(go.Parcoords(
        dimensions=dims, labelangle=-20,
        line={"color": color, "colorscale": "Viridis", "reversescale": reverse,
              "showscale": True, "colorbar": {"title": {"text": label}}}))
    fig.update_layout(height=460, margin={"l": 60, "r": 40, "t": 100, "b": 30},
                      title={"text": f"{sweep.name}: {len(t)} trials, coloured by {label}",
                             "font": {"size": 14}})
    return fig
