"""`dipddpm fit ddpm`, `dipddpm sample` and `dipddpm fit dip-prior-ddpm` (docs/methods.md).

    dipddpm fit ddpm --dataset skimage-patches --set iters=2000 --out runs/ddpm
        writes runs/ddpm/ddpm.pt (+ ddpm.json: the resolved config), samples.png and
        train_state.pt (the full training state; --resume continues from it)
    dipddpm sample --checkpoint runs/ddpm/ddpm.pt --steps 50 --sampler ddim --out grid.png
    dipddpm fit dip-prior-ddpm --checkpoint runs/ddpm/ddpm.pt --image skimage:camera --resize
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import typer

from dipddpm.cli.app import app, fit_app
from dipddpm.cli.common import print_json, user_errors
from dipddpm.cli.progress import ProgressReport
from dipddpm.config import build, coerce, merge_sources, parse_set, to_dict
from dipddpm.errors import ConfigError
from dipddpm.outputs import check_image_path, check_output


def _preset_overrides(method, preset: str | None, sets: list[str] | None) -> dict:
    return {**method.preset_values(preset), **parse_set(sets)}


# ---------------------------------------------------------------- fit ddpm
@dataclass(frozen=True)
class DdpmFitArgs:
    """The options of `dipddpm fit ddpm`."""

    dataset: str
    out: Path
    preset: str | None = None
    sets: list[str] | None = None
    data: list[str] | None = None  # dataset key=value options
    size: int | None = None
    grey: bool | None = None
    data_root: str | None = None  # None: not given ("data" for mnist and cifar10)
    download: bool = False
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    save_every: int | None = None
    show_progress: bool = True

    def dataset_spec(self) -> dict:
        """--dataset, --data key=value and --size/--grey/--data-root/--download: an option and
        a --data pair setting one key is an error naming both. Checked against the dataset's
        options (types included) before anything is loaded."""
        from dipddpm.data.datasets import dataset_params
        from dipddpm.methods.ddpm import check_dataset_spec

        spec = merge_sources(parse_set(self.data, "--data"), {
            "dataset": ("--dataset", self.dataset), "size": ("--size", self.size),
            "grey": ("--grey" if self.grey else "--rgb", self.grey),
            "data_root": ("--data-root", self.data_root),
            "download": ("--download", True if self.download else None)}, "--data", "dataset")
        if "data_root" in dataset_params(self.dataset):  # torchvision's (mnist, cifar10)
            spec.setdefault("data_root", "data")
            spec.setdefault("download", False)
        return check_dataset_spec(spec)


def _fit_ddpm_summary(a: DdpmFitArgs, cfg, problem, trained) -> dict:
    from dipddpm.data.images import save_image

    ckpt = trained.save(a.out / "ddpm.pt")
    r = trained.result
    summary = {"dataset": a.dataset, "preset": a.preset, "checkpoint": str(ckpt),
               "train_size": int(problem.train.shape[0]), "val_size": int(problem.val.shape[0]),
               "test_size": int(problem.test.shape[0]),
               "image": [problem.channels, problem.image_size, problem.image_size],
               **r.metrics, **{k: v for k, v in r.extra.items() if k != "net_spec"},
               "net": r.extra["net_spec"], "config": to_dict(cfg)}
    if "samples" in r.images:
        save_image(r.images["samples"], a.out / "samples.png")
        summary["samples"] = str(a.out / "samples.png")
    return summary


def run_fit_ddpm(a: DdpmFitArgs) -> dict:
    from dipddpm.checkpoint import check_expected, read_checkpoint
    from dipddpm.data.datasets import DATASETS
    from dipddpm.methods import METHODS
    from dipddpm.methods.ddpm import dataset_problem, total_steps, train_ddpm
    from dipddpm.methods.ddpm_checkpoint import StateSaver

    method = METHODS.get("ddpm")
    cfg = build(method.config_cls, _preset_overrides(method, a.preset, a.sets))
    spec = a.dataset_spec()
    if a.save_every is not None and a.save_every < 1:
        raise ConfigError(f"--save-every must be >= 1 step, got {a.save_every}")
    DATASETS.get(a.dataset)  # unknown dataset: fail before loading anything
    state_path = a.out / "train_state.pt"
    run_config = {"ddpm": to_dict(cfg), "dataset": spec, "seed": a.seed}
    resume_state = None
    if a.resume:
        saved, tensors = read_checkpoint(state_path, kind="ddpm-train")
        check_expected(state_path, saved, run_config)
        resume_state = tensors["state"]
    problem = dataset_problem(spec, cfg)
    total = total_steps(cfg, problem.train.shape[0])
    with ProgressReport(total, ("train_loss", "val_loss"), enabled=a.show_progress,
                        description="training") as bar:
        report = StateSaver(bar, state_path, run_config, a.save_every or 1000, total)
        trained = train_ddpm(cfg, problem, report=report, seed=a.seed, resume=resume_state,
                             device=a.device)
    return _fit_ddpm_summary(a, cfg, problem, trained)


@fit_app.command("ddpm")
@user_errors
def fit_ddpm_command(
    dataset: str = typer.Option(..., "--dataset", help="{names:datasets} (mnist and "
                                "cifar10 read --data-root; the others need no download)."),
    out: Path = typer.Option(..., "--out", help="Folder for ddpm.pt, ddpm.json, samples.png "
                             "and train_state.pt."),
    preset: str | None = typer.Option(None, "--preset", help="{presets:ddpm}."),
    sets: list[str] | None = typer.Option(None, "--set", help="DdpmConfig override key=value "
                                          "(repeatable), e.g. --set iters=2000 --set net=small "
                                          "(net: {names:unet_presets})."),
    data: list[str] | None = typer.Option(None, "--data", help="Dataset option key=value "
                                          "(repeatable), e.g. --data count=4096 --data "
                                          "path=./imgs (folder)."),
    size: int | None = typer.Option(None, "--size", help="Image size (patch size, or resize)."),
    grey: bool | None = typer.Option(None, "--grey/--rgb", help="Grey or RGB images."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where torchvision "
                                         "datasets live (mnist, cifar10; default data)."),
    download: bool = typer.Option(False, "--download", help="Let torchvision download mnist "
                                  "or cifar10 into --data-root (needs internet)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the net, batch order, t and noise."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/train_state.pt "
                                "(same config, dataset and seed)."),
    save_every: int | None = typer.Option(None, "--save-every", help="Write OUT/train_state.pt "
                                          "at reports every this many steps (default 1000) "
                                          "and at the end."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train a DDPM (Ho et al., NeurIPS 2020) on a dataset and write its checkpoint."""
    check_output(out, "--out", kind="folder")
    s = run_fit_ddpm(DdpmFitArgs(
        dataset=dataset, out=out, preset=preset, sets=sets, data=data, size=size, grey=grey,
        data_root=data_root, download=download, seed=seed, device=device, resume=resume,
        save_every=save_every, show_progress=not as_json))
    if as_json:
        print_json(s)
        return
    typer.echo(f"ddpm on {s['dataset']} ({s['train_size']} train images "
               f"{'x'.join(map(str, s['image']))}), {s['n_params']:,} params: {s['steps']} "
               f"steps ({s['epochs']:.2f} epochs) in {s['wall_s']:.1f}s\n"
               f"  train loss {s['train_loss_final']:.4f}   val loss {s['val_loss_final']:.4f}"
               f" (best {s['val_loss_best']:.4f} at step {s['val_loss_best_iter']})\n"
               f"  checkpoint {s['checkpoint']}"
               + (f"\n  samples    {s['samples']}" if s.get("samples") else "")
               + (f"\n  {s['fid']}" if s.get("fid") else ""))


