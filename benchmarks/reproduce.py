"""Reproduce the source reports' numbers with our code: named protocols of fixed runs.

    python benchmarks/reproduce.py staged_dip_f16 guided_dip_butterfly dip_cset9 --device cuda
    python benchmarks/reproduce.py staged_dip_f16_mini guided_dip_butterfly_mini dip_cset9_mini
    python benchmarks/reproduce.py --list

Protocols (benchmarks/protocols.py): `staged_dip_f16` (plain DIP and the staged-DIP source's
schedulers on F16), `guided_dip_butterfly` (the guided-DIP source's backbone x beta schedule
table), `dip_cset9` (DIP over the 9 images), and `*_mini` versions for 2 CPU cores that are
NOT comparable to the papers. Each protocol writes `<out>/<protocol>.json` with the source
numbers, ours, the hardware, date, git sha and the command; `benchmarks/ledger.py` turns those
files into benchmarks/RESULTS.md.

Fits run in parallel worker processes with --jobs N (default: 4 on CUDA, where one small net
leaves most of an H100 idle; 1 on CPU). The ground truth is used for metrics only.
Set GIT_SHA=<sha> when the tree has no .git (e.g. a copied working tree on a GPU machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
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

DEFAULT_DATA = provenance.REPO.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
CURVE_KEYS = ("psnr_gt", "psnr_gt_sm", "psnr_noisy")


def run_row(row: protocols.Row, data_dir: str, device: str, threads: int | None) -> dict:
    """One fit (runs in a worker process or in-process); returns metrics and the psnr curve."""
    import torch

    from dipddpm.config import build, to_dict
    from dipddpm.methods import METHODS
    from dipddpm.methods.fitting import pick_device
    from dipddpm.methods.problems import image_problem

    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its kernels
    method = METHODS.get(row.method)
    cfg = build(method.config_cls, {**method.presets[row.preset], **row.overrides})
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
            "size": list(problem.clean.shape[-2:]), "curve": curve}


def first_reach(curve: dict, target: float) -> int | None:
    """First reported iteration whose psnr_gt >= target (report granularity)."""
    for it, v in zip(curve["iter"], curve["psnr_gt"], strict=True):
        if v >= target:
            return it
    return None


def summarize(p: protocols.Protocol, done: dict[str, dict]) -> dict:
    """Rows with source vs ours, the aggregates, and 'reach the baseline's best' iterations."""
    rows = []
    for r in p.rows:
        out = done[r.name]
        m = out.get("metrics", {})
        ours = {k: m.get(k) for k in (*r.source, "psnr_gt_best", "psnr_best_iter",
                                      "psnr_gt_final", "psnr_gt_sm_final", "psnr_noisy_input")}
        rows.append({"name": r.name, "label": r.label, "method": r.method, "preset": r.preset,
                     "image": r.image, "overrides": r.overrides, "source": r.source,
                     "ours": ours, **out})
    aggs = []
    for a in p.aggregates:
        vals = [d["metrics"][a.metric] for d in done.values() if "metrics" in d]
        aggs.append({"name": a.name, "metric": a.metric, "label": a.label, "source": a.source,
                     "ours": statistics.fmean(vals) if vals and len(vals) == len(p.rows)
                     else None, "n": len(vals)})
    derived = {}
    base = done.get(p.reach_baseline or "", {})
    if "metrics" in base:
        target = base["metrics"]["psnr_gt_best"]
        base_iter = base["metrics"]["psnr_best_iter"]
        reach = {}
        for r in p.rows:
            if r.name != p.reach_baseline and "curve" in done[r.name]:
                it = first_reach(done[r.name]["curve"], target)
                reach[r.name] = {"iter": it, "fraction": None if it is None else it / base_iter}
        derived["reach_baseline"] = {"baseline": p.reach_baseline, "target_psnr": target,
                                     "baseline_best_iter": base_iter, "rows": reach}
    return {"rows": rows, "aggregates": aggs, "derived": derived}


def _cost(row: protocols.Row) -> float:
    size = row.problem.get("size") or 512
    return row.overrides.get("iters", 2000) * size * size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Protocols: " + ", ".join(protocols.PROTOCOLS))
    ap.add_argument("protocols", nargs="*", help="protocol names (see --list)")
    ap.add_argument("--data", default=None,
                    help="folder holding cset9/ and butterfly/ (default: ../shared/data "
                         "next to the repo)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--out", default=str(RESULTS), help="folder for <protocol>.json")
    ap.add_argument("--jobs", type=int, default=0,
                    help="fits run at once in worker processes (0 = 4 on CUDA, 1 on CPU)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads per fit (0 = cores / jobs)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these row names")
    ap.add_argument("--list", action="store_true", help="list the protocols and exit")
    return ap.parse_args(argv)


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

    from dipddpm.methods.fitting import pick_device

    dev = pick_device(args.device)
    jobs = args.jobs or (4 if dev.type == "cuda" else 1)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None)
    tasks = [(p, r) for p in chosen for r in p.rows if args.only is None or r.name in args.only]
    tasks.sort(key=lambda pr: -_cost(pr[1]))  # longest first packs the workers best
    hw = provenance.hardware(dev)
    print(f"{len(tasks)} fits on {hw['name']} with {jobs} job(s)", flush=True)
    done: dict[str, dict[str, dict]] = {p.name: {} for p in chosen}
    t0 = time.perf_counter()
    pool = (cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) if jobs > 1
            else None)
    try:
        runs = []  # (future or None, protocol, row, run_row args)
        for p, r in tasks:
            args_ = (r, args.data, str(dev), threads)
            runs.append((pool.submit(run_row, *args_) if pool else None, p, r, args_))
        for i, (fut, p, r, args_) in enumerate(runs, 1):
            try:
                out = fut.result() if fut is not None else run_row(*args_)
            except Exception as e:  # a failed fit is recorded, the others go on
                out = {"error": f"{type(e).__name__}: {e}"}
            done[p.name][r.name] = out
            m = out.get("metrics")
            msg = (f"best {m['psnr_gt_best']:.2f} dB @{m['psnr_best_iter']}  final "
                   f"{m['psnr_gt_final']:.2f}  smoothed {m['psnr_gt_sm_final']:.2f}  "
                   f"({m['wall_s']:.0f} s)" if m else out["error"])
            print(f"[{i}/{len(tasks)}] {p.name}/{r.name}: {msg}", flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)

    failed = 0
    for p in chosen:
        if args.only is not None:
            p = protocols.subset(p, args.only)
        rows_done = done[p.name]
        failed += sum("error" in d for d in rows_done.values())
        cmd_args = [p.name, "--device", args.device, "--data", data_arg]
        if args.jobs:
            cmd_args += ["--jobs", str(args.jobs)]
        if args.only is not None:
            cmd_args += ["--only", *args.only]
        doc = {"schema": "dipddpm.reproduce/1", "protocol": p.name, "title": p.title,
               "comparable": p.comparable, "source_ref": p.source_ref, "note": p.note,
               "headline": list(p.headline), "hardware": hw, "date": provenance.now(),
               **provenance.git_sha(), "command": provenance.command(
                   "benchmarks/reproduce.py", cmd_args),
               "jobs": jobs, "wall_s": time.perf_counter() - t0, "torch": torch.__version__,
               **summarize(p, rows_done)}
        path = Path(args.out) / f"{p.name}.json"
        provenance.write_json(path, doc)
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
