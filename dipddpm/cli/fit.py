"""`dipddpm fit dip|guided-dip|bm3d|nlm`, the image forms: one fit on one image, no Ray needed.

Their options are declared once, with the generic form's, in cli/fit_method.py (which builds
every `fit METHOD` command when it is asked for); this is their command (the options ->
`dipddpm.fit_request`, which does the work: api/fit_request.py) and their summary.
"""

from __future__ import annotations

import functools

import typer

from dipddpm.cli.common import print_json


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


def image_command(method_name: str, *, as_json: bool = False, **options) -> None:
    """An image form (`fit dip|guided-dip|bm3d|nlm|...`): its options (cli/fit_method.py
    declares them) -> `dipddpm.fit_request` -> the summary, or --json."""
    from dipddpm.api import FitRequest, fit_request
    from dipddpm.cli.progress import ProgressReport

    result = fit_request(FitRequest(method_name, **options),
                         bar=None if as_json else ProgressReport,
                         notes=None if as_json else functools.partial(typer.echo, err=True))
    if as_json:
        print_json(result.summary)
    else:
        _print_summary(result.summary)


def image_form(method_name: str):
    """The callback of an image form: `image_command` for `method_name`."""
    return functools.partial(image_command, method_name)
