"""Reproduce the source reports' numbers with our code: named protocols of fixed runs.

    python benchmarks/reproduce.py staged_dip_f16 guided_dip_butterfly dip_cset9 --device cuda
    python benchmarks/reproduce.py staged_dip_f16_mini guided_dip_butterfly_mini dip_cset9_mini
    python benchmarks/reproduce.py --list

Protocols (benchmarks/protocols.py): `staged_dip_f16` (plain DIP and the staged-DIP source's
schedulers on F16), `guided_dip_butterfly` (the guided-DIP source's backbone x beta schedule
table), `dip_cset9` (DIP over the 9 images), and `*_mini` versions for 2 CPU cores that are
NOT comparable to the papers. Each protocol writes `<out>/<protocol>.json` with the source
numbers and ours; every row carries its own provenance (hardware, date, git sha, command, jobs,
torch threads, wall time), so `--only ROW ...` re-runs some rows and merges them into the
existing file, keeping the others. `benchmarks/ledger.py` turns those files into
benchmarks/RESULTS.md.

A protocol with a reach baseline (staged_dip_f16: the plain-DIP `dip` row) runs that row
first; the others then run with psnr_threshold = its max psnr_gt, so the first iteration at
which each reaches it is exact (every iteration, like the baseline's max and its iteration).

Fits run in parallel worker processes with --jobs N (default: 4 on CUDA, where one small net
leaves most of an H100 idle; 1 on CPU). The ground truth is used for metrics only.
Every row also records the GT-free early-stopping pick (`psnr_es`, `iter_es`, `es_gap_db`:
the output the config's `es_rule` picks without the ground truth, scored against it), and
each protocol the means of those over its rows (`derived.gt_free`).
Set GIT_SHA=<sha> when the tree has no .git (e.g. a copied working tree on a GPU machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402
import provenance  # noqa: E402

provenance.ensure_repo_on_path()

DEFAULT_DATA = provenance.bench_data()
RESULTS = Path(__file__).resolve().parent / "results"
CURVE_KEYS = ("psnr_gt", "psnr_gt_sm", "psnr_noisy")
# what a row keeps of its run (reproduced from an earlier JSON after --only)
# the GT-free early-stopping pick (dipddpm/early_stop.py): its psnr vs GT, its iteration and
# the gap to the oracle max psnr_gt; rows fitted before the rule existed have none
ES_KEYS = ("psnr_es", "iter_es", "es_gap_db")
RUN_KEYS = ("metrics", "extra", "config", "problem", "size", "curve", "error", "run")


def run_row(row: protocols.Row, data_dir: str, device: str, threads: int,
            psnr_threshold: float | None = None) -> dict:
    """One fit (runs in a worker process or in-process); returns metrics and the psnr curve.

    psnr_threshold: the fit records the first iteration (exact, every iteration) whose psnr_gt
    is at or above it, as metrics['first_reach_iter'].
    """
    t0 = time.perf_counter()
    import torch

    from dipddpm.config import build, to_dict
    from dipddpm.methods import METHODS
    from dipddpm.methods.fitting import pick_device
    from dipddpm.methods.problems import image_problem

    torch.set_num_threads(threads)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its kernels
    method = METHODS.get(row.method)
    extra = {} if psnr_threshold is None else {"psnr_threshold": psnr_threshold}
    cfg = build(method.config_cls, {**method.presets[row.preset], **row.overrides, **extra})
    spec = {"image": str(Path(data_dir) / row.image), **row.problem}
    problem = image_problem(spec, cfg)
    curve: dict[str, list] = {"iter": [], **{k: [] for k in CURVE_KEYS}}

    def report(it, metrics, state):
        curve["iter"].append(it)
        for k in CURVE_KEYS:
            curve[k].append(round(float(metrics[k]), 4))

    result = method.run(cfg, problem, report=report, seed=int(row.problem.get("seed", 0)),
                        device=dev)
    return {"metrics": result.metrics, "extra": result.extra, "config": to_dict(cfg),
            "problem": {**row.problem, "image": row.image},
            "size": list(problem.clean.shape[-2:]), "curve": curve,
            "run": {"wall_s": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}}


def reach_target(done: dict[str, dict], baseline: str | None) -> tuple[float, int] | None:
    """(max psnr_gt, its iteration) of the protocol's reach baseline row, if it has run."""
    m = done.get(baseline or "", {}).get("metrics")
    return (m["psnr_gt_best"], m["psnr_best_iter"]) if m else None


