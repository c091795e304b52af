"""Run a sweeps/*.yaml search study without a Ray cluster: for GPU machines that have none.

    python benchmarks/search.py sweeps/beat_staged_f16.yaml --device cuda --jobs 4 --timeout 480
    python benchmarks/search.py sweeps/reach_fast_f16.yaml --device cuda --jobs 4 \
        --target-from benchmarks/results/staged_dip_f16.json --timeout 300
    python benchmarks/search.py sweeps/beat_staged_f16_mini.yaml --device cpu
    python benchmarks/search.py sweeps/reach_fast_f16_mini.yaml --device cpu \
        --target-from benchmarks/results/staged_dip_f16_mini.json

The spec is parsed and validated by the runner's own `dipddpm.sweep.spec`, its space sampled
define-by-run by `dipddpm.sweep.spec.space` and its seeded sampler built by
`dipddpm.sweep.samplers`. Trials are stopped by the very scheduler `sweep run` gives Ray Tune
(the spec's `scheduler:` entry, on the time axis of its rung rule: benchmarks/sweep_scheduler.py
drives it without a Tune run, so Ray must be installed but no Ray starts), so the same YAML
prunes here as in `sweep run`; a stopped trial is PRUNED, not COMPLETE. As the sweep's searcher
does, every report is an intermediate value of its Optuna trial and a trial's value is the
metric of its last report. A trial whose fit raises anything (a bad config, NaN, a CUDA
out-of-memory) is FAIL with its error text, and the study goes on. `--jobs N` worker processes
share one Optuna journal file (`<out>/<study>.optuna.log`: resumable, `optuna-dashboard` can
open it) and one scheduler (in a manager process, as Tune's driver holds one; a resumed study's
trials are replayed into it first). The result is written to `<out>/search-<study>.json` for
the ledger: the best trial, its max psnr_gt, the honest number (the best trial's final smoothed
output at its fixed iteration count: no ground-truth stopping) and, for a reach study, the
fastest trial's first iteration at the baseline's max psnr_gt as a fraction of the baseline's
best iteration.

A reach study (protocols.STUDIES kind 'reach') needs --target-from: the reproduce.py JSON of its
baseline protocol, on the same image, size and noise (a _mini baseline is refused for a
full-size study). `--smoke` runs are pipeline checks: they go to `search-<study>-smoke.json`
and their own journal, are marked smoke and not comparable, and the ledger lists them apart.

The same spec runs on a Ray cluster through `dipddpm sweep run SPEC`.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from multiprocessing.managers import BaseManager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402
import provenance  # noqa: E402
from sweep_scheduler import SweepScheduler  # noqa: E402

provenance.ensure_repo_on_path()

RESULTS = Path(__file__).resolve().parent / "results"
STATES = ("COMPLETE", "PRUNED", "FAIL")
CATCH = (Exception,)  # any failed fit is a FAIL trial (error text kept); the study goes on
HONEST_RULE = ("final smoothed output (psnr_gt_sm_final) of the trial the study's objective "
               "ranked first, at that trial's fixed iteration count: no ground-truth stopping "
               "(the objective itself, max psnr_gt, still uses the ground truth to rank "
               "configurations)")
GT_SELECTED_RULE = ("the trial with the best final smoothed output vs the clean image: "
                    "selected on the ground truth, an upper bound, not an honest number")


class UsageError(Exception):
    """A bad command line (missing or unsuitable --target-from): one line, exit code 2."""


def recording_errors(objective):
    """The objective, with any exception but a prune kept as the trial's 'error' attribute;
    re-raised, so Optuna records a FAIL trial (and, with catch=CATCH, goes on)."""
    import optuna

    def wrapped(trial):
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:1000])
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # after an out-of-memory, free the failed fit's cache
            raise

    return wrapped


class TrialReports:
    """A trial's report callback, as the trainable's: every report goes to the Optuna trial as
    an intermediate value (as the sweep's searcher records it) and to the sweep's scheduler,
    which may stop the trial (a stop at the budget is the trial's end, not a prune)."""

    def __init__(self, trial, scheduler, metric: str, budget: int) -> None:
        self.trial, self.scheduler, self.metric, self.budget = trial, scheduler, metric, budget
        self.tid = str(trial.number)
        self.value: float | None = None  # the metric of the last report: the trial's value
        self.sent: list = []  # [iteration, the report's scheduler keys]: a resumed run replays

    def __call__(self, it: int, m: dict, state) -> None:
        import optuna

        self.value = float(m[self.metric])
        self.trial.report(self.value, it)
        keys = {k: float(m[k]) for k in (self.metric, "iter_final") if m.get(k) is not None}
        self.sent.append([it, keys])
        if self.scheduler.result(self.tid, it, keys) and it < self.budget:
            self.trial.set_user_attr("pruned_at", it)
            raise optuna.TrialPruned()


def make_objective(spec, device: str, threads: int, scheduler):
    """The Optuna objective: sample the spec's space, fit, report to the sweep's scheduler."""
    import optuna
    import torch

    from dipddpm.config import to_dict
    from dipddpm.methods import METHODS
    from dipddpm.methods.device import pick_device
    from dipddpm.sweep.spec.space import decode, define_by_run
    from dipddpm.sweep.trainable import trial_config

    method = METHODS.get(spec.method)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(threads)
    space = define_by_run(spec.search)

    def objective(trial) -> float:
        params = decode(spec.search, space(trial))
        cfg = trial_config(spec, params)
        problem = method.make_problem(dict(spec.problem), cfg)
        trial.set_user_attr("config", to_dict(cfg))
        trial.set_user_attr("torch_threads", torch.get_num_threads())
        reports = TrialReports(trial, scheduler, spec.metric, int(getattr(cfg, method.iters_key)))
        scheduler.start(reports.tid)
        failed = True  # until the fit returns or the scheduler stops it
        try:
            result = method.run(cfg, problem, report=reports, seed=spec.trial_seed(params),
                                device=dev)
            failed = False
        except optuna.TrialPruned:
            failed = False
            raise
        finally:
            scheduler.end(reports.tid, error=failed)
            trial.set_user_attr("scheduler_reports", reports.sent)
        trial.set_user_attr("metrics", result.metrics)
        return reports.value

    return recording_errors(objective)


def open_study(spec, storage_path: Path):
    """The study in a journal file (safe for several processes; resumable). Its pruner is
    Optuna's no-op: the sweep's scheduler stops trials (TrialReports)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from dipddpm.sweep.samplers import make_sampler

    storage = JournalStorage(JournalFileBackend(str(storage_path)))
    return optuna.create_study(study_name=spec.name, storage=storage,
                               sampler=make_sampler(spec), pruner=optuna.pruners.NopPruner(),
                               direction="maximize" if spec.mode == "max" else "minimize",
                               load_if_exists=True)


class SchedulerManager(BaseManager):
    """Serves one sweep scheduler to every worker process (as Tune's driver holds one)."""


SchedulerManager.register("SweepScheduler", SweepScheduler)


def serve_scheduler(spec, jobs: int, study):
    """The sweep's scheduler: in this process for one job, else in a manager process (returned
    too, to shut down). The trials a resumed study already holds are replayed into it first, in
    the order they were started."""
    manager = None
    if jobs == 1:
        scheduler = SweepScheduler.of(spec)
    else:
        manager = SchedulerManager(ctx=mp.get_context("spawn"))
        manager.start()
        scheduler = manager.SweepScheduler(spec.scheduler, spec.method, spec.metric, spec.mode)
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        sent = t.user_attrs.get("scheduler_reports")
        if sent:
            scheduler.replay(str(t.number), [(it, keys) for it, keys in sent], math.inf)
    return scheduler, manager


def worker(spec, device: str, threads: int, storage_path: str, n_trials: int,
           deadline: float, scheduler) -> None:
    """One process's share of the study: trials until n_trials exist or the deadline."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, Path(storage_path))
    stop = optuna.study.MaxTrialsCallback(
        n_trials, states=tuple(getattr(optuna.trial.TrialState, s) for s in STATES))

    def log(study, t):
        m = t.user_attrs.get("metrics", {})
        value = f"{t.value:.3f}" if t.value is not None else "–"
        what = (t.user_attrs.get("error", "") if t.state.name == "FAIL" else
                f"max psnr_gt {m.get('psnr_gt_best', float('nan')):.2f} "
                f"@{m.get('psnr_best_iter', '–')}  smoothed final "
                f"{m.get('psnr_gt_sm_final', float('nan')):.2f}")
        if t.state.name == "PRUNED":
            what = f"stopped at iteration {t.user_attrs.get('pruned_at')}"
        print(f"trial {t.number:3d} {t.state.name:8s} {spec.metric} {value}  {what}  "
              f"{json.dumps(t.params)}", flush=True)

    study.optimize(make_objective(spec, device, threads, scheduler),
                   timeout=max(1.0, deadline - time.time()), callbacks=[stop, log],
                   catch=CATCH)


def summarize(study, baseline: dict | None = None, max_fraction: float | None = None) -> dict:
    """Best trial, top 5, the honest number, failures, and the reach goal against a baseline.

    Reach: a COMPLETE trial's first_reach_iter is the first iteration (exact: the fit checks
    every iteration against psnr_threshold = the baseline's max psnr_gt, which was itself
    tracked every iteration); its fraction = first_reach_iter / the baseline's best iteration.
    A PRUNED trial stopped early and has no exact first_reach_iter: it is not counted.
    """
    import optuna

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    counts = Counter(t.state.name for t in trials)
    states = {s: counts.pop(s, 0) for s in STATES} | dict(counts)  # e.g. RUNNING: a dead worker

    def row(t):
        return {"number": t.number, "value": t.value, "params": t.params,
                "metrics": t.user_attrs.get("metrics", {})}

    ranked = sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    out = {"n_trials": len(trials), "states": states,
           "best": row(ranked[0]) if ranked else None, "top": [row(t) for t in ranked[:5]],
           "failures": [{"number": t.number, "params": t.params,
                         "error": t.user_attrs.get("error", "(no error text recorded)")}
                        for t in trials if t.state == optuna.trial.TrialState.FAIL]}
    if ranked and "psnr_gt_sm_final" in ranked[0].user_attrs["metrics"]:  # an image fit
        m = ranked[0].user_attrs["metrics"]
        out["honest"] = {"rule": HONEST_RULE, "number": ranked[0].number,
                         "params": ranked[0].params, "psnr_gt_sm_final": m["psnr_gt_sm_final"],
                         "iters": m["iters"]}
        gt = max(done, key=lambda t: t.user_attrs["metrics"]["psnr_gt_sm_final"])
        out["gt_selected_sm"] = {"rule": GT_SELECTED_RULE, **row(gt)}
    if baseline is not None:
        base_iter = baseline["psnr_best_iter"]
        reached = [t for t in done if t.user_attrs["metrics"].get("first_reach_iter") is not None]
        fastest = min(reached, key=lambda t: t.user_attrs["metrics"]["first_reach_iter"],
                      default=None)
        out["baseline"] = baseline
        out["reach"] = {"target_psnr": baseline["psnr_gt_best"], "baseline_best_iter": base_iter,
                        "max_fraction": max_fraction, "n_reached": len(reached),
                        "granularity": "exact: every iteration on both sides",
                        "fastest": None}
        if fastest is not None:
            it = fastest.user_attrs["metrics"]["first_reach_iter"]
            out["reach"]["fastest"] = {**row(fastest), "first_reach_iter": it,
                                       "fraction": it / base_iter}
    return out


def load_baseline(path: str, study: protocols.Study | None, smoke: bool) -> dict:
    """The reach target: the baseline row of a reproduce.py JSON, checked against the study."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"--target-from {path}: cannot read it ({e})") from None
    p = protocols.PROTOCOLS.get(doc.get("protocol", "")) if isinstance(doc, dict) else None
    if p is None or p.reach_baseline is None:
        raise UsageError(f"--target-from {path}: not a reproduce.py result of a protocol with "
                         f"a reach baseline (e.g. benchmarks/results/staged_dip_f16.json)")
    if study is not None and study.baseline is not None:
        allowed = {study.baseline} | ({study.baseline + "_mini"} if smoke else set())
        if p.name not in allowed:
            raise UsageError(f"{study.name} needs a {study.baseline} baseline, but {path} is "
                             f"{p.name}; run `python benchmarks/reproduce.py {study.baseline}`")
    if study is not None and study.comparable and not smoke and not doc.get("comparable"):
        raise UsageError(f"{path} ({p.name}) is not comparable (a _mini protocol): its target "
                         f"cannot be used for the full-size study {study.name}")
    rows = {r.get("name"): r for r in doc.get("rows", [])}
    m = rows.get(p.reach_baseline, {}).get("metrics")
    if not m:
        raise UsageError(f"--target-from {path}: its {p.reach_baseline!r} row has no "
                         f"measurement; re-run it")
    return {"psnr_gt_best": m["psnr_gt_best"], "psnr_best_iter": m["psnr_best_iter"],
            "psnr_noisy_input": m["psnr_noisy_input"],
            "size": rows[p.reach_baseline].get("size"), "file": path, "protocol": p.name,
            "row": p.reach_baseline, "comparable": bool(doc.get("comparable"))}


def check_same_problem(spec, baseline: dict) -> None:
    """The study's noisy image must be the baseline's: same size and same noisy-input PSNR."""
    from dipddpm.methods import METHODS
    from dipddpm.metrics import psnr
    from dipddpm.sweep.trainable import trial_config

    problem = METHODS.get(spec.method).make_problem(dict(spec.problem), trial_config(spec, {}))
    size = list(problem.clean.shape[-2:])
    if size != baseline["size"]:
        raise UsageError(f"the study's image is {size[0]}x{size[1]} but the baseline in "
                         f"{baseline['file']} is {'x'.join(map(str, baseline['size'] or '?'))}; "
                         "a target from another image size is not comparable")
    noisy = psnr(problem.observed, problem.clean)
    if abs(noisy - baseline["psnr_noisy_input"]) > 1e-6:
        raise UsageError(f"the study's noisy image differs from the baseline's (noisy input "
                         f"{noisy:.4f} vs {baseline['psnr_noisy_input']:.4f} dB): use the same "
                         "image, sigma and noise seed")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="a sweeps/*.yaml spec")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads per worker (0 = cores / jobs)")
    ap.add_argument("--trials", type=int, default=0, help="trials in all (0 = num_samples)")
    ap.add_argument("--timeout", type=float, default=0,
                    help="stop starting trials after S seconds (0 = the spec's time_budget_s)")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="spec override a.b=value, e.g. --set problem.image=data/F16.png")
    ap.add_argument("--target-from", default=None,
                    help="reach studies: the baseline protocol's reproduce.py JSON (e.g. "
                         "benchmarks/results/staged_dip_f16.json); its baseline row's max "
                         "psnr_gt is the target")
    ap.add_argument("--smoke", action="store_true",
                    help="apply the spec's smoke: block (recorded as a smoke run, apart)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for search-<study>.json")
    return ap.parse_args(argv)


