"""Outputs over iterations: for each of the best trials, a strip of its output image at its
checkpoints (`artifacts/<trial>/iters/output-<iter>.png`, written with every checkpoint) and at
the end (`artifact_output`), oldest first; at most FRAMES frames, spread evenly.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from dipddpm.analysis.leaderboard import panel_metric, ranked_trials
from dipddpm.analysis.load import Sweep
from dipddpm.analysis.tables import fmt
from dipddpm.analysis.thumbnails import thumbnail_uri
from dipddpm.errors import DipddpmError

FRAMES = 8
FRAME_PX = 128
HISTORY = re.compile(r"output-(\d+)\.png$")


def frames(sweep: Sweep, row: pd.Series) -> list[tuple[int, object]]:
    """(iteration, path) of a trial's output images, oldest first (the final one last)."""
    folder = sweep.path / "artifacts" / str(row["trial_id"])
    out = {int(m.group(1)): p for p in (folder / "iters").glob("output-*.png")
           if (m := HISTORY.search(p.name))}
    final, it = row.get("artifact_output"), row.get("artifact_iter")
    if final is not None and pd.notna(final) and pd.notna(it):
        out[int(it)] = sweep.path / str(final)
    return sorted(out.items())


def spread(items: list, n: int) -> list:
    """n items evenly spread over the list, the first and the last included."""
    if len(items) <= n:
        return items
    idx = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in idx]


def filmstrip_html(sweep: Sweep, metric: str | None = None, top: int = 4) -> str:
    """One strip per best trial (see the module docstring)."""
    metric = panel_metric(sweep, metric)
    ranked = ranked_trials(sweep, metric)
    strips = []
    for _, row in ranked.head(top).iterrows():
        cells = []
        for it, path in spread(frames(sweep, row), FRAMES):
            uri = thumbnail_uri(path, FRAME_PX)
            if uri is not None:
                alt = html.escape(f"{row['trial_id']} @ {it}")
                cells.append(f"<figure><img src='{uri}' alt='{alt}'><figcaption>iteration "
                             f"{it}</figcaption></figure>")
        if cells:
            head = (f"{row['trial_id']} · {row['status']} · {metric} {fmt(row[metric])}")
            strips.append(f"<p><b>{html.escape(head)}</b></p>"
                          f"<div class='sheet strip'>{''.join(cells)}</div>")
    if not strips:
        raise DipddpmError(f"no output images under {sweep.path / 'artifacts'} for the best "
                           "trials (a method without images, or only the Parquet files were "
                           "copied)")
    return ("<p class='muted'>The output of each of the best trials at its checkpoints, "
            "oldest first, then at its end.</p>" + "".join(strips))
