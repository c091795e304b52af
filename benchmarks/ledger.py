"""Generate benchmarks/RESULTS.md from the JSON results in benchmarks/results/.

    python benchmarks/ledger.py [--results benchmarks/results] [--out benchmarks/RESULTS.md]

Every number in the ledger comes from a results file written by `reproduce.py` or `search.py`
(ours) or from `protocols.py` (the sources' published numbers: docs/methods.md, Reference
numbers). Rows of a full-size
protocol with no measurement yet are listed as open; each measured row shows its own
provenance (a protocol's rows may come from different runs, see `reproduce.py --only`).
Smoke runs of the searches are listed apart and never fill a study's row. A results file that
cannot be used is named at the end of the ledger. Never edit RESULTS.md by hand (a test checks
that it equals what this script renders from benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402
from provenance import row_run  # noqa: E402

HERE = Path(__file__).resolve().parent
OPEN = "open"
LABELS = {"psnr_gt_best": "max psnr_gt", "psnr_best_iter": "@iter", "psnr_gt_final": "final",
          "psnr_gt_sm_final": "smoothed"}
REQUIRED = {"dipddpm.reproduce/": ("protocol", "rows"), "dipddpm.search/": ("study",)}


@dataclass
class Loaded:
    repro: dict[str, dict] = field(default_factory=dict)  # by protocol
    search: dict[str, dict] = field(default_factory=dict)  # by study, full runs only
    smoke: dict[str, dict] = field(default_factory=dict)  # by study, --smoke runs
    problems: list[str] = field(default_factory=list)  # files skipped or incomplete


def load(results: Path) -> Loaded:
    """Our result files by protocol / study, newest date wins; other JSON files are ignored,
    a file of ours that is unreadable or incomplete is skipped or shown, and reported."""
    got = Loaded()
    for path in sorted(results.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            got.problems.append(f"`{path.name}`: not readable JSON ({type(e).__name__}); "
                                "skipped")
            continue
        schema = doc.get("schema", "") if isinstance(doc, dict) else ""
        kind = next((k for k in REQUIRED if str(schema).startswith(k)), None)
        if kind is None:
            continue  # another benchmark's file
        missing = [k for k in REQUIRED[kind] if k not in doc]
        if missing:
            got.problems.append(f"`{path.name}`: no `{missing[0]}`; skipped")
            continue
        if not doc.get("date"):
            got.problems.append(f"`{path.name}`: no `date`; shown with date unknown")
        if kind == "dipddpm.reproduce/":
            target, key = got.repro, doc["protocol"]
        else:
            target, key = (got.smoke if doc.get("smoke") else got.search), doc["study"]
        if key not in target or (doc.get("date") or "") > (target[key].get("date") or ""):
            target[key] = doc
    return got


def num(v, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) > 50):
        return str(int(v))
    return f"{v:.{nd}f}"


def cell(values: dict, shown: tuple[str, ...]) -> str:
    """'30.32 @1960' or '21.29 / 21.48 @1491' or '29.22 / 30.43'."""
    if not any(values.get(k) is not None for k in shown):
        return "–"
    parts, it = [], ""
    for k in shown:
        if k == "psnr_best_iter":
            it = f" @{num(values.get(k))}" if values.get(k) is not None else ""
        else:
            parts.append(num(values.get(k)))
    return " / ".join(parts) + it


def delta(ours, source) -> str:
    if ours is None or source is None:
        return "–"
    return f"{ours - source:+.2f}"


def short(sha: str | None, dirty) -> str:
    if not sha or sha == "unknown":
        return "unknown"
    return sha[:10] + ("+dirty" if dirty else "")


def provenance(run: dict) -> tuple[str, str, str]:
    """(hardware, date, git sha) of a run record or a search document."""
    return ((run.get("hardware") or {}).get("name", "unknown"),
            (run.get("date") or "unknown")[:10], short(run.get("git_sha"), run.get("git_dirty")))


def joined(runs: list[dict]) -> tuple[str, str, str]:
    """Provenance of several rows: the distinct hardware and shas, the newest date."""
    if not runs:
        return "–", "–", "–"
    hws, dates, shas = zip(*(provenance(r) for r in runs), strict=True)
    return (", ".join(sorted(set(hws))), max(dates), ", ".join(sorted(set(shas))))


def threads_of(run: dict) -> str:
    jobs, threads = run.get("jobs"), run.get("torch_threads", run.get("threads"))
    if isinstance(threads, list):  # a search: the thread counts its trials ran with
        threads = "/".join(map(str, threads))
    parts = [f"{jobs} job(s)" if jobs else "", f"{threads} torch thread(s) per fit"
             if threads else ""]
    return ", ".join(p for p in parts if p) or "threads not recorded"


def reach_lines(reach: dict) -> list[str]:
    """The rows' iterations to reach the baseline's max psnr_gt, as fractions of its best
    iteration, next to the goal."""
    base_iter = reach["baseline_best_iter"]
    goal = protocols.REACH_FRACTION
    out = ["", f"Reaching the `{reach['baseline']}` row's max psnr_gt, "
               f"{reach['target_psnr']:.2f} dB at iteration {base_iter}: fraction = first "
               f"iteration at or above it / {base_iter}; goal ≤ {goal:.2f}. Granularity: "
               f"{reach.get('granularity', 'reports every 10 iterations (older file)')}.", "",
           f"| row | first iteration ≥ {reach['target_psnr']:.2f} dB | fraction (goal ≤ "
           f"{goal:.2f}) | goal met | row's max psnr_gt |", "|---" * 5 + "|"]
    for name, v in reach["rows"].items():
        status = v.get("status") or ("reached" if v.get("iter") is not None else "never")
        if status == "reached":
            out.append(f"| {name} | {v['iter']} | {v['fraction']:.2f} | "
                       f"{'yes' if v['fraction'] <= goal else 'no'} | – |")
        elif status == "never":
            out.append(f"| {name} | never | – | no | {num(v.get('psnr_gt_best'))} |")
        elif status == "stale":
            out.append(f"| {name} | stale: fitted against another baseline run "
                       f"({num(v.get('threshold'), 4)} dB); re-run the row | – | – | – |")
        else:
            out.append(f"| {name} | – (the fit failed) | – | – | – |")
    return out


ES_HEAD = "GT-free psnr_es @iter | ES gap dB (max psnr_gt)"


def es_values(row: dict) -> dict:
    """A row's GT-free numbers: under `ours`, else its metrics (None where absent)."""
    ours, m = row.get("ours") or {}, row.get("metrics") or {}
    return {k: ours.get(k, m.get(k)) for k in ("psnr_es", "iter_es", "psnr_gt_best",
                                                "es_gap_db")}