def load(args) -> tuple:
    """(study name, protocols.STUDIES entry or None, baseline or None, the parsed spec);
    raises DipddpmError or UsageError for a bad command line."""
    from dipddpm.methods.device import pick_device
    from dipddpm.sweep.spec import load_spec, load_yaml

    sets = list(args.sets)
    name = str(load_yaml(args.spec)["name"])  # the study (load_spec may suffix -smoke)
    info = protocols.STUDIES.get(name)
    if info is not None and info.kind == "reach" and not args.target_from:
        raise UsageError(f"{info.name} is a reach study: pass --target-from with the "
                         f"baseline's result, e.g. benchmarks/results/{info.baseline}.json "
                         f"(python benchmarks/reproduce.py {info.baseline})")
    baseline = (load_baseline(args.target_from, info, args.smoke) if args.target_from
                else None)
    if baseline is not None:
        sets.append(f"fixed.psnr_threshold={baseline['psnr_gt_best']!r}")
    spec = load_spec(args.spec, smoke=args.smoke, sets=sets, num_samples=args.trials or None)
    if baseline is not None:
        check_same_problem(spec, baseline)
    pick_device(args.device)
    return name, info, baseline, spec


def run_workers(args, spec, threads: int, storage_path: Path, deadline: float) -> list:
    """The study's trials in --jobs processes (or this one) with one sweep scheduler; the
    workers' exit codes."""
    study = open_study(spec, storage_path)
    scheduler, manager = serve_scheduler(spec, args.jobs, study)
    wargs = (spec, args.device, threads, str(storage_path), spec.num_samples, deadline,
             scheduler)
    exit_codes = [0]
    try:
        if args.jobs > 1:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=worker, args=wargs) for _ in range(args.jobs)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            exit_codes = [p.exitcode for p in procs]
            if any(exit_codes):
                print(f"warning: worker exit codes {exit_codes}: a worker died; its running "
                      "trial stays RUNNING in the journal", file=sys.stderr)
        else:
            worker(*wargs)
    finally:
        if manager is not None:
            manager.shutdown()
    return exit_codes


