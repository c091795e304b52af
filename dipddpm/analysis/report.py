"""One self-contained HTML page per sweep: open it anywhere, nothing loads from the network.

Sections: header (counts, provenance, metric definitions), the interactive panels
(`panels.PANELS`: a sortable leaderboard with thumbnails, parallel coordinates, learning
curves, outputs over iterations; drawn by plotly, whose JavaScript is inline once), the best
trials, a table per
searched parameter, the two source-style tables, the figures (curves, stages, Pareto,
importances), a contact sheet (clean and noisy images, then the final images of the best
trials), failed trials with their errors, and the spec as run. Figures and images are embedded
as base64 data URIs. A part the sweep cannot provide (no stage metric, no Optuna study, images
not copied) becomes a one-line note instead of failing the report; so does a figure that fails
for any other reason (a bug), with its error's first line in the note and a warning on stderr.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dipddpm.analysis import plots
from dipddpm.analysis.compare import compare
from dipddpm.analysis.load import Sweep
from dipddpm.analysis.output import write_atomic
from dipddpm.analysis.panels import guarded, interactive_sections, note
from dipddpm.analysis.plotly_embed import plotly_script
from dipddpm.analysis.summarize import Summary, summarize
from dipddpm.analysis.tables import GROUP_NOTE, display, fmt
from dipddpm.errors import DipddpmError

MAX_GROUPS = 12  # a searched parameter with more distinct values gets no group table
PROVENANCE = ("dipddpm_version", "torch_version", "ray_version", "optuna_version", "git_sha",
              "python_version", "gpu", "hostname")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1d1d1f; }
h1 { margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.muted { color: #666; } .note { color: #8a5300; background: #fff7e6; padding: .4em .7em; }
table.t { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
table.t th, table.t td { padding: .25em .6em; border-bottom: 1px solid #e5e5e5;
                         text-align: right; white-space: nowrap; }
table.t th { background: #f5f5f7; }
table.t td:first-child, table.t th:first-child { text-align: left; }
.badge { display: inline-block; padding: .1em .6em; border-radius: 1em; margin-right: .4em;
         background: #eef; } .badge.PRUNED { background: #fff1d6; }
.badge.FAILED { background: #fde2e2; } .badge.COMPLETED { background: #e2f6e5; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.sheet { display: flex; flex-wrap: wrap; gap: 12px; }
.sheet figure { margin: 0; width: 170px; font-size: 11px; }
.sheet img { width: 160px; height: 160px; object-fit: contain; image-rendering: pixelated;
             background: #fafafa; }
img.thumb { width: 56px; height: 56px; object-fit: contain; image-rendering: pixelated; }
table.sortable th { cursor: pointer; } table.sortable th[data-dir=asc]::after { content: " ▲"; }
table.sortable th[data-dir=desc]::after { content: " ▼"; }
.scroll { max-height: 640px; overflow: auto; } td.cmd code { font-size: 11px; }
.strip figure { width: 136px; } .strip img { width: 128px; height: 128px; }
pre { background: #f5f5f7; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(df: pd.DataFrame, caption: str | None = None) -> str:
    body = display(df).to_html(index=False, border=0, classes="t", escape=True)
    cap = f"<p class='muted'>{html.escape(caption)}</p>" if caption else ""
    return cap + body


def _note(text: str) -> str:
    return note(text)


def _figure(title: str, make: Callable[[], object]) -> str:
    """A rendered figure, or a note saying why this sweep cannot have it (`panels.guarded`)."""
    def render() -> str:
        uri = _data_uri(plots.png_bytes(make()))
        return f"<figure><img alt='{html.escape(title)}' src='{uri}'></figure>"

    return guarded(title, render)


def _image_cell(sweep: Sweep, rel: str | None, caption: str) -> str:
    path = sweep.path / rel if rel else None
    if path is not None and path.is_file():
        img = f"<img alt='{html.escape(caption)}' src='{_data_uri(path.read_bytes())}'>"
    else:
        img = "<div class='note'>image not present</div>"
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _contact_sheet(sweep: Sweep, summary: Summary) -> str:
    cells = []
    noisy = sweep.trials.get("psnr_noisy_input")
    noisy_db = (f" ({fmt(float(noisy.median()))} dB)"
                if noisy is not None and noisy.notna().any() else "")
    cells.append(_image_cell(sweep, "artifacts/problem/clean.png", "clean"))
    cells.append(_image_cell(sweep, "artifacts/problem/noisy.png", f"noisy{noisy_db}"))
    rows = sweep.trials.set_index("trial_id")
    for _, r in summary.top.iterrows():
        tid = r["trial_id"]
        rel = rows.loc[tid].get("artifact_output")
        rel = None if rel is None or pd.isna(rel) else str(rel)
        label = plots.trial_label(sweep, rows.loc[tid].to_dict() | {"trial_id": tid})
        cells.append(_image_cell(sweep, rel, f"{label} — {summary.metric} "
                                 f"{fmt(r[summary.metric])}"))
    present = any((sweep.path / "artifacts").glob("*/*.png"))
    note = "" if present else _note(f"no images under {sweep.path / 'artifacts'} (only the "
                                    "Parquet files were copied?)")
    return note + f"<div class='sheet'>{''.join(cells)}</div>"


def _group_keys(sweep: Sweep) -> tuple[list[str], list[str]]:
    """Keys for group tables (searched parameters with few values, categorical ones first) and
    the categorical ones (method first) for the source-style tables and grouped figures."""
    t = sweep.trials
    few = [c for c in sweep.varying_config() if t[c].nunique(dropna=True) <= MAX_GROUPS]
    categorical = [c for c in few if not pd.api.types.is_numeric_dtype(t[c])]
    keys = categorical + [c for c in few if c not in categorical]
    if t["method"].nunique() > 1:
        keys.insert(0, "method")
        categorical.insert(0, "method")
    return keys, categorical


def _header(sweep: Sweep, summary: Summary) -> str:
    badges = "".join(f"<span class='badge {html.escape(s)}'>{html.escape(s)} {n}</span>"
                     for s, n in summary.counts.items() if n or s in ("COMPLETED",))
    prov = {c: ", ".join(sorted(map(str, sweep.trials[c].dropna().unique())))
            for c in PROVENANCE if c in sweep.trials}
    prov = {k: v for k, v in prov.items() if v}
    defs = sweep.file_metadata.get("dipddpm.metric_definitions")
    try:
        defs = json.loads(defs) if defs else {}
    except json.JSONDecodeError:
        defs = {"definitions": defs}
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
                    for k, v in {**prov, **defs}.items())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<h1>Sweep {html.escape(sweep.name)}</h1>"
            f"<p class='muted'>{html.escape(str(sweep.path.resolve()))} · report made {now} · "
            f"ranked by {html.escape(summary.metric)} ({summary.mode})</p>"
            f"<p>{badges}</p><ul class='muted'>{items}</ul>")


def baseline_sections(sweep: Sweep) -> list[str]:
    """A study with baselines: the best configuration against each baseline on the same
    observations, by the GT-free pick (psnr_es) and by the oracle best (psnr_gt_best)."""
    b = sweep.baselines()
    if not len(b) or not (sweep.trials["status"] == "COMPLETED").any():
        return []
    from dipddpm.analysis.effect_panel import effect_section

    out = ["<h2>Against the baselines, on the same observations</h2>",
           note("B = the sweep's best configuration by each metric; A = the baseline, run "
                "once on every (image, replicate) of the study. psnr_es is what a user gets "
                "without the ground truth; psnr_gt_best is DIP's oracle stop (BM3D has one "
                "output: its best is its final).")]
    for name in sorted(set(b["baseline"])):
        for metric in ("psnr_es", "psnr_gt_best"):
            out.append(guarded(f"{name}, {metric}", lambda name=name, metric=metric:
                               effect_section(sweep, {"baseline": name}, {}, metric=metric,
                                              mode="max"),
                               "verdict"))
    return out


def _figures(sweep: Sweep, top: int, categorical: list[str]) -> list[str]:
    """The report's figures: curves, group means, stages, Pareto front, importances."""
    parts: list[str] = []
    parts.append("<h2>Figures</h2>")
    by = categorical[:2] or None
    parts.append(_figure("PSNR and SSIM against iteration, best trials",
                         lambda: plots.plot_curves(sweep, top=top)))
    if by:
        names = ", ".join(k.removeprefix("config.") for k in by)
        parts.append(_figure(f"Mean ± std over the trials of each {names} group",
                             lambda: plots.plot_curves(sweep, by=by)))
    parts.append(_figure("Stages", lambda: plots.plot_stages(sweep, by=by)))
    parts.append(_figure("Quality against compute", lambda: plots.plot_pareto(sweep)))
    parts.append(_figure("Parameter importances (Optuna)", lambda: plots.plot_importance(sweep)))

    return parts