def es_mean_values(gt: dict) -> dict:
    """The protocol's GT-free means (`derived.gt_free` of reproduce.py) as row numbers."""
    return {k: gt.get(f"mean_{k}") for k in ("psnr_es", "iter_es", "psnr_gt_best",
                                               "es_gap_db")}


def es_cells(v: dict | None) -> tuple[str, str]:
    """('23.90 @120', '0.82 (max 24.72)'): the early-stopping pick's psnr_es and iteration,
    and the gap to the oracle max psnr_gt; ('open', '–') without a psnr_es."""
    if not v or v.get("psnr_es") is None:
        return OPEN, "–"
    it = v.get("iter_es")
    pick = num(v["psnr_es"]) + (f" @{it:.0f}" if it is not None else "")
    best, gap = v.get("psnr_gt_best"), v.get("es_gap_db")
    if gap is None and best is not None:
        gap = best - v["psnr_es"]
    if gap is None:
        return pick, "–"
    return pick, f"{gap:.2f}" + (f" (max {num(best)})" if best is not None else "")


def row_line(p: protocols.Protocol, r: protocols.Row, got: dict | None,
             doc: dict | None) -> tuple[str, dict | None]:
    """One protocol row of the ledger table, and the run record behind it (None: open)."""
    src = cell(r.source, p.shown) if p.comparable else "n/a"
    if got is None:
        return f"| {r.name}: {r.label} | {src} | {OPEN} | – | {OPEN} | – |" + " – |" * 5, None
    run = row_run(got, doc)
    hw, date, sha = provenance(run)
    wall = num(run.get("wall_s", got.get("metrics", {}).get("wall_s")), 0)
    if "ours" not in got or "metrics" not in got:
        ours, d, noisy = f"failed: {got.get('error', '?')}", "–", "–"
        es, gap = "–", "–"
    else:
        ours = cell(got["ours"], p.shown)
        d = delta(got["ours"].get(p.shown[0]), r.source.get(p.shown[0]))
        noisy = num(got["ours"].get("psnr_noisy_input"))
        es, gap = es_cells(es_values(got))
    return (f"| {r.name}: {r.label} | {src} | {ours} | {d} | {es} | {gap} | {noisy} | {wall} | "
            f"{hw} | {date} | {sha} |"), run