# ---------------------------------------------------------------- sample
@dataclass(frozen=True)
class SampleArgs:
    """The options of `dipddpm sample`."""

    checkpoint: Path
    out: Path
    steps: int | None = None
    sampler: str | None = None
    t0: int | None = None
    n: int = 16
    eta: float = 0.0
    seed: int = 0
    device: str = "auto"
    no_ema: bool = False
    fid: int = 0
    show_progress: bool = True

    def check(self) -> str:
        """Validates the options; returns the sampler (ddim with --steps, else ddpm)."""
        coerce("--eta", self.eta, float)  # finite
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n}")
        if self.fid < 0:
            raise ConfigError(f"--fid must be >= 0 samples, got {self.fid}")
        sampler = self.sampler or ("ddim" if self.steps is not None else "ddpm")
        from dipddpm.diffusion.sampling import REVERSE_SAMPLERS

        if sampler not in REVERSE_SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(REVERSE_SAMPLERS.names())},"
                              f" got {sampler!r}")
        check_image_path(self.out, "--out")
        return sampler


def _sample_fid(a: SampleArgs, ddpm, draw, dev) -> dict:
    """FID/KID of a.fid samples vs the checkpoint's test split (or why it was skipped)."""
    from dipddpm.fid import fid_kid, find_inception_weights, skipped_note
    from dipddpm.methods.ddpm import dataset_problem

    if find_inception_weights() is None:
        return {"fid": None, "kid": None, "fid_note": skipped_note()}
    data = dataset_problem(ddpm.data_spec)
    r = fid_kid(draw, data.as_float(data.test), a.fid, dev)
    return {"fid": r.metrics.get("fid"), "kid": r.metrics.get("kid"), "fid_note": r.note}