def build_report(sweep: Sweep, top: int = 6, sides: tuple[dict, dict] | None = None) -> str:
    """The HTML text of the report; `sides` (A's and B's filters) adds the paired verdict."""
    summary = summarize(sweep, top=top)
    keys, categorical = _group_keys(sweep)
    parts = [_header(sweep, summary)]
    if sides is not None:
        from dipddpm.analysis.effect_panel import effect_section

        # not guarded: filters that match no trial are the user's error, one line, no page
        parts.append("<h2>Paired verdict: B against A</h2>" + effect_section(sweep, *sides))
    parts += baseline_sections(sweep)
    parts += ["<h2>Explore</h2>", interactive_sections(sweep, top),
             "<h2>Best trials</h2>",
             _table(summary.top, f"The {len(summary.top)} best trials by {summary.metric}; "
                    "best_iter = iteration of the best, reach_iter = first iteration at the "
                    "PSNR threshold.")]
    parts.append("<h2>Groups</h2>")
    parts.append(_table(summary.groups, f"All trials; statistics over COMPLETED trials; "
                        f"{GROUP_NOTE}. A null key (it did not apply to a trial) is shown as "
                        "— and forms a group of its own."))
    for k in keys:
        parts.append(_table(summarize(sweep, by=[k], top=top).groups,
                            f"By {k.removeprefix('config.')}"))

    parts.append("<h2>Source-style tables</h2>")
    comp = compare([sweep], by=categorical)
    parts.append(_table(comp.reach_max.drop(columns="sweep"), "Iterations to reach max PSNR / "
                        "SSIM (best COMPLETED trial of each group; SSIM at the report "
                        "interval)"))
    parts.append(_table(comp.final_best.drop(columns="sweep"), "Final vs best PSNR and best "
                        "iteration (gap = best - final)"))

    parts += _figures(sweep, top, categorical)
    parts.append("<h2>Images</h2>")
    parts.append(_contact_sheet(sweep, summary))

    failed = sweep.trials[sweep.trials["status"] == "FAILED"]
    if len(failed):
        cols = [c for c in ("trial_id", "method", "seed", "iters_done", "error")
                if c in failed.columns]
        parts.append("<h2>Failed trials</h2>" + _table(failed[cols]))

    parts.append("<h2>Spec as run</h2>")
    parts.append(f"<pre>{html.escape(sweep.spec_text)}</pre>" if sweep.spec_text else
                 _note(f"{sweep.path / 'spec.resolved.yaml'} is not present"))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>dipddpm sweep {html.escape(sweep.name)}</title><style>{CSS}</style>"
            f"{plotly_script()}</head><body>\n{body}\n</body></html>\n")


def write_report(sweep: Sweep, out: str | Path, top: int = 6,
                 sides: tuple[dict, dict] | None = None) -> Path:
    """Build the report and write it atomically to out (.html)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise DipddpmError(f"--out must end in .html, got {out}")
    return write_atomic(out, build_report(sweep, top=top, sides=sides))