def gt_free_line(p: protocols.Protocol, doc: dict | None) -> str:
    """The protocol's GT-free row: the means over all its rows of the early-stopping pick."""
    gt = ((doc or {}).get("derived") or {}).get("gt_free")
    n = len(p.rows)
    if gt and gt.get("mean_psnr_es") is not None:
        es, gap = es_cells(es_mean_values(gt))
    else:
        es, gap = (f"{OPEN} ({gt['n']} of {n} rows)" if gt else OPEN), "–"
    return (f"| **gt_free**: GT-free early-stopping pick, mean over the {n} rows | – | – | – | "
            f"{es} | {gap} |" + " |" * 5)


def gt_free_note(p: protocols.Protocol, doc: dict) -> list[str]:
    """What the GT-free columns mean, the rule the rows used, and the rows without them."""
    gt = (doc.get("derived") or {}).get("gt_free") or {}
    rows = {r["name"]: r for r in doc.get("rows", [])}
    rules = gt.get("rules")
    old = [r.name for r in p.rows if r.name in rows and "metrics" in rows[r.name]
           and es_values(rows[r.name])["psnr_es"] is None]
    out = ["", "GT-free columns: `psnr_es` is the PSNR vs the clean image of the output the "
               "early-stopping rule picks without looking at the ground truth, at iteration "
               "`iter_es`; the ES gap is the oracle max psnr_gt (chosen with the ground truth) "
               f"minus psnr_es. Rule: {', '.join(rules) if rules else 'none recorded'}."]
    if old:
        out[-1] += (f" `open` for {', '.join(old)}: measured before the rule existed (no "
                    "psnr_es); re-run to fill it.")
    return out


def protocol_section(p: protocols.Protocol, doc: dict | None) -> list[str]:
    shown_label = " / ".join(LABELS[k] for k in p.shown if k != "psnr_best_iter") + (
        " @iter" if "psnr_best_iter" in p.shown else "")
    out = [f"### {p.name}", "", p.title + ".", ""]
    if p.note:
        out += [f"Note: {p.note}", ""]
    if doc is None:
        status = "open: needs a GPU run" if p.comparable else "open: not run yet"
        out += [f"**{status}.** Source: {p.source_ref}.", ""]
    else:
        out += [f"Source: {p.source_ref}.", ""]
    rows = {r["name"]: r for r in (doc or {}).get("rows", [])}
    src_head = "source" if p.comparable else "source (n/a: mini)"
    out += [f"| row | {src_head} {shown_label} | ours {shown_label} | Δ {LABELS[p.shown[0]]} | "
            f"{ES_HEAD} | noisy input (ours) | wall s | hardware | date | git sha |",
            "|---" * 11 + "|"]
    runs = {}
    for r in p.rows:
        line, run = row_line(p, r, rows.get(r.name), doc)
        out.append(line)
        if run is not None:
            runs[r.name] = run
    for a in p.aggregates:
        got = {x["name"]: x for x in (doc or {}).get("aggregates", [])}.get(a.name)
        ours = got.get("ours") if got else None
        out.append(f"| **{a.name}**: {a.label} | {num(a.source) if p.comparable else 'n/a'} | "
                   f"{num(ours) if ours is not None else OPEN} | {delta(ours, a.source)} | "
                   "| | | | | | |")
    out.append(gt_free_line(p, doc))
    if doc is None:
        return out + [""]
    out += gt_free_note(p, doc)
    return out + run_lines(doc, runs) + [""]


