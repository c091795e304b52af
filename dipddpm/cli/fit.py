"""`dipddpm fit dip|guided-dip|bm3d|nlm`, the image forms: one fit on one image, no Ray needed.

Their options are declared once, with the generic form's, in cli/fit_method.py (which builds
every `fit METHOD` command when it is asked for); this is their run path and their summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from dipddpm.cli.common import check_image_path, print_json
from dipddpm.cli.progress import ProgressReport
from dipddpm.errors import DipddpmError, closest


@dataclass(frozen=True)
class FitArgs:
    """The options of `dipddpm fit dip|guided-dip|bm3d|nlm`."""

    image: str
    preset: str | None = None
    size: int | None = None
    sigma: float | None = None  # None: not given (25, or --problem sigma=)
    iters: int | None = None
    sets: list[str] | None = None
    seed: int = 0
    grey: bool = False
    device: str = "auto"
    save: Path | None = None
    as_json: bool = False
    noise_seed: int | None = None  # the problem's seed alone (default: seed)
    problem_sets: list[str] | None = None  # problem key=value overrides
    replicates: int = 1
    fusion: str = "auto"


def problem_spec(method, a: FitArgs) -> dict:
    """The problem spec: the preset's problem keys, then the defaults (sigma 25, the noise
    seed --seed), then --image/--sigma/--size/--grey/--noise-seed and --problem key=value:
    an option and a --problem pair setting one key is an error naming both. Checked for type
    and range before any image is read."""
    from dipddpm.config import coerce, merge_sources, parse_set

    if a.sigma is not None:
        coerce("--sigma", a.sigma, float)  # finite: inf and nan mean nothing here
    given = merge_sources(parse_set(a.problem_sets, "--problem"), {
        "image": ("--image", a.image), "sigma": ("--sigma", a.sigma), "size": ("--size", a.size),
        "grey": ("--grey", True if a.grey else None), "seed": ("--noise-seed", a.noise_seed)},
        "--problem", "problem")
    spec = {**method.problem_preset(a.preset), "sigma": 25.0, "grey": False, "seed": a.seed,
            **given}
    if method.check_problem_spec is not None:
        method.check_problem_spec(spec)
    return spec


def build_problem(method, method_name: str, cfg, a: FitArgs, spec: dict):
    """The problem of the fit, and a note when the net's size rule crops the image."""
    from dipddpm.data.images import load_image, resize_square
    from dipddpm.methods.problems import net_multiple

    original = load_image(spec["image"], grey=bool(spec.get("grey")))
    if spec.get("size"):
        original = resize_square(original, int(spec["size"]))
    problem = method.make_problem(spec, cfg)
    if problem.clean.shape != original.shape and not a.as_json and hasattr(cfg, "net"):
        typer.echo(f"note: cropped {original.shape[-2]}x{original.shape[-1]} to "
                   f"{problem.clean.shape[-2]}x{problem.clean.shape[-1]} (net {cfg.net!r} "
                   f"needs multiples of {net_multiple(cfg)})", err=True)
    return problem


def check_fit_args(method_name: str, a: FitArgs) -> None:
    from dipddpm.methods import METHODS

    if a.replicates < 1:
        raise DipddpmError(f"--replicates must be >= 1, got {a.replicates}; e.g. --replicates 4")
    if a.replicates > 1 and METHODS.get(method_name).plan is None:
        raise DipddpmError(f"--replicates runs K seeds of a DIP fit (dip, guided-dip); "
                           f"{method_name} has no seed to vary: drop --replicates")
    from dipddpm.methods.fusion import MODES

    if a.fusion not in MODES:
        raise DipddpmError(f"--fusion: fusion mode must be auto, fused or serial, got "
                           f"{a.fusion!r}{closest(a.fusion, list(MODES))}")


def run_fit(method_name: str, a: FitArgs) -> dict:
    """Build the config and problem, run the fit with a progress bar, return the summary.
    replicates K > 1: K fits of the same problem with seeds seed..seed+K-1 (fused or one
    after the other, see methods/fusion.py); the summary is member 0's plus every member's
    metrics and their mean."""
    # torch-heavy imports stay inside the command so `dipddpm --help` and others start fast
    from dipddpm.config import build, merge_sources, parse_set, to_dict
    from dipddpm.data.images import save_image
    from dipddpm.methods import METHODS
    from dipddpm.methods.device import pick_device

    check_fit_args(method_name, a)
    pick_device(a.device)  # a device this machine lacks: before any work
    method = METHODS.get(method_name)
    overrides = merge_sources(parse_set(a.sets), {"iters": ("--iters", a.iters)}, "--set",
                              "config")
    cfg = build(method.config_cls, {**method.preset_values(a.preset), **overrides})
    from dipddpm.methods.study_ensemble import check_replicates

    check_replicates(cfg, a.replicates, where="--replicates")  # K seeds of one observation
    spec = problem_spec(method, a)
    if a.save is not None:
        check_image_path(a.save, "--save")
    problem = build_problem(method, method_name, cfg, a, spec)
    if method.check_trial is not None:  # the rules joining config and problem, before any fit
        method.check_trial(cfg, problem)
    if a.replicates == 1:
        with ProgressReport(cfg.iters, ("psnr_gt", "psnr_best", "psnr_noisy"),
                            enabled=not a.as_json) as report:
            result = method.run(cfg, problem, report=report, seed=a.seed, device=a.device)
        extra = {}
    else:
        results, extra = run_replicates(method_name, cfg, problem, a.seed, a.replicates,
                                        a.fusion, a.device, a.as_json)
        result = results[0]
    summary = {"method": method_name, "preset": a.preset, "image": spec["image"],
               "size": list(problem.clean.shape[-2:]), **result.metrics,
               "config": to_dict(cfg), **extra}
    if result.extra:
        summary.update(result.extra)
    if a.save is not None:
        save_image(result.images.get("output_best", result.images["output"]), a.save)
        summary["saved"] = str(a.save)
    return summary


