"""Run a sweeps/*.yaml search study with Optuna alone (no Ray): for GPU machines without Ray.

    python benchmarks/search.py sweeps/beat_staged_f16.yaml --device cuda --jobs 4 --timeout 480
    python benchmarks/search.py sweeps/reach_fast_f16.yaml --device cuda --jobs 4 \
        --target-from benchmarks/results/staged_dip_f16.json --timeout 300
    python benchmarks/search.py sweeps/beat_staged_f16_mini.yaml --device cpu

The spec is parsed and validated by the runner's own `dipddpm.sweep.spec` and its space sampled
define-by-run by `dipddpm.sweep.space` (neither imports Ray); `scheduler: asha` becomes Optuna's
SuccessiveHalvingPruner on the spec's best-so-far metric (iterations as the resource), so a
stopped trial is PRUNED, not COMPLETE. `--jobs N` worker processes share one Optuna journal file
(`<out>/<study>.optuna.log`: resumable, `optuna-dashboard` can open it). The result —
best trial, its max psnr_gt and the honest number (final smoothed output at its fixed iteration
count, no ground-truth stopping) — is written to `<out>/search-<study>.json` for the ledger.

With Ray installed, the same spec runs on a cluster through `dipddpm sweep run SPEC`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocols  # noqa: E402
import provenance  # noqa: E402

provenance.ensure_repo_on_path()

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY_KEY = {"psnr_best": "psnr_gt_best", "psnr_best_iter": "psnr_best_iter"}
STATES = ("COMPLETE", "PRUNED", "FAIL")


def make_objective(spec, device: str, threads: int):
    """The Optuna objective: sample the spec's space, fit, report best-so-far for pruning."""
    import optuna
    import torch

    from dipddpm.config import build, to_dict
    from dipddpm.methods import METHODS
    from dipddpm.methods.fitting import pick_device
    from dipddpm.sweep.space import decode, define_by_run

    method = METHODS.get(spec.method)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if threads:
        torch.set_num_threads(threads)
    space = define_by_run(spec.search)
    asha = spec.scheduler.type == "asha"
    every = max(10, spec.scheduler.grace_period // 4) if asha else 0

    def objective(trial) -> float:
        params = decode(spec.search, space(trial))
        cfg = build(method.config_cls, {**spec.base_values, **params})
        problem = method.make_problem(dict(spec.problem), cfg)
        trial.set_user_attr("config", to_dict(cfg))

        def report(it, m, state):
            if every and it % every == 0:
                trial.report(float(m[spec.metric]), it)
                if trial.should_prune():
                    trial.set_user_attr("pruned_at", it)
                    raise optuna.TrialPruned()

        result = method.run(cfg, problem, report=report, seed=spec.seed, device=dev)
        trial.set_user_attr("metrics", result.metrics)
        return float(result.metrics[SUMMARY_KEY.get(spec.metric, spec.metric)])

    return objective


def open_study(spec, storage_path: Path):
    """The study in a journal file (safe for several processes; resumable)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(storage_path)))
    s = spec.searcher
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(
                    seed=s.seed, constant_liar=True,
                    n_startup_trials=max(2, min(10, spec.num_samples // 4))),
                "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=s.seed),
                "gp": lambda: optuna.samplers.GPSampler(seed=s.seed)}
    pruner = (optuna.pruners.SuccessiveHalvingPruner(
        min_resource=spec.scheduler.grace_period,
        reduction_factor=int(spec.scheduler.reduction_factor))
        if spec.scheduler.type == "asha" else optuna.pruners.NopPruner())
    return optuna.create_study(study_name=spec.name, storage=storage,
                               sampler=samplers[s.sampler](), pruner=pruner,
                               direction="maximize" if spec.mode == "max" else "minimize",
                               load_if_exists=True)


def worker(spec, device: str, threads: int, storage_path: str, n_trials: int,
           deadline: float) -> None:
    """One process's share of the study: trials until n_trials exist or the deadline."""
    import optuna

    from dipddpm.errors import DipddpmError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, Path(storage_path))
    stop = optuna.study.MaxTrialsCallback(
        n_trials, states=tuple(getattr(optuna.trial.TrialState, s) for s in STATES))

    def log(study, t):
        m = t.user_attrs.get("metrics", {})
        value = f"{t.value:.3f}" if t.value is not None else "–"
        print(f"trial {t.number:3d} {t.state.name:8s} {spec.metric} {value}  max psnr_gt "
              f"{m.get('psnr_gt_best', float('nan')):.2f} @{m.get('psnr_best_iter', '–')}  "
              f"smoothed final {m.get('psnr_gt_sm_final', float('nan')):.2f}  "
              f"{json.dumps(t.params)}", flush=True)

    study.optimize(make_objective(spec, device, threads),
                   timeout=max(1.0, deadline - time.time()), callbacks=[stop, log],
                   catch=(DipddpmError, FloatingPointError))


