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
leaves most of an H100 idle; 1 on CPU). With --fuse, rows that differ only in their image
(dip_cset9's nine) run as the members of one fused net, one trial of an image set
(methods/fusion.py; one after the other where the fused net would not fit in the GPU's
memory; `run.fusion` says which). --precision fp32 (default) turns TF32 off, tf32 on; every
row records the flags (benchmarks/precision.py). `<protocol>.json` is rewritten as each row
ends, so a run stopped midway keeps what it measured. The ground truth is used for metrics
only.
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

RESULTS = Path(__file__).resolve().parent / "results"
CURVE_KEYS = ("psnr_gt", "psnr_gt_sm", "psnr_noisy")
# what a row keeps of its run (reproduced from an earlier JSON after --only)
# the GT-free early-stopping pick (dipddpm/early_stop.py): its psnr vs GT, its iteration and
# the gap to the oracle max psnr_gt; rows fitted before the rule existed have none
ES_KEYS = ("psnr_es", "iter_es", "es_gap_db")
RUN_KEYS = ("metrics", "extra", "config", "problem", "size", "curve", "error", "run")


def run_row(row: protocols.Row, data_dir: str, device: str, threads: int,
            psnr_threshold: float | None = None, precision: str = "fp32") -> dict:
    """One fit (runs in a worker process or in-process); returns metrics and the psnr curve.

    psnr_threshold: the fit records the first iteration (exact, every iteration) whose psnr_gt
    is at or above it, as metrics['first_reach_iter']. precision: benchmarks/precision.py's
    mode (fp32: TF32 off), recorded in the row's run.
    """
    t0 = time.perf_counter()
    import torch

    from dipddpm.config import to_dict

    method, cfg, dev = _fit_setup(row, device, threads, psnr_threshold, precision)
    problem = _problem(row, data_dir, cfg)
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
            "run": {"wall_s": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(),
                    **_flags(dev, precision)}}


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
    from dipddpm.early_stop import ES_RULES

    rule = config.get("es_rule")
    if rule is None:
        return None  # fitted before the rule existed
    if rule not in ES_RULES:  # no rule watched the outputs
        return f"{rule} (the last output)"
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
    ap.add_argument("--precision", choices=("fp32", "tf32"), default="fp32",
                    help="fp32: TF32 off (true float32); tf32: TF32 convolutions and matrix "
                         "products (CUDA; recorded in every row)")
    ap.add_argument("--fuse", action="store_true",
                    help="fit rows that differ only in their image as one fused net")
    ap.add_argument("--list", action="store_true", help="list the protocols and exit")
    return ap.parse_args(argv)


def _es_text(m: dict) -> str:
    """The early-stopping pick for the progress line: '23.90 dB @120'."""
    return "–" if m.get("psnr_es") is None else f"{m['psnr_es']:.2f} dB @{m['iter_es']}"


def run_group(rows: list[protocols.Row], data_dir: str, device: str, threads: int,
              psnr_threshold: float | None = None, precision: str = "fp32") -> list[dict]:
    """Rows of one configuration on different images, fitted together as the members of one
    fused net (`run_members`, auto: one after the other where the fused net would not fit in
    the GPU's memory); one output per row, as `run_row` gives."""
    t0 = time.perf_counter()
    import torch

    from dipddpm.config import to_dict
    from dipddpm.methods.fitting import Member
    from dipddpm.methods.fusion import run_members

    method, cfg, dev = _fit_setup(rows[0], device, threads, psnr_threshold, precision)
    problems = [_problem(r, data_dir, cfg) for r in rows]
    members = [Member(pr, method.plan(cfg, pr), int(r.problem.get("seed", 0)))
               for r, pr in zip(rows, problems, strict=True)]
    curves = [{"iter": [], **{k: [] for k in CURVE_KEYS}} for _ in rows]
    all_members = []

    def report(it, metrics, state):
        all_members.append(all(metrics))
        for curve, m in zip(curves, metrics, strict=True):
            if m:
                curve["iter"].append(it)
                for k in CURVE_KEYS:
                    curve[k].append(round(float(m[k]), 4))

    results = run_members(cfg, members, report, device=dev)
    mode = "fused" if all(all_members) else "serial"
    wall = time.perf_counter() - t0  # a row's wall_s: its share, so the rows' sum is the run's
    run = {"wall_s": wall / len(rows), "group_wall_s": wall,
           "torch_threads": torch.get_num_threads(), "fused_with": [r.name for r in rows],
           "fusion": mode, **_flags(dev, precision)}
    return [{"metrics": res.metrics, "extra": res.extra, "config": to_dict(cfg),
             "problem": {**r.problem, "image": r.image}, "size": list(pr.clean.shape[-2:]),
             "curve": curve, "run": run}
            for r, pr, res, curve in zip(rows, problems, results, curves, strict=True)]