def run_replicates(method_name: str, cfg, problem, seed: int, K: int, fusion: str, device,
                   as_json: bool) -> tuple[list, dict]:
    """K seeds of one problem as the members of one run; their results and the summary's
    replicates block (mode used, every member's metrics, their mean)."""
    from dipddpm.methods import METHODS
    from dipddpm.methods.device import pick_device
    from dipddpm.methods.fitting import Member
    from dipddpm.methods.fusion import fusion_mode, run_members

    plan_of = METHODS.get(method_name).plan  # dip_plan, make_plan: a method with a stage plan
    members = [Member(problem, plan_of(cfg, problem), seed + i) for i in range(K)]
    dev = pick_device(device)
    mode = fusion_mode(cfg, members, dev, fusion)  # the mode run_members will run
    total = cfg.iters * (K if mode == "serial" else 1)
    with ProgressReport(total, ("psnr_gt", "psnr_best"), enabled=not as_json,
                        description=f"{K} {mode} fits") as progress:
        def report(it, metrics, state):
            i = next(k for k, m in enumerate(metrics) if m)
            progress(i * cfg.iters + it if mode == "serial" else it, metrics[i], state)

        results = run_members(cfg, members, report, device=dev, mode=mode)
    each = [{"seed": seed + i, **r.metrics} for i, r in enumerate(results)]
    mean = {k: sum(m[k] for m in each) / K for k, v in each[0].items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "seed"
            and all(isinstance(m[k], int | float) for m in each)}
    out = {"replicates": K, "fusion": mode, "members": each, "mean": mean}
    from dipddpm.methods.study_ensemble import output_rule

    rule = output_rule(cfg)
    if rule.ensemble:  # the mean of the K fits' outputs (one observation)
        from dipddpm.methods.output_rules import ensemble_metrics

        out["ensemble"] = ensemble_metrics([r.images for r in results], problem.clean,
                                           problem.observed, rule, cfg.psnr_uint8)
    return results, out


def _print_summary(s: dict) -> None:
    typer.echo(
        f"{s['method']} on {s['image']} {s['size'][0]}x{s['size'][1]}: "
        f"{s['iters']} iterations in {s['wall_s']:.1f}s\n"
        f"  noisy input   {s['psnr_noisy_input']:.2f} dB\n"
        f"  final output  {s['psnr_gt_final']:.2f} dB   smoothed {s['psnr_gt_sm_final']:.2f} dB"
        f"   SSIM {s['ssim_gt_final']:.4f}\n"
        f"  best          {s['psnr_gt_best']:.2f} dB at iteration {s['psnr_best_iter']}"
        + (f"\n  GT-free pick  {s['psnr_es']:.2f} dB   smoothed {s['psnr_es_sm']:.2f} dB   "
           f"reported ({s['config'].get('output')}) {s['psnr_output']:.2f} dB"
           if "psnr_output" in s and "psnr_es_sm" in s else "")
        + (f"\n  saved         {s['saved']}" if s.get("saved") else ""))
    if s.get("replicates"):
        typer.echo(f"  {s['replicates']} replicates ({s['fusion']}): member 0 above; per seed:")
        for m in [*s["members"], {"seed": "mean", **s["mean"]}]:
            typer.echo(f"    seed {m['seed']!s:>4}  final {m['psnr_gt_final']:.2f} dB  "
                       f"smoothed {m['psnr_gt_sm_final']:.2f} dB  best {m['psnr_gt_best']:.2f} "
                       f"dB  SSIM {m['ssim_gt_final']:.4f}")
        if s.get("ensemble"):
            e = s["ensemble"]
            typer.echo(f"  ensemble (mean of the {s['replicates']} outputs): GT-free pick "
                       f"{e['psnr_output']:.2f} dB  final {e['psnr_gt_final']:.2f} dB  at "
                       f"each oracle best {e['psnr_gt_best']:.2f} dB")


def image_form(method_name: str):
    """The callback of an image form (`fit dip|guided-dip|bm3d|nlm`): its keywords are FitArgs'
    (the options cli/fit_method.py declares), its output the summary or --json."""

    def command(**kw) -> None:
        summary = run_fit(method_name, FitArgs(**kw))
        if kw["as_json"]:
            print_json(summary)
        else:
            _print_summary(summary)

    return command
