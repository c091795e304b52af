"""`dipddpm fit dip|guided-dip`: one DIP or guided-DIP fit on one image, no Ray needed."""

from __future__ import annotations

from pathlib import Path

import typer

from dipddpm.cli.app import check_image_path, fit_app, print_json, user_errors
from dipddpm.cli.progress import ProgressReport


def run_fit(method_name: str, image: str, preset: str | None, size: int | None, sigma: float,
            iters: int | None, sets: list[str] | None, seed: int, grey: bool, device: str,
            save: Path | None, as_json: bool, noise_seed: int | None = None,
            problem_sets: list[str] | None = None) -> dict:
    """Build the config and problem, run the fit with a progress bar, return the summary."""
    # torch-heavy imports stay inside the command so `dipddpm --help` and others start fast
    from dipddpm.config import build, parse_set, to_dict
    from dipddpm.data.images import load_image, resize_square, save_image
    from dipddpm.methods import METHODS
    from dipddpm.methods.guided_dip import PROBLEM_PRESETS
    from dipddpm.methods.problems import net_multiple

    method = METHODS.get(method_name)
    overrides = {**method.preset_values(preset), **parse_set(sets)}
    if iters is not None:
        overrides["iters"] = iters
    cfg = build(method.config_cls, overrides)
    problem_spec = dict(PROBLEM_PRESETS.get(preset or "", {}) if method_name == "guided_dip"
                        else {})
    problem_spec.update(image=image, sigma=sigma, seed=seed if noise_seed is None else noise_seed,
                        grey=grey)
    problem_spec.update(parse_set(problem_sets))
    if size is not None:
        problem_spec["size"] = size
    if save is not None:
        check_image_path(save, "--save")

    original = load_image(image, grey=grey)
    if problem_spec.get("size"):
        original = resize_square(original, int(problem_spec["size"]))
    problem = method.make_problem(problem_spec, cfg)
    if problem.clean.shape != original.shape and not as_json and hasattr(cfg, "net"):
        m = net_multiple(cfg)
        typer.echo(f"note: cropped {original.shape[-2]}x{original.shape[-1]} to "
                   f"{problem.clean.shape[-2]}x{problem.clean.shape[-1]} (net {cfg.net!r} "
                   f"needs multiples of {m})", err=True)

    with ProgressReport(cfg.iters, ("psnr_gt", "psnr_best", "psnr_noisy"),
                        enabled=not as_json) as report:
        result = method.run(cfg, problem, report=report, seed=seed, device=device)
    summary = {"method": method_name, "preset": preset, "image": image,
               "size": list(problem.clean.shape[-2:]), **result.metrics,
               "config": to_dict(cfg)}
    if result.extra:
        summary.update(result.extra)
    if save is not None:
        save_image(result.images.get("output_best", result.images["output"]), save)
        summary["saved"] = str(save)
    return summary


def _print_summary(s: dict) -> None:
    typer.echo(
        f"{s['method']} on {s['image']} {s['size'][0]}x{s['size'][1]}: "
        f"{s['iters']} iterations in {s['wall_s']:.1f}s\n"
        f"  noisy input   {s['psnr_noisy_input']:.2f} dB\n"
        f"  final output  {s['psnr_gt_final']:.2f} dB   smoothed {s['psnr_gt_sm_final']:.2f} dB"
        f"   SSIM {s['ssim_gt_final']:.4f}\n"
        f"  best          {s['psnr_gt_best']:.2f} dB at iteration {s['psnr_best_iter']}"
        + (f"\n  saved         {s['saved']}" if s.get("saved") else ""))


def _fit_command(method_name: str):
    def command(
        image: str = typer.Option(..., "--image", help="PNG/JPEG path or skimage:NAME "
                                  "(e.g. skimage:astronaut)."),
        preset: str | None = typer.Option(None, "--preset", help="Named preset of the method."),
        size: int | None = typer.Option(None, "--size", help="Resize to SIZE x SIZE "
                                        "(center square crop first)."),
        sigma: float = typer.Option(25.0, "--sigma", help="Noise std in 0-255 units."),
        iters: int | None = typer.Option(None, "--iters", help="Fitting iterations."),
        sets: list[str] | None = typer.Option(None, "--set", help="Config override key=value "
                                              "(repeatable), e.g. --set lr=0.001."),
        seed: int = typer.Option(0, "--seed", help="Seed of the noise, z and the net."),
        grey: bool = typer.Option(False, "--grey", help="Convert the image to grey."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        save: Path | None = typer.Option(None, "--save", help="Write the output image here."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        noise_seed: int | None = typer.Option(None, "--noise-seed", help="Seed of the noise "
                                              "alone (default: --seed), as a sweep's problem "
                                              "seed."),
        problem_sets: list[str] | None = typer.Option(None, "--problem", help="Problem key="
                                                      "value (repeatable), e.g. --problem "
                                                      "observation=forward."),
    ) -> None:
        summary = run_fit(method_name, image, preset, size, sigma, iters, sets, seed, grey,
                          device, save, as_json, noise_seed, problem_sets)
        if as_json:
            print_json(summary)
        else:
            _print_summary(summary)

    return command


fit_app.command("dip", help="Fit Deep Image Prior to one noisy image (SPEC §2). Presets: "
                "dip_original, dip_paper, tiny.")(user_errors(_fit_command("dip")))
fit_app.command("guided-dip", help="Fit staged / guided DIP (SPEC §4). Presets: staged_dip, "
                "guided_dip, dip_original, tiny.")(user_errors(_fit_command("guided_dip")))
fit_app.command("bm3d", help="Denoise one noisy image with BM3D (CBM3D for colour), the "
                "classical baseline, on the same observation a DIP fit would get; sigma from "
                "--sigma unless --set sigma=S.")(user_errors(_fit_command("bm3d")))
