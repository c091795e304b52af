"""The report's interactive panels, in page order, and the guard every report part runs in.

    PANELS: (title, render(sweep, top) -> HTML)

A panel the sweep cannot have (a `DipddpmError`: no searched parameter, no images) becomes a
one-line note; any other error (a bug) a note with its first line and a warning on stderr, so
the rest of the report is still written.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable

from dipddpm.analysis.load import Sweep
from dipddpm.errors import DipddpmError, first_line


def note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def guarded(title: str, render: Callable[[], str], what: str = "figure") -> str:
    """`<h3>title</h3>` and what render() returns, or a note saying why not."""
    head = f"<h3>{html.escape(title)}</h3>"
    try:
        return head + render()
    except DipddpmError as e:
        return head + note(str(e))
    except Exception as e:
        why = f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__
        print(f"warning: report {what} {title!r} failed ({why}); the report has a note "
              "instead (please report this bug)", file=sys.stderr)
        return head + note(f"this {what} failed: {why}")


def _parallel(sweep: Sweep, top: int) -> str:
    from dipddpm.analysis.parallel import parallel_coordinates
    from dipddpm.analysis.plotly_embed import figure_div

    return figure_div(parallel_coordinates(sweep), "parallel-coordinates")


def _leaderboard(sweep: Sweep, top: int) -> str:
    from dipddpm.analysis.leaderboard import leaderboard_html

    return leaderboard_html(sweep)


def _curves(sweep: Sweep, top: int) -> str:
    from dipddpm.analysis.learning_curves import learning_curves
    from dipddpm.analysis.plotly_embed import figure_div

    return figure_div(learning_curves(sweep), "learning-curves")


def _filmstrip(sweep: Sweep, top: int) -> str:
    from dipddpm.analysis.filmstrip import filmstrip_html

    return filmstrip_html(sweep, top=min(top, 4))


PANELS: tuple[tuple[str, Callable[[Sweep, int], str]], ...] = (
    ("Leaderboard", _leaderboard),
    ("Parallel coordinates of the searched parameters", _parallel),
    ("Learning curves (pruned grey, failed red, the scheduler's rungs dashed)", _curves),
    ("Outputs over iterations, best trials", _filmstrip),
)


def interactive_sections(sweep: Sweep, top: int) -> str:
    """Every panel of PANELS, each guarded."""
    return "\n".join(guarded(title, lambda r=render: r(sweep, top), "panel")
                     for title, render in PANELS)