def command_of(args, threads: int) -> str:
    cmd = [args.spec, "--device", args.device, "--jobs", str(args.jobs), "--threads",
           str(threads)]
    for flag, v in (("--trials", args.trials), ("--timeout", args.timeout),
                    ("--target-from", args.target_from)):
        if v:
            cmd += [flag, str(v)]
    for item in args.sets:
        cmd += ["--set", item]
    if args.smoke:
        cmd.append("--smoke")
    return provenance.command("benchmarks/search.py", cmd)


def goal_met(doc: dict, info, smoke: bool) -> bool | None:
    best = doc["best"]
    if smoke or info is None:
        return None
    if info.kind == "reach":
        fastest = doc["reach"]["fastest"]
        return fastest is not None and fastest["fraction"] <= info.max_fraction
    if info.source is not None and best:
        return best["metrics"].get("psnr_gt_best", 0) > info.source
    return None


def document(args, run: dict, spec, study, info, baseline) -> dict:
    """The result file's content: provenance, the run's settings, the study's summary."""
    import optuna

    torch_threads = sorted({t.user_attrs["torch_threads"] for t in study.get_trials()
                            if "torch_threads" in t.user_attrs})
    doc = {"schema": "dipddpm.search/2", "study": run["name"], "spec": args.spec,
           "smoke": args.smoke, "kind": info.kind if info else "beat",
           "method": spec.method, "metric": spec.metric,
           "direction": study.direction.name.lower(),
           "source": info.source if info else None,
           "comparable": bool(info and info.comparable and not args.smoke),
           "hardware": run["hardware"], "date": provenance.now(), **provenance.git_sha(),
           "command": command_of(args, run["threads"]),
           "jobs": args.jobs, "threads": run["threads"], "torch_threads": torch_threads,
           "wall_s": run["wall_s"], "trials_before": run["trials_before"],
           "worker_exit_codes": run["exit_codes"],
           "storage": provenance.rel(run["storage"]), "optuna": optuna.__version__,
           "scheduler": {"type": spec.scheduler.type,
                         "time_attr": SweepScheduler.of(spec).time_attr},
           **summarize(study, baseline,
                       (info and info.max_fraction) or protocols.REACH_FRACTION)}
    doc["goal_met"] = goal_met(doc, info, args.smoke)
    return doc


