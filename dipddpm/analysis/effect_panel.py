"""The report's paired-verdict section (`results report --a K=V --b K=V`): the table of
`results effect` and a plot of the mean difference per image with the 95% CI of the mean."""

from __future__ import annotations

import html
from collections.abc import Mapping

from dipddpm.analysis.effect import Effect, effect
from dipddpm.analysis.load import Sweep


def effect_table(e: Effect) -> str:
    ci = "—" if e.ci is None else f"[{e.ci[0]:+.3f}, {e.ci[1]:+.3f}]"
    mean = "—" if e.mean is None else f"{e.mean:+.3f}"
    p = "—" if e.p_wilcoxon is None else f"{e.p_wilcoxon:.3g}"
    cells = [("A", e.a), ("B", e.b), ("metric", e.metric), ("pairs", e.n),
             ("mean B − A", mean), ("95% bootstrap CI", ci),
             ("wins / ties / losses", f"{e.wins} / {e.ties} / {e.losses}"),
             ("Wilcoxon p", p)]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in cells)
    extra = f"<p class='note'>{html.escape(e.note)}</p>" if e.note else ""
    return f"<table>{rows}</table>{extra}"


def effect_figure(e: Effect):
    """Bars: the mean difference per image; the band: the CI of the overall mean."""
    import plotly.graph_objects as go

    images = list(e.per_image)
    fig = go.Figure(go.Bar(x=images, y=[e.per_image[i] for i in images],
                           name="mean B − A per image", marker_color="#4c78a8"))
    if e.ci is not None:
        fig.add_hrect(y0=e.ci[0], y1=e.ci[1], fillcolor="#f58518", opacity=0.25, line_width=0,
                      annotation_text="95% CI of the mean")
    if e.mean is not None:
        fig.add_hline(y=e.mean, line_dash="dash", line_color="#f58518")
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 30, "b": 60},
                      yaxis_title=f"{e.metric}: B − A", showlegend=False)
    return fig


def effect_section(sweep: Sweep, a: Mapping[str, str], b: Mapping[str, str],
                   metric: str = "psnr_gt_best", mode: str | None = None) -> str:
    """The verdict's table and plot; `mode` (max|min) picks each side's best configuration,
    by default the sweep's."""
    from dipddpm.analysis.plotly_embed import figure_div

    mode = mode or (sweep.spec or {}).get("mode", "max")
    e = effect(sweep, sweep, a, b, metric=metric, mode=mode)
    return effect_table(e) + figure_div(effect_figure(e), "paired-effect")