def run_sample(a: SampleArgs) -> dict:
    import torch

    from dipddpm.data.grid import make_grid
    from dipddpm.data.images import save_image
    from dipddpm.diffusion.sampling import SamplerConfig, reverse_steps, sample
    from dipddpm.methods.ddpm_checkpoint import load_ddpm
    from dipddpm.methods.ddpm_config import autocast_on
    from dipddpm.methods.device import pick_device

    sampler = a.check()
    ddpm = load_ddpm(a.checkpoint, a.device, use_ema=False if a.no_ema else None)
    T = ddpm.process.T
    t0 = T - 1 if a.t0 is None else a.t0
    scfg = SamplerConfig(sampler=sampler, steps=a.steps, eta=a.eta)
    n_steps = reverse_steps(t0, T, scfg)  # validates t0 and steps
    dev = pick_device(a.device)
    g = torch.Generator(device=dev).manual_seed(a.seed)
    shape = (ddpm.spec.channels, ddpm.spec.image_size, ddpm.spec.image_size)

    def draw(k: int, callback=None):
        return sample(ddpm.model, ddpm.process, (k, *shape), t0, scfg, ddpm.cfg.objective, g,
                      dev, amp=autocast_on(ddpm.cfg, dev), callback=callback)

    with ProgressReport(n_steps, (), enabled=a.show_progress, description="sampling") as bar:
        t_start = time.perf_counter()
        images = draw(a.n, callback=lambda i, _: bar(i, {}))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        wall = time.perf_counter() - t_start
    save_image(make_grid(images), a.out)
    summary = {"checkpoint": str(a.checkpoint), "sampler": sampler, "t0": t0,
               "reverse_steps": n_steps, "eta": a.eta, "n": a.n, "wall_s": wall,
               "s_per_sample": wall / a.n, "ema": ddpm.ema is not None, "out": str(a.out)}
    if a.fid:
        summary.update(_sample_fid(a, ddpm, draw, dev))
    return summary