def run_lines(doc: dict, runs: dict[str, dict]) -> list[str]:
    """The rows' wall time, the commands that ran them, and the reach table."""
    out = []
    walls = [r.get("wall_s") for r in runs.values() if r.get("wall_s") is not None]
    if walls:
        out += ["", f"Rows' wall time: {sum(walls):.0f} s in all (the sum of each row's own "
                    "wall time, setup included; with more than one job, rows overlap)."]
    out += ["", f"Whole protocol: `{doc.get('command', '?')}`. The rows were run by:", ""]
    by_cmd: dict[tuple, list[str]] = {}
    for name, run in runs.items():
        by_cmd.setdefault((run.get("command") or "?", threads_of(run)), []).append(name)
    for (cmd, thr), names in by_cmd.items():
        out.append(f"- `{cmd}` ({thr}): {', '.join(names)}")
    reach = doc.get("derived", {}).get("reach_baseline")
    if reach:
        out += reach_lines(reach)
    return out


def headline(p: protocols.Protocol, doc: dict | None) -> tuple[str, str, str, tuple]:
    """(label, source, ours, provenance of the rows behind ours) for the summary table."""
    name, metric = p.headline
    agg = {a.name: a for a in p.aggregates}
    rows = {r["name"]: r for r in (doc or {}).get("rows", [])}
    if name in agg:
        src = agg[name].source
        got = {x["name"]: x for x in (doc or {}).get("aggregates", [])}.get(name, {})
        ours = got.get("ours")
        label = agg[name].label
        runs = [row_run(r, doc) for r in rows.values()] if ours is not None else []
    else:
        row = {r.name: r for r in p.rows}[name]
        src = row.source.get(metric)
        got = rows.get(name, {})
        ours = got.get("ours", {}).get(metric)
        label = f"{name}, {LABELS.get(metric, metric)}"
        runs = [row_run(got, doc)] if ours is not None else []
    src_s = num(src) if p.comparable else "n/a (mini)"
    return label, src_s, num(ours) if ours is not None else OPEN, joined(runs)


def headline_es(p: protocols.Protocol, doc: dict | None) -> str:
    """The GT-free number beside the headline: the headline row's early-stopping pick, or for
    an aggregate headline (a mean over the rows) the protocol's GT-free means."""
    if doc is None:
        return OPEN
    name = p.headline[0]
    if name in {a.name for a in p.aggregates}:
        gt = (doc.get("derived") or {}).get("gt_free")
        if not gt or gt.get("mean_psnr_es") is None:
            return f"{OPEN} ({gt['n']} of {gt['n_rows']} rows)" if gt else OPEN
        values, what = es_mean_values(gt), f"mean of {gt['n_rows']}: "
    else:
        row = {r["name"]: r for r in doc.get("rows", [])}.get(name)
        values, what = (es_values(row) if row else None), ""
        if row and "metrics" in row and values["psnr_es"] is None:
            return f"{OPEN} (run before the ES rule)"
    pick, gap = es_cells(values)
    return pick if pick == OPEN else f"{what}{pick}, gap {gap}"


def study_es(doc: dict | None) -> str:
    """A search's best trial's GT-free pick, where its metrics carry one."""
    best = ((doc or {}).get("best") or {}).get("metrics") or {}
    pick, gap = es_cells(best)
    return "–" if pick == OPEN else f"{pick}, gap {gap}"


def reach_summary(doc: dict) -> str:
    """A reach study's result in the goal's unit: the fastest trial's fraction."""
    reach = doc.get("reach") or {}
    f = reach.get("fastest")
    if f:
        return (f"{f['fraction']:.2f} ({f['first_reach_iter']} of "
                f"{reach['baseline_best_iter']} it)")
    best = (doc.get("best") or {}).get("metrics", {})
    return (f"not reached (best {num(best.get('psnr_gt_best'))} vs "
            f"{num(reach.get('target_psnr'))} dB)")