def main(argv: list[str] | None = None) -> int:
    import optuna

    from dipddpm.errors import DipddpmError
    from dipddpm.methods.device import pick_device

    args = parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        name, info, baseline, spec = load(args)
    except (DipddpmError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    tag = name + ("-smoke" if args.smoke else "")  # a smoke run has its own journal and JSON
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage_path = out / f"{tag}.optuna.log"
    trials_before = len(open_study(spec, storage_path).get_trials(deepcopy=False))
    deadline = time.time() + (args.timeout or spec.time_budget_s or 10 ** 9)
    hw = provenance.hardware(pick_device(args.device))
    print(f"study {tag}: {spec.num_samples} trials on {hw['name']} with {args.jobs} job(s) x "
          f"{threads} thread(s); journal {storage_path}"
          + (f" (resuming: {trials_before} trials already)" if trials_before else ""),
          flush=True)
    t0 = time.time()
    exit_codes = run_workers(args, spec, threads, storage_path, deadline)
    run = {"name": name, "hardware": hw, "threads": threads, "wall_s": time.time() - t0,
           "trials_before": trials_before, "exit_codes": exit_codes, "storage": storage_path}
    study = open_study(spec, storage_path)
    doc = document(args, run, spec, study, info, baseline)
    path = out / f"search-{tag}.json"
    provenance.write_json(path, doc)
    print(f"wrote {path}")
    best = doc["best"]
    if best:
        print(f"best trial {best['number']}: {spec.metric} {best['value']:.3f}  "
              f"{json.dumps(best['params'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