def summarize(study, baseline: dict | None) -> dict:
    """Best trial, top 5, the honest number, and the reach goal against our baseline."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    states = {s: sum(t.state.name == s for t in trials) for s in STATES}

    def row(t):
        return {"number": t.number, "value": t.value, "params": t.params,
                "metrics": t.user_attrs.get("metrics", {})}

    ranked = sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    honest = max(done, key=lambda t: t.user_attrs["metrics"]["psnr_gt_sm_final"], default=None)
    out = {"n_trials": len(trials), "states": states,
           "best": row(ranked[0]) if ranked else None, "top": [row(t) for t in ranked[:5]],
           "honest_best": row(honest) if honest else None}
    if baseline is not None:
        budget = 0.4 * baseline["psnr_best_iter"]
        reach = [t for t in done if (t.user_attrs["metrics"].get("first_reach_iter") or 1e9)
                 <= budget]
        fastest = min(reach, key=lambda t: t.user_attrs["metrics"]["first_reach_iter"],
                      default=None)
        out["baseline"] = baseline
        out["reach"] = {"target_psnr": baseline["psnr_gt_best"], "max_iter": budget,
                        "fastest": row(fastest) if fastest else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="a sweeps/*.yaml spec")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per worker")
    ap.add_argument("--trials", type=int, default=0, help="trials in all (0 = num_samples)")
    ap.add_argument("--timeout", type=float, default=0,
                    help="stop starting trials after S seconds (0 = the spec's time_budget_s)")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="spec override a.b=value, e.g. --set problem.image=data/F16.png")
    ap.add_argument("--target-from", default=None,
                    help="a staged_dip_f16.json: its 'dip' row's max psnr_gt is the reach "
                         "goal (first_reach_iter <= 40%% of its best iteration)")
    ap.add_argument("--smoke", action="store_true", help="apply the spec's smoke: block")
    ap.add_argument("--out", default=str(RESULTS), help="folder for search-<study>.json")
    args = ap.parse_args(argv)

    import optuna

    from dipddpm.errors import DipddpmError
    from dipddpm.methods.fitting import pick_device
    from dipddpm.sweep.spec import load_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    baseline = None
    sets = list(args.sets)
    if args.target_from:
        rows = {r["name"]: r for r in json.loads(Path(args.target_from).read_text())["rows"]}
        m = rows["dip"]["metrics"]
        baseline = {"psnr_gt_best": m["psnr_gt_best"], "psnr_best_iter": m["psnr_best_iter"],
                    "file": args.target_from}
        sets.append(f"fixed.psnr_threshold={m['psnr_gt_best']}")
    try:
        spec = load_spec(args.spec, smoke=args.smoke, sets=sets,
                         num_samples=args.trials or None)
    except DipddpmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage_path = out / f"{spec.name}.optuna.log"
    open_study(spec, storage_path)
    deadline = time.time() + (args.timeout or spec.time_budget_s or 10 ** 9)
    hw = provenance.hardware(pick_device(args.device))
    print(f"study {spec.name}: {spec.num_samples} trials on {hw['name']} with {args.jobs} "
          f"job(s); journal {storage_path}", flush=True)
    t0 = time.time()
    wargs = (spec, args.device, args.threads, str(storage_path), spec.num_samples, deadline)
    if args.jobs > 1:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=worker, args=wargs) for _ in range(args.jobs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    else:
        worker(*wargs)
    study = open_study(spec, storage_path)
    info = protocols.STUDIES.get(spec.name)
    cmd = [args.spec, "--device", args.device, "--jobs", str(args.jobs)]
    for flag, v in (("--trials", args.trials), ("--timeout", args.timeout),
                    ("--target-from", args.target_from)):
        if v:
            cmd += [flag, str(v)]
    for item in args.sets:
        cmd += ["--set", item]
    doc = {"schema": "dipddpm.search/1", "study": spec.name, "spec": args.spec,
           "method": spec.method, "metric": spec.metric,
           "direction": study.direction.name.lower(),
           "source": info.source if info else None, "comparable": info.comparable if info
           else False, "hardware": hw, "date": provenance.now(), **provenance.git_sha(),
           "command": provenance.command("benchmarks/search.py", cmd),
           "wall_s": time.time() - t0, "storage": str(storage_path),
           "optuna": optuna.__version__, **summarize(study, baseline)}
    best = doc["best"]
    if "reach" in doc:
        doc["goal_met"] = doc["reach"]["fastest"] is not None
    elif info and info.source is not None and best:
        doc["goal_met"] = best["metrics"].get("psnr_gt_best", 0) > info.source
    path = out / f"search-{spec.name}.json"
    provenance.write_json(path, doc)
    print(f"wrote {path}")
    if best:
        print(f"best trial {best['number']}: {spec.metric} {best['value']:.3f}  "
              f"{json.dumps(best['params'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