def study_ours(s: protocols.Study, doc: dict) -> str:
    if s.kind == "reach":
        return reach_summary(doc)
    best = (doc.get("best") or {}).get("metrics", {})
    return f"{num(best.get('psnr_gt_best'))} dB" if best else "no completed trial"


def study_goal(s: protocols.Study) -> str:
    if s.kind == "reach":
        return f"≤ {s.max_fraction:.2f} (fraction{'' if s.comparable else '; mini'})"
    return f"{num(s.source)} dB" if s.source is not None else "n/a (mini)"


def study_section(s: protocols.Study, doc: dict | None) -> list[str]:
    out = [f"### {s.name}", "", f"Goal: {s.goal}. Spec: `{s.spec}`.", ""]
    if doc is None:
        return out + ["**open: not run yet.**", ""]
    hw, date, sha = provenance(doc)
    resumed = (f"; resumed a journal that already held {doc['trials_before']} trials"
               if doc.get("trials_before") else "")
    out += [f"Run on **{hw}**, {date}, git {sha}: `{doc.get('command', '?')}` "
            f"({threads_of(doc)}{resumed}).", "",
            f"Trials: {doc['n_trials']} ({', '.join(f'{k} {v}' for k, v in doc['states'].items())})"
            f", {doc['wall_s']:.0f} s.", ""]
    for f in doc.get("failures", [])[:5]:
        out.append(f"- FAIL trial {f['number']}: {f['error']} (`{json.dumps(f['params'])}`)")
    if doc.get("failures"):
        out.append("")
    best = doc.get("best") or {}
    if not best:
        return out + ["No completed trial.", ""]
    m = best.get("metrics", {})
    out += ["| search objective | ours (best trial) | max psnr_gt @iter | final | "
            "smoothed final | iterations |", "|---" * 6 + "|",
            f"| {doc['metric']} ({doc['direction']}) | {num(best.get('value'), 3)} | "
            f"{cell(m, ('psnr_gt_best', 'psnr_best_iter'))} | {num(m.get('psnr_gt_final'))} | "
            f"{num(m.get('psnr_gt_sm_final'))} | {num(m.get('iters'))} |", "",
            "Best configuration: `" + json.dumps(best.get("params", {}), sort_keys=True) + "`",
            ""]
    honest = doc.get("honest")
    if honest:
        out += [f"Honest number: **{num(honest['psnr_gt_sm_final'])} dB** after "
                f"{num(honest['iters'])} iterations (trial {honest['number']}): the "
                f"{honest['rule']}.", ""]
    if m.get("psnr_es") is not None:
        gap = m.get("es_gap_db", m.get("psnr_gt_best", m["psnr_es"]) - m["psnr_es"])
        out += [f"GT-free: the best trial's early-stopping pick (chosen without the ground "
                f"truth) scores **{num(m['psnr_es'])} dB** at iteration {num(m.get('iter_es'))},"
                f" {gap:.2f} dB below its max psnr_gt.", ""]
    gt = doc.get("gt_selected_sm")
    if gt:
        out += [f"GT-selected, not honest: {num(gt['metrics'].get('psnr_gt_sm_final'))} dB "
                f"(trial {gt['number']}, {gt['rule']}).", ""]
    if s.kind == "beat" and s.source is not None:
        out += [f"Beat goal: max psnr_gt {num(m.get('psnr_gt_best'))} dB vs the source's "
                f"{num(s.source)} dB ({delta(m.get('psnr_gt_best'), s.source)} dB).", ""]
    reach = doc.get("reach")
    if reach:
        base = doc["baseline"]
        out += [f"Reach goal: our `{base['row']}` row of `{base['file']}` reaches max psnr_gt "
                f"{num(base['psnr_gt_best'])} dB at iteration {base['psnr_best_iter']}. "
                f"Fastest trial to reach it: {reach_summary(doc)}, goal ≤ "
                f"{reach['max_fraction']:.2f}; {reach['n_reached']} completed trial(s) reached "
                f"it. Granularity: {reach['granularity']}; pruned trials are not counted.", ""]
        f = reach.get("fastest")
        if f:
            out += [f"Fastest trial {f['number']}: `{json.dumps(f['params'], sort_keys=True)}`"
                    f" (max psnr_gt {cell(f['metrics'], ('psnr_gt_best', 'psnr_best_iter'))}, "
                    f"smoothed final {num(f['metrics'].get('psnr_gt_sm_final'))} dB).", ""]
    if doc.get("goal_met") is not None:
        mini = "" if s.comparable else " (mini, not comparable to the papers)"
        out += [f"Goal met{mini}: **{'yes' if doc['goal_met'] else 'no'}**.", ""]
    return out