def _flags(dev, precision: str) -> dict:
    import precision as prec

    return {"precision_flags": prec.flags(dev, precision)}


def _fit_setup(row: protocols.Row, device: str, threads: int, psnr_threshold, precision):
    """(method, config, device) of a row, with the torch threads and precision set."""
    import precision as prec
    import torch

    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.methods.device import pick_device

    torch.set_num_threads(threads)
    dev = pick_device(device)
    prec.set_precision(precision, benchmark=dev.type == "cuda")  # fixed size: cuDNN picks
    method = METHODS.get(row.method)
    extra = {} if psnr_threshold is None else {"psnr_threshold": psnr_threshold}
    cfg = build(method.config_cls, {**method.presets[row.preset], **row.overrides, **extra})
    return method, cfg, dev


def _problem(row: protocols.Row, data_dir: str, cfg):
    from dipddpm.methods.problems import image_problem

    return image_problem({"image": str(Path(data_dir) / row.image), **row.problem}, cfg)


def fusion_groups(tasks: list, fuse: bool) -> list[tuple[protocols.Protocol, list]]:
    """The tasks as (protocol, rows) units: with `fuse`, rows of one protocol that differ only
    in their image (same method, preset, overrides and problem keys) form one unit."""
    units: dict = {}
    for p, r in tasks:
        key = (p.name, r.method, r.preset, json.dumps(provenance.clean(r.overrides),
                                                      sort_keys=True),
               json.dumps(provenance.clean(r.problem), sort_keys=True)) if fuse else id(r)
        units.setdefault(key, (p, []))[1].append(r)
    return list(units.values())


def run_fits(units, pool, make_args):
    """Run (protocol, rows) units in the pool (or in-process, one after the other); yields
    (p, row, output) as each unit ends. A failed fit is yielded as {'error': text}; the others
    go on."""
    calls = []
    for p, rows in units:
        args = make_args(p, rows[0])
        calls.append((p, rows, run_row, args) if len(rows) == 1 else
                     (p, rows, run_group, (rows, *args[1:])))
    if pool is None:
        for p, rows, fn, args in calls:
            yield from _outputs(p, rows, lambda fn=fn, args=args: fn(*args))
        return
    waiting = {pool.submit(fn, *args): (p, rows) for p, rows, fn, args in calls}
    for fut in cf.as_completed(waiting):
        p, rows = waiting[fut]
        yield from _outputs(p, rows, fut.result)


def _outputs(p, rows, get):
    try:
        out = get()
        outs = out if isinstance(out, list) else [out]
    except Exception as e:
        outs = [{"error": f"{type(e).__name__}: {e}"} for _ in rows]
    for r, out in zip(rows, outs, strict=True):
        yield p, r, out