@app.command("sample")
@user_errors
def sample_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A DDPM checkpoint (ddpm.pt)."),
    steps: int | None = typer.Option(None, "--steps", help="Reverse steps: DDIM's S (implies "
                                     "--sampler ddim); ddpm always takes t0 + 1 steps."),
    sampler: str | None = typer.Option(None, "--sampler", help="{names:reverse_samplers} "
                                       "(default: ddim with --steps, else ddpm: ancestral, "
                                       "every step)."),
    t0: int | None = typer.Option(None, "--t0", help="Start step (0-based, < T) of the "
                                  "truncated chain from pure noise; default T-1."),
    out: Path = typer.Option(..., "--out", help="The grid of samples (.png or .jpg)."),
    n: int = typer.Option(16, "--n", help="Number of samples."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM eta (0 = deterministic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    no_ema: bool = typer.Option(False, "--no-ema", help="Use the raw weights, not the EMA."),
    fid: int = typer.Option(0, "--fid", help="Also FID/KID of this many samples vs the "
                            "checkpoint's test split, if Inception weights are present "
                            "locally (otherwise says why it was skipped)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Draw samples from a trained DDPM (ancestral, or DDIM: Song et al., ICLR 2021) and write
    them as one grid image."""
    s = run_sample(SampleArgs(checkpoint=checkpoint, out=out, steps=steps, sampler=sampler,
                              t0=t0, n=n, eta=eta, seed=seed, device=device, no_ema=no_ema,
                              fid=fid, show_progress=not as_json))
    if as_json:
        print_json(s)
        return
    typer.echo(f"{s['n']} samples, {s['sampler']} from t0 = {s['t0']} in {s['reverse_steps']}"
               f" steps: {s['wall_s']:.2f}s ({s['s_per_sample']:.3f} s/sample) -> {s['out']}")
    if "fid_note" in s:
        typer.echo(s["fid_note"] if s["fid"] is None
                   else f"FID {s['fid']:.2f}  KID {s['kid']:.4f}  ({s['fid_note']})")


# ---------------------------------------------------------------- fit dip-prior-ddpm
@dataclass(frozen=True)
class DipPriorArgs:
    """The options of `dipddpm fit dip-prior-ddpm`."""

    checkpoint: Path
    image: str
    t0: str | None = None
    preset: str | None = None
    sets: list[str] | None = None
    sigma: float = 25.0
    seed: int = 0
    resize: bool = False
    device: str = "auto"
    save: Path | None = None
    show_progress: bool = True


def run_fit_dip_prior(a: DipPriorArgs) -> dict:
    from dipddpm.data.images import save_image
    from dipddpm.methods import METHODS

    method = METHODS.get("dip_prior_ddpm")
    coerce("--sigma", a.sigma, float)  # finite
    given = merge_sources(parse_set(a.sets), {"checkpoint": ("--checkpoint", str(a.checkpoint)),
                                              "t0": ("--t0", a.t0)}, "--set", "config")
    cfg = build(method.config_cls, {**method.preset_values(a.preset), **given})
    spec = {"image": a.image, "sigma": a.sigma, "seed": a.seed, "resize": a.resize}
    method.check_problem_spec(spec)
    if a.save is not None:
        check_image_path(a.save, "--save")
    problem = method.make_problem(spec, cfg)
    with ProgressReport(max(cfg.dip_iters, 1), ("psnr_gt",), enabled=a.show_progress,
                        description="DIP, then DDPM") as bar:
        result = method.run(cfg, problem, report=bar, seed=a.seed, device=a.device)
    summary = {"method": "dip_prior_ddpm", "preset": a.preset, "image": a.image,
               "size": list(problem.clean.shape[-2:]), **result.metrics,
               "config": to_dict(cfg)}
    if a.save is not None:
        save_image(result.images["output"], a.save)
        summary["saved"] = str(a.save)
    return summary


@fit_app.command("dip-prior-ddpm")
@user_errors
def fit_dip_prior_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="The trained DDPM (ddpm.pt)."),
    image: str = typer.Option(..., "--image", help="PNG/JPEG path or skimage:NAME, at the "
                              "DDPM's size (or pass --resize)."),
    t0: str | None = typer.Option(None, "--t0", help="Start step of the reverse chain "
                                  "(0-based, < T; 0 = the DIP estimate unchanged; auto = the "
                                  "step whose noise matches the DIP estimate's)."),
    preset: str | None = typer.Option(None, "--preset", help="{presets:dip_prior_ddpm}."),
    sets: list[str] | None = typer.Option(None, "--set", help="Config override key=value, "
                                          "e.g. --set dip_iters=500 --set sampler=ddim."),
    sigma: float = typer.Option(25.0, "--sigma", help="Noise std in 0-255 units."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise, DIP and the chain."),
    resize: bool = typer.Option(False, "--resize", help="Center-crop and resize the image to "
                                "the DDPM's size (otherwise a different size is an error)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    save: Path | None = typer.Option(None, "--save", help="Write the output image here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Denoise one image with DIP, then finish with the DDPM from t0 (docs/methods.md), next to the
    same-budget baselines (DDPM from y and from pure noise)."""
    s = run_fit_dip_prior(DipPriorArgs(
        checkpoint=checkpoint, image=image, t0=t0, preset=preset, sets=sets, sigma=sigma,
        seed=seed, resize=resize, device=device, save=save, show_progress=not as_json))
    if as_json:
        print_json(s)
        return
    typer.echo(
        f"dip_prior_ddpm on {s['image']} {s['size'][0]}x{s['size'][1]}, t0 = {s['t0']} "
        f"({s['reverse_steps']} reverse steps)\n"
        f"  noisy input        {s['psnr_noisy_input']:.2f} dB\n"
        f"  DIP alone          {s['psnr_dip']:.2f} dB   SSIM {s['ssim_dip']:.4f}   "
        f"{s['wall_s_dip']:.1f}s\n"
        f"  DIP-prior DDPM     {s['psnr_gt']:.2f} dB   SSIM {s['ssim_gt']:.4f}   "
        f"{s['wall_s_ddpm']:.2f}s\n"
        + (f"  DDPM from y        {s['psnr_ddpm_y']:.2f} dB   SSIM {s['ssim_ddpm_y']:.4f}\n"
           f"  DDPM from noise    {s['psnr_ddpm_noise']:.2f} dB\n" if "psnr_ddpm_y" in s
           else "")
        + (f"  saved              {s['saved']}" if s.get("saved") else ""))