def reach(out: dict, target: float, base_iter: int) -> dict:
    """How fast one row reached the baseline's max psnr_gt.

    Exact on both sides: the baseline's max psnr_gt and its iteration are tracked every
    iteration, and the row's fit was run with psnr_threshold = that max, so its
    first_reach_iter is the first iteration (not report) at or above it. A row fitted against
    another target (an older baseline run) is 'stale' and must be re-run.
    """
    m = out.get("metrics")
    if m is None:
        return {"status": "error"}
    if out.get("config", {}).get("psnr_threshold") != target:
        return {"status": "stale", "threshold": out.get("config", {}).get("psnr_threshold")}
    it = m.get("first_reach_iter")
    if it is None:
        return {"status": "never", "psnr_gt_best": m["psnr_gt_best"]}
    return {"status": "reached", "iter": it, "fraction": it / base_iter}


def summarize(p: protocols.Protocol, done: dict[str, dict]) -> dict:
    """Rows with source vs ours, the aggregates, and 'reach the baseline's best' iterations.

    `done` maps row names to run outputs (this run's and, after --only, earlier ones); rows
    without an output are left out (the ledger shows them as open).
    """
    rows = []
    for r in p.rows:
        if r.name not in done:
            continue
        out = done[r.name]
        m = out.get("metrics", {})
        ours = {k: m.get(k) for k in (*r.source, "psnr_gt_best", "psnr_best_iter",
                                      "psnr_gt_final", "psnr_gt_sm_final", "psnr_noisy_input",
                                      *ES_KEYS)}
        rows.append({"name": r.name, "label": r.label, "method": r.method, "preset": r.preset,
                     "image": r.image, "overrides": r.overrides, "source": r.source,
                     "ours": ours, **out})
    aggs = []
    for a in p.aggregates:
        vals = [d["metrics"][a.metric] for d in done.values()
                if d.get("metrics", {}).get(a.metric) is not None]
        aggs.append({"name": a.name, "metric": a.metric, "label": a.label, "source": a.source,
                     "ours": statistics.fmean(vals) if vals and len(vals) == len(p.rows)
                     else None, "n": len(vals)})
    derived = {"gt_free": gt_free(p, done)}
    target = reach_target(done, p.reach_baseline)
    if target is not None:
        psnr_t, base_iter = target
        derived["reach_baseline"] = {
            "baseline": p.reach_baseline, "target_psnr": psnr_t, "baseline_best_iter": base_iter,
            "granularity": "exact: every iteration on both sides",
            "rows": {r.name: reach(done[r.name], psnr_t, base_iter) for r in p.rows
                     if r.name != p.reach_baseline and r.name in done}}
    fit_s = sum(d["run"]["wall_s"] for d in done.values() if "wall_s" in d.get("run", {}))
    return {"rows": rows, "aggregates": aggs, "derived": derived, "rows_wall_s": fit_s}


def es_rule_of(config: dict) -> str | None:
    """The GT-free rule a row was fitted with, e.g. 'emv (window 100, patience 1000)'."""
    rule = config.get("es_rule")
    if rule is None:
        return None  # fitted before the rule existed
    if rule == "none":
        return "none (the last output)"
    return f"{rule} (window {config.get('es_window')}, patience {config.get('es_patience')})"