def check_args(args) -> int | None:
    """1-line errors for unknown protocols and missing images (exit 2); 0 after --list."""
    if args.list or not args.protocols:
        for name, p in protocols.PROTOCOLS.items():
            print(f"{name:28s} {len(p.rows):2d} fits  {p.title}")
        return 0
    unknown = [n for n in args.protocols if n not in protocols.PROTOCOLS]
    if unknown:
        print(f"error: unknown protocol {unknown[0]!r}; valid: "
              f"{', '.join(protocols.PROTOCOLS)}", file=sys.stderr)
        return 2
    missing = sorted({r.image for n in args.protocols for r in protocols.PROTOCOLS[n].rows
                      if not (Path(args.data) / r.image).is_file()})
    if missing:
        print(f"error: benchmark image {Path(args.data) / missing[0]} not found; pass "
              f"--data DIR with the folder holding cset9/ and butterfly/ (or set "
              f"DIPDDPM_BENCH_DATA)", file=sys.stderr)
        return 2
    return None


def write_protocol(p: protocols.Protocol, done: dict, out_dir: Path, command: str,
                   torch_version: str) -> Path:
    doc = {"schema": "dipddpm.reproduce/2", "protocol": p.name, "title": p.title,
           "comparable": p.comparable, "source_ref": p.source_ref, "note": p.note,
           "headline": list(p.headline), "date": provenance.now(), "command": command,
           "torch": torch_version, **summarize(p, done)}
    path = out_dir / f"{p.name}.json"
    provenance.write_json(path, doc)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_given = args.data
    args.data = args.data or str(provenance.bench_data())
    rc = check_args(args)
    if rc is not None:
        return rc
    chosen = [protocols.PROTOCOLS[n] for n in args.protocols]

    import torch

    from dipddpm.errors import DipddpmError
    from dipddpm.methods.device import pick_device

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
    print(f"{len(tasks)} fits on {hw['name']} with {jobs} job(s) x {threads} thread(s)"
          f"{', images of one configuration fused' if args.fuse else ''}, precision "
          f"{args.precision}", flush=True)

    def command(p: protocols.Protocol, only: list[str] | None) -> str:
        cmd = [p.name, "--device", args.device, *(["--data", data_given] if data_given else []),
               "--jobs", str(jobs), "--threads", str(threads), "--precision", args.precision,
               *(["--fuse"] if args.fuse else [])]
        if only is not None:
            cmd += ["--only", *[r.name for r in p.rows if r.name in only]]
        return provenance.command("benchmarks/reproduce.py", cmd)

    run_info = {**provenance.git_sha(), "hardware": hw, "jobs": jobs, "threads": threads}

    def make_args(p, r):
        target = reach_target(done[p.name], p.reach_baseline)
        threshold = target[0] if target and r.name != p.reach_baseline else None
        return r, args.data, str(dev), threads, threshold, args.precision

    t0 = time.perf_counter()
    run_waves((first, second), args, jobs, done, out_dir, command, make_args, run_info)
    failed = sum("error" in done[p.name].get(r.name, {}) for p, r in tasks)
    for p in {p.name: p for p, _ in tasks}.values():  # the protocols that ran a row
        path = write_protocol(p, done[p.name], out_dir, command(p, None), torch.__version__)
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


def run_waves(waves, args, jobs: int, done: dict, out_dir: Path, command, make_args,
              run_info: dict) -> None:
    """Fit the waves' rows (in `jobs` worker processes when more than one), each result
    written into its protocol's JSON as it comes."""
    import torch

    total = sum(len(w) for w in waves)
    pool = (cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) if jobs > 1
            else None)
    n = 0
    try:
        for wave in waves:
            for p, r, out in run_fits(fusion_groups(wave, args.fuse), pool, make_args):
                out["run"] = {"date": provenance.now(), **run_info,
                              "command": command(p, args.only), **out.get("run", {})}
                done[p.name][r.name] = out
                n += 1
                print(f"[{n}/{total}] {p.name}/{r.name}: {_progress(out)}", flush=True)
                write_protocol(p, done[p.name], out_dir, command(p, None), torch.__version__)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)


def _progress(out: dict) -> str:
    m = out.get("metrics")
    if not m:
        return out["error"]
    return (f"best {m['psnr_gt_best']:.2f} dB @{m['psnr_best_iter']}  final "
            f"{m['psnr_gt_final']:.2f}  smoothed {m['psnr_gt_sm_final']:.2f}  "
            f"GT-free {_es_text(m)}  ({out['run']['wall_s']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