def smoke_lines(smoke: dict[str, dict]) -> list[str]:
    out = ["## Smoke runs", "", "Pipeline checks of the searches (`--smoke`: tiny sizes and "
           "trial counts). **Not results**: they fill no row above.", ""]
    for name, doc in sorted(smoke.items()):
        hw, date, sha = provenance(doc)
        best = (doc.get("best") or {}).get("metrics", {})
        out.append(f"- {name}: {doc.get('n_trials', '?')} trials, best max psnr_gt "
                   f"{num(best.get('psnr_gt_best'))} dB; {hw}, {date}, git {sha}: "
                   f"`{doc.get('command', '?')}`")
    return out + [""]


def render(results: Path, got: Loaded | None = None) -> str:
    got = got or load(results)
    lines = ["# Results ledger", "",
             "Generated by `python benchmarks/ledger.py` from the JSON files in "
             "`benchmarks/results/` (written by `benchmarks/reproduce.py` and "
             "`benchmarks/search.py`). **Do not edit by hand.** Source numbers are the "
             "published ones (docs/methods.md, Reference numbers; transcribed in "
             "`benchmarks/protocols.py`); ours come "
             "only from runs. `open` = no measurement yet. `_mini` protocols shrink image, net "
             "and iterations for CI on 2 CPU cores and are **not comparable** to the papers. "
             "Reach goals are fractions (first iteration at the baseline's max psnr_gt / the "
             "baseline's best iteration), beat goals dB. **GT-free** = what a user gets "
             "without the ground truth: `psnr_es` is the PSNR of the output the fit's "
             "early-stopping rule (`es_rule`, dipddpm/early_stop.py) picks without looking at "
             "the ground truth, at iteration `iter_es`; the gap is the oracle max psnr_gt "
             "(which needs the ground truth) minus psnr_es. Rows measured before the rule "
             "existed have no psnr_es and show `open`.",
             "", "## Summary", "",
             "| protocol | headline | source / goal | ours | GT-free (ours): psnr_es @iter, "
             "gap dB (max psnr_gt) | hardware | date | git sha | command |", "|---" * 9 + "|"]
    for p in protocols.PROTOCOLS.values():
        doc = got.repro.get(p.name)
        label, src, ours, (hw, date, sha) = headline(p, doc)
        cmd = f"`{doc.get('command', '?')}`" if doc else "–"
        lines.append(f"| {p.name} | {label} | {src} | {ours} | {headline_es(p, doc)} | {hw} | "
                     f"{date} | {sha} | {cmd} |")
    for s in protocols.STUDIES.values():
        doc = got.search.get(s.name)
        ours = study_ours(s, doc) if doc else OPEN
        hw, date, sha = provenance(doc) if doc else ("–", "–", "–")
        cmd = f"`{doc.get('command', '?')}`" if doc else "–"
        lines.append(f"| {s.name} (search) | {s.goal} | {study_goal(s)} | {ours} | "
                     f"{study_es(doc)} | {hw} | {date} | {sha} | {cmd} |")
    lines += ["", "## Reproductions", ""]
    for p in protocols.PROTOCOLS.values():
        lines += protocol_section(p, got.repro.get(p.name))
    lines += ["## Search studies", ""]
    for s in protocols.STUDIES.values():
        lines += study_section(s, got.search.get(s.name))
    if got.smoke:
        lines += smoke_lines(got.smoke)
    if got.problems:
        lines += ["## Result files with problems", ""] + [f"- {x}" for x in got.problems] + [""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args(argv)
    results = Path(args.results)
    got = load(results)
    text = render(results, got)
    for problem in got.problems:
        print(f"warning: {problem}", file=sys.stderr)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