def gt_free(p: protocols.Protocol, done: dict[str, dict]) -> dict:
    """What a user gets without the ground truth, over the protocol's rows: the means of the
    early-stopping pick's psnr_es and iteration, of the oracle max psnr_gt and of the gap
    (max psnr_gt - psnr_es). The means need every row's psnr_es (else None); `missing` names
    the rows without one (not run, failed, or measured before the rule existed)."""
    ms = {r.name: done[r.name].get("metrics") or {} for r in p.rows if r.name in done}
    have = [m for m in ms.values() if m.get("psnr_es") is not None]
    complete = len(have) == len(p.rows)

    def mean(key: str) -> float | None:
        return statistics.fmean(m[key] for m in have) if complete else None

    rules = {es_rule_of(done[n].get("config") or {}) for n in ms}
    return {"n": len(have), "n_rows": len(p.rows),
            "missing": [r.name for r in p.rows if ms.get(r.name, {}).get("psnr_es") is None],
            "rules": sorted(x for x in rules if x),
            **{f"mean_{k}": mean(k) for k in ("psnr_es", "iter_es", "psnr_gt_best",
                                              "es_gap_db")}}


def _same_row(r: protocols.Row, old: dict) -> bool:
    """An earlier result still belongs to row `r` (same method, preset, config and problem)."""
    return (old.get("method"), old.get("preset"), old.get("overrides"), old.get("problem")) == (
        r.method, r.preset, provenance.clean(r.overrides),
        provenance.clean({**r.problem, "image": r.image}))


