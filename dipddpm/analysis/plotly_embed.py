"""plotly figures inside the one-file HTML report: plotly.js inline once per page, figures as
divs that draw with it. Nothing is loaded from the network (no CDN, no MathJax, no fonts)."""

from __future__ import annotations

import functools

CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}


@functools.cache
def plotly_script() -> str:
    """The <script> holding plotly.js itself (4.8 MB with plotly 7.1), to put once in the page."""
    from plotly.offline import get_plotlyjs

    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def figure_div(fig, div_id: str) -> str:
    """A figure as a <div> and the inline script drawing it (plotly.js must be on the page)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                       config=CONFIG, div_id=div_id)


STATUS_COLORS = {"COMPLETED": "#2a9d4b", "PRUNED": "#9a9a9a", "FAILED": "#d62728"}
