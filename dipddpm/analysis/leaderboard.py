"""The report's leaderboard: every trial, best first, in a table sortable by any column (click
a heading; a small inline script, no library), with a status badge, the trial's output image as
a thumbnail, and its `reproduce` command when the trials table has that column.

At most MAX_ROWS trials are listed (a note says how many are left out) and the first
MAX_THUMBS of them get a thumbnail, so a 10,000-trial sweep still makes a page a browser opens.
"""

from __future__ import annotations

import html

import pandas as pd

from dipddpm.analysis.load import Sweep
from dipddpm.analysis.summarize import metric_mode, resolve_metric
from dipddpm.analysis.tables import fmt
from dipddpm.analysis.thumbnails import thumbnail_uri

MAX_ROWS = 500
MAX_THUMBS = 60
THUMB_PX = 56
REPRODUCE = "reproduce"

# sorts the table whose heading is clicked, by the cells' data-v (numbers as numbers)
SORT_JS = """<script>
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.getAttribute('data-dir') !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      function key(r) {
        var v = r.cells[col].getAttribute('data-v');
        if (v === '' || v === null) return null;
        var n = Number(v);
        return isFinite(n) ? n : v;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        var c = (typeof x === typeof y) ? (x < y ? -1 : 1) : (typeof x === 'number' ? -1 : 1);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>"""


def _sort_value(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(int(v))
    return str(v)


def _cell(v, text: str | None = None) -> str:
    shown = html.escape(fmt(v) if text is None else text)
    return f"<td data-v='{html.escape(_sort_value(v), quote=True)}'>{shown}</td>"


def panel_metric(sweep: Sweep, metric: str | None = None) -> str:
    """What the interactive panels rank and colour by: `metric` when given, else `objective`
    (the spec's metric, best so far: pruned trials have it too), else the summary's default."""
    if metric is None and "objective" in sweep.trials and sweep.trials["objective"].notna().any():
        return "objective"
    return resolve_metric(sweep, metric)


def ranked_trials(sweep: Sweep, metric: str) -> pd.DataFrame:
    """All trials, best first by `metric`, those without a value last (then by trial id)."""
    t = sweep.trials.copy()
    mode = metric_mode(sweep, metric)
    t["_has"] = t[metric].notna()
    return t.sort_values(["_has", metric, "trial_id"], ascending=[False, mode == "min", True],
                         kind="stable", ignore_index=True).drop(columns="_has")


def _thumb(sweep: Sweep, row: pd.Series, rank: int) -> str:
    rel = row.get("artifact_output")
    if rank > MAX_THUMBS or rel is None or pd.isna(rel):
        return "<td data-v=''>—</td>"
    uri = thumbnail_uri(sweep.path / str(rel), THUMB_PX)
    if uri is None:
        return "<td data-v=''>—</td>"
    it = row.get("artifact_iter")
    alt = html.escape(f"{row['trial_id']} output" + (f" @ {int(it)}" if pd.notna(it) else ""))
    return f"<td data-v='{rank}'><img class='thumb' src='{uri}' alt='{alt}' title='{alt}'></td>"


def leaderboard_html(sweep: Sweep, metric: str | None = None) -> str:
    """The table (and its sort script): see the module docstring."""
    metric = panel_metric(sweep, metric)
    ranked = ranked_trials(sweep, metric)
    params = sweep.varying_config()
    cols = ["rank", "trial", "status", metric, *(p.removeprefix("config.") for p in params),
            "iters_done", "wall_s", "output"]
    has_reproduce = REPRODUCE in ranked.columns
    if has_reproduce:
        cols.append(REPRODUCE)
    head = "".join(f"<th title='click to sort'>{html.escape(c)}</th>" for c in cols)
    rows = []
    for i, row in ranked.head(MAX_ROWS).iterrows():
        rank = i + 1
        st = str(row["status"])
        cells = [_cell(rank), _cell(row["trial_id"]),
                 f"<td data-v='{html.escape(st)}'><span class='badge {html.escape(st)}'>"
                 f"{html.escape(st)}</span></td>", _cell(row[metric])]
        cells += [_cell(row[p]) for p in params]
        cells += [_cell(row.get("iters_done")), _cell(row.get("wall_s")),
                  _thumb(sweep, row, rank)]
        if has_reproduce:
            cmd = row[REPRODUCE]
            cells.append("<td data-v=''>—</td>" if cmd is None or pd.isna(cmd) else
                         f"<td data-v='' class='cmd'><code>{html.escape(str(cmd))}</code></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = len(ranked) - MAX_ROWS
    note = (f"<p class='muted'>{more} more trials not listed (the {MAX_ROWS} best are); "
            "`dipddpm results export` has them all.</p>" if more > 0 else "")
    return (f"<p class='muted'>Every trial, best first by {html.escape(metric)}; click a "
            "heading to sort by it. Thumbnails: the trial's output image (the last checkpoint's "
            f"for a pruned trial), for the {MAX_THUMBS} best.</p>"
            f"<div class='scroll'><table class='t sortable' id='leaderboard'><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}{SORT_JS}")
