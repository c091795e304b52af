"""Generate benchmarks/RESULTS.md from the JSON results in benchmarks/results/.

    python benchmarks/ledger.py [--results benchmarks/results] [--out benchmarks/RESULTS.md]

Every number in the ledger comes from a results file written by `reproduce.py` or `search.py`
(ours) or from `protocols.py` (the sources' published numbers, SPEC §6). Rows of a full-size
protocol with no measurement yet are listed as open. Never edit RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402

HERE = Path(__file__).resolve().parent
OPEN = "open"
LABELS = {"psnr_gt_best": "max psnr_gt", "psnr_best_iter": "@iter", "psnr_gt_final": "final",
          "psnr_gt_sm_final": "smoothed"}


def load(results: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Reproduction docs by protocol and search docs by study, newest date wins."""
    repro: dict[str, dict] = {}
    search: dict[str, dict] = {}
    for path in sorted(results.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        kind = doc.get("schema", "") if isinstance(doc, dict) else ""
        key = doc.get("protocol") or doc.get("study")
        target = (repro if kind.startswith("dipddpm.reproduce/") else
                  search if kind.startswith("dipddpm.search/") else None)
        if target is not None and (key not in target or doc["date"] > target[key]["date"]):
            target[key] = doc
    return repro, search


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


def provenance(doc: dict) -> tuple[str, str, str, str]:
    return (doc["hardware"]["name"], doc["date"][:10], short(doc.get("git_sha"),
                                                            doc.get("git_dirty")),
            f"`{doc['command']}`")


def protocol_section(p: protocols.Protocol, doc: dict | None) -> list[str]:
    shown_label = " / ".join(LABELS[k] for k in p.shown if k != "psnr_best_iter") + (
        " @iter" if "psnr_best_iter" in p.shown else "")
    main = p.shown[0]
    out = [f"### {p.name}", "", p.title + ".", ""]
    if p.note:
        out += [f"Note: {p.note}", ""]
    if doc is None:
        status = "open: needs a GPU run" if p.comparable else "open: not run yet"
        out += [f"**{status}.** Source: {p.source_ref}.", ""]
    else:
        hw, date, sha, cmd = provenance(doc)
        out += [f"Measured on **{hw}**, {date}, git {sha}, {doc['wall_s']:.0f} s with "
                f"{doc['jobs']} job(s): {cmd}", "", f"Source: {p.source_ref}.", ""]
    rows = {r["name"]: r for r in (doc or {}).get("rows", [])}
    src_head = "source" if p.comparable else "source (n/a: mini)"
    out += [f"| row | {src_head} {shown_label} | ours {shown_label} | Δ {LABELS[main]} | "
            f"noisy input (ours) | hardware | date | git sha |", "|---" * 8 + "|"]
    for r in p.rows:
        got = rows.get(r.name)
        if got is None or "ours" not in got:
            ours, d, noisy = (got or {}).get("error", OPEN), "–", "–"
            hw = date = sha = "–"
        else:
            ours = cell(got["ours"], p.shown)
            d = delta(got["ours"].get(main), r.source.get(main))
            noisy = num(got["ours"].get("psnr_noisy_input"))
            hw, date, sha, _ = provenance(doc)
        src = cell(r.source, p.shown) if p.comparable else "n/a"
        out.append(f"| {r.name}: {r.label} | {src} | {ours} | {d} | {noisy} | {hw} | {date} "
                   f"| {sha} |")
    for a in p.aggregates:
        got = {x["name"]: x for x in (doc or {}).get("aggregates", [])}.get(a.name)
        ours = got.get("ours") if got else None
        out.append(f"| **{a.name}**: {a.label} | {num(a.source) if p.comparable else 'n/a'} | "
                   f"{num(ours) if got else OPEN} | {delta(ours, a.source)} | | | | |")
    reach = (doc or {}).get("derived", {}).get("reach_baseline")
    if reach:
        out += ["", f"Iterations to reach the `{reach['baseline']}` row's max psnr_gt "
                    f"({reach['target_psnr']:.2f} dB, reached by it at iteration "
                    f"{reach['baseline_best_iter']}); goal ≤ 40%:", ""]
        for name, v in reach["rows"].items():
            got = "never" if v["iter"] is None else (
                f"{v['iter']} ({100 * v['fraction']:.0f}% of the baseline's)")
            out.append(f"- {name}: {got}")
    return out + [""]


def headline(p: protocols.Protocol, doc: dict | None) -> tuple[str, str, str]:
    name, metric = p.headline
    agg = {a.name: a for a in p.aggregates}
    if name in agg:
        src = agg[name].source
        got = {x["name"]: x for x in (doc or {}).get("aggregates", [])}.get(name, {})
        ours = got.get("ours")
        label = agg[name].label
    else:
        row = {r.name: r for r in p.rows}[name]
        src = row.source.get(metric)
        got = {r["name"]: r for r in (doc or {}).get("rows", [])}.get(name, {})
        ours = got.get("ours", {}).get(metric)
        label = f"{name}, {LABELS.get(metric, metric)}"
    src_s = num(src) if p.comparable else "n/a (mini)"
    return label, src_s, num(ours) if ours is not None else OPEN


def study_section(s: protocols.Study, doc: dict | None) -> list[str]:
    out = [f"### {s.name}", "", f"Goal: {s.goal}. Spec: `{s.spec}`.", ""]
    if doc is None:
        return out + ["**open: not run yet.**", ""]
    hw, date, sha, cmd = provenance(doc)
    best = doc.get("best") or {}
    out += [f"Run on **{hw}**, {date}, git {sha}: {cmd}", "",
            f"Trials: {doc['n_trials']} ({', '.join(f'{k} {v}' for k, v in doc['states'].items())})"
            f", {doc['wall_s']:.0f} s.", ""]
    if not best:
        return out + ["No completed trial.", ""]
    m = best.get("metrics", {})
    src = s.source if s.comparable else None
    out += ["| objective | source / goal | ours (best trial) | max psnr_gt @iter | "
            "final | smoothed final (no GT stopping) | iterations |", "|---" * 7 + "|",
            f"| {doc['metric']} ({doc['direction']}) | {num(src) if src is not None else 'n/a'}"
            f" | {num(best.get('value'), 3)} | {cell(m, ('psnr_gt_best', 'psnr_best_iter'))} | "
            f"{num(m.get('psnr_gt_final'))} | {num(m.get('psnr_gt_sm_final'))} | "
            f"{num(m.get('iters'))} |", "",
            "Best configuration: `" + json.dumps(best.get("params", {}), sort_keys=True) + "`",
            ""]
    honest = doc.get("honest_best")
    if honest:
        hm = honest["metrics"]
        out += [f"Honest number (no ground-truth stopping): best final smoothed output "
                f"{num(hm.get('psnr_gt_sm_final'))} dB after {num(hm.get('iters'))} iterations "
                f"(trial {honest['number']}, `{json.dumps(honest['params'], sort_keys=True)}`);"
                f" the best trial's own: {num(m.get('psnr_gt_sm_final'))} dB.", ""]
    reach = doc.get("reach")
    if reach:
        f = reach.get("fastest")
        base = doc["baseline"]
        out += [f"Reach goal: our plain-DIP baseline's max psnr_gt {num(base['psnr_gt_best'])} dB "
                f"@{base['psnr_best_iter']}; 40% = {reach['max_iter']:.0f} iterations. Fastest "
                "trial reaching it: " + (
                    f"iteration {f['metrics']['first_reach_iter']} (trial {f['number']}, "
                    f"`{json.dumps(f['params'], sort_keys=True)}`)" if f else "none") + ".", ""]
    if doc.get("goal_met") is not None:
        out += [f"Goal met: **{'yes' if doc['goal_met'] else 'no'}**.", ""]
    return out


def render(results: Path) -> str:
    repro, search = load(results)
    lines = ["# Results ledger", "",
             "Generated by `python benchmarks/ledger.py` from the JSON files in "
             "`benchmarks/results/` (written by `benchmarks/reproduce.py` and "
             "`benchmarks/search.py`). **Do not edit by hand.** Source numbers are the "
             "published ones (SPEC.md §6, transcribed in `benchmarks/protocols.py`); ours come "
             "only from runs. `open` = no measurement yet. `_mini` protocols shrink image, net "
             "and iterations for CI on 2 CPU cores and are **not comparable** to the papers.",
             "", "## Summary", "",
             "| protocol | headline | source | ours | hardware | date | git sha | command |",
             "|---" * 8 + "|"]
    for p in protocols.PROTOCOLS.values():
        doc = repro.get(p.name)
        label, src, ours = headline(p, doc)
        hw, date, sha, cmd = provenance(doc) if doc else ("–", "–", "–", "–")
        lines.append(f"| {p.name} | {label} | {src} | {ours} | {hw} | {date} | {sha} | {cmd} |")
    for s in protocols.STUDIES.values():
        doc = search.get(s.name)
        ours = num((doc.get("best") or {}).get("value"), 3) if doc else OPEN
        src = num(s.source) if s.source is not None else "n/a (mini)"
        hw, date, sha, cmd = provenance(doc) if doc else ("–", "–", "–", "–")
        lines.append(f"| {s.name} (search) | {s.goal} | {src} | {ours} | {hw} | {date} | "
                     f"{sha} | {cmd} |")
    lines += ["", "## Reproductions", ""]
    for p in protocols.PROTOCOLS.values():
        lines += protocol_section(p, repro.get(p.name))
    lines += ["## Search studies", ""]
    for s in protocols.STUDIES.values():
        lines += study_section(s, search.get(s.name))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args(argv)
    text = render(Path(args.results))
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