def earlier_rows(path: Path, p: protocols.Protocol) -> dict[str, dict]:
    """The rows of an earlier `<protocol>.json` that still match the protocol, as run outputs
    with their own provenance (files written before per-row provenance get the file's)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("protocol") != p.name:
        return {}
    by_name = {r.name: r for r in p.rows}
    kept = {}
    for old in doc.get("rows", []):
        r = by_name.get(old.get("name"))
        if r is None or not _same_row(r, old):
            print(f"note: dropping the earlier {p.name}/{old.get('name')} result: the protocol "
                  "row changed since", file=sys.stderr)
            continue
        out = {k: old[k] for k in RUN_KEYS if k in old}
        out["run"] = provenance.row_run(old, doc)
        kept[r.name] = out
    return kept


def _cost(row: protocols.Row) -> float:
    size = row.problem.get("size") or 512
    return row.overrides.get("iters", 2000) * size * size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Protocols: " + ", ".join(protocols.PROTOCOLS))
    ap.add_argument("protocols", nargs="*", help="protocol names (see --list)")
    ap.add_argument("--data", default=None,
                    help="folder holding cset9/ and butterfly/ (default: $DIPDDPM_BENCH_DATA, "
                         "else shared/data beside the repo or one of its parent folders)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--out", default=str(RESULTS), help="folder for <protocol>.json")
    ap.add_argument("--jobs", type=int, default=0,
                    help="fits run at once in worker processes (0 = 4 on CUDA, 1 on CPU)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads per fit (0 = cores / jobs)")
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only these row names; the other rows of <protocol>.json are kept")
    ap.add_argument("--list", action="store_true", help="list the protocols and exit")
    return ap.parse_args(argv)


def _es_text(m: dict) -> str:
    """The early-stopping pick for the progress line: '23.90 dB @120'."""
    return "–" if m.get("psnr_es") is None else f"{m['psnr_es']:.2f} dB @{m['iter_es']}"


def run_fits(tasks, pool, make_args):
    """Run (protocol, row) tasks in the pool (or in-process); yields (p, r, output) in order.
    A failed fit is yielded as {'error': text}; the others go on."""
    futs = [(p, r, pool.submit(run_row, *make_args(p, r)) if pool else None) for p, r in tasks]
    for p, r, fut in futs:
        try:
            out = fut.result() if fut is not None else run_row(*make_args(p, r))
        except Exception as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        yield p, r, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list or not args.protocols:
        for name, p in protocols.PROTOCOLS.items():
            print(f"{name:28s} {len(p.rows):2d} fits  {p.title}")
        return 0
    unknown = [n for n in args.protocols if n not in protocols.PROTOCOLS]
    if unknown:
        print(f"error: unknown protocol {unknown[0]!r}; valid: "
              f"{', '.join(protocols.PROTOCOLS)}", file=sys.stderr)
        return 2
    chosen = [protocols.PROTOCOLS[n] for n in args.protocols]
    data_arg = args.data or "../shared/data"  # as recorded in the command (repo-root relative)
    args.data = args.data or str(DEFAULT_DATA)
    missing = sorted({r.image for p in chosen for r in p.rows
                      if not (Path(args.data) / r.image).is_file()})
    if missing:
        print(f"error: benchmark image {Path(args.data) / missing[0]} not found; pass "
              f"--data DIR with the folder holding cset9/ and butterfly/", file=sys.stderr)
        return 2

    import torch

    from dipddpm.errors import DipddpmError
    from dipddpm.methods.fitting import pick_device

    try:
        dev = pick_device(args.device)
    except DipddpmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    jobs = args.jobs or (4 if dev.type == "cuda" else 1)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1
                               else torch.get_num_threads())
    out_dir = Path(args.out)
    done = {p.name: earlier_rows(out_dir / f"{p.name}.json", p) if args.only is not None
            else {} for p in chosen}
    tasks = [(p, r) for p in chosen for r in p.rows if args.only is None or r.name in args.only]
    tasks.sort(key=lambda pr: -_cost(pr[1]))  # longest first packs the workers best
    # rows that try to reach a baseline's best run after it, with psnr_threshold = its max
    first = [(p, r) for p, r in tasks if p.reach_baseline in (None, r.name)]
    second = [(p, r) for p, r in tasks if p.reach_baseline not in (None, r.name)]
    hw = provenance.hardware(dev)
    print(f"{len(tasks)} fits on {hw['name']} with {jobs} job(s) x {threads} thread(s)",
          flush=True)

    def command(p: protocols.Protocol, only: list[str] | None) -> str:
        cmd = [p.name, "--device", args.device, "--data", data_arg, "--jobs", str(jobs),
               "--threads", str(threads)]
        if only is not None:
            cmd += ["--only", *[r.name for r in p.rows if r.name in only]]
        return provenance.command("benchmarks/reproduce.py", cmd)

    run_info = {**provenance.git_sha(), "hardware": hw, "jobs": jobs, "threads": threads}

    def make_args(p, r):
        target = reach_target(done[p.name], p.reach_baseline)
        threshold = target[0] if target and r.name != p.reach_baseline else None
        return r, args.data, str(dev), threads, threshold

    t0 = time.perf_counter()
    pool = (cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) if jobs > 1
            else None)
    n = 0
    try:
        for wave in (first, second):
            for p, r, out in run_fits(wave, pool, make_args):
                out["run"] = {"date": provenance.now(), **run_info,
                              "command": command(p, args.only), **out.get("run", {})}
                done[p.name][r.name] = out
                n += 1
                m = out.get("metrics")
                msg = (f"best {m['psnr_gt_best']:.2f} dB @{m['psnr_best_iter']}  final "
                       f"{m['psnr_gt_final']:.2f}  smoothed {m['psnr_gt_sm_final']:.2f}  "
                       f"GT-free {_es_text(m)}  "
                       f"({out['run']['wall_s']:.0f} s)" if m else out["error"])
                print(f"[{n}/{len(tasks)}] {p.name}/{r.name}: {msg}", flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)

    failed = sum("error" in done[p.name].get(r.name, {}) for p, r in tasks)
    for p in {p.name: p for p, _ in tasks}.values():  # the protocols that ran a row
        doc = {"schema": "dipddpm.reproduce/2", "protocol": p.name, "title": p.title,
               "comparable": p.comparable, "source_ref": p.source_ref, "note": p.note,
               "headline": list(p.headline), "date": provenance.now(),
               "command": command(p, None),  # the whole protocol
               "torch": torch.__version__, **summarize(p, done[p.name])}
        path = out_dir / f"{p.name}.json"
        provenance.write_json(path, doc)
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
