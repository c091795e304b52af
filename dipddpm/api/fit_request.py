"""`dipddpm.fit_request`: `dipddpm fit METHOD ...` as a function, its options as a FitRequest.

Every `dipddpm fit` command but `fit ddpm` and `fit dip-prior-ddpm` is one call of this:

- an image form (`fit dip|guided-dip|bm3d|nlm|...`, a method entry with an `image_form`):
  the config is the preset's values, then `sets` (`--set key=value` text), then `iters`; the
  problem is the preset's problem keys, then sigma 25 and the noise seed `seed`, then
  `image`/`sigma`/`size`/`grey`/`noise_seed` and `problem_sets` (`--problem key=value`): an
  option and a `problem_sets` item setting one key is an error naming both. `replicates` K > 1
  fits K seeds of one observation (fused or one after the other, `fusion`);
- the generic form (any other method): the config is the preset's values, then `sets`, then
  `fields` (a config field -> its own option's text, which wins over `sets`: a note says so);
  the problem is the preset's problem keys, then `problem_sets`.

Everything is checked before any work (the device first), the output image is written to
`save`, and the result's `summary` is what `--json` prints. `bar` draws progress: it is called
as `bar(total, fields, description=...)` and used as a context manager whose value is the
report callback (the CLI's `ProgressReport`); `notes` takes each note line (a crop, an
override). The messages name the command's options (`--sigma`, `--problem`), as the
command prints them.

>>> import dipddpm
>>> r = dipddpm.fit_request(dipddpm.FitRequest("dip", image="skimage:astronaut",
...     preset="tiny", size=32, iters=10, sets=["report_every=5"], device="cpu"))
>>> r.summary["image"], r.summary["size"], r.output.shape, list(r.history["iter"])
('skimage:astronaut', [32, 32], (32, 32, 3), [5, 10])
>>> dipddpm.fit_request(dipddpm.FitRequest("dip", image="skimage:astronaut", sigma=50,
...     problem_sets=["sigma=30"]))
Traceback (most recent call last):
dipddpm.errors.ConfigError: --sigma 50 and --problem sigma=30 both set the problem key sigma; ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dipddpm.api.fit_image import FitResult, History, as_fit_result, progress_bar
from dipddpm.errors import DipddpmError, closest

Notes = Callable[[str], Any]  # takes one note line
IMAGE_ONLY = ("image", "size", "sigma", "iters", "grey", "noise_seed", "replicates", "fusion")


@dataclass(frozen=True)
class FitRequest:
    """One `dipddpm fit METHOD` command's options (None: not given)."""

    method: str
    image: str | None = None  # --image: a PNG/JPEG path or skimage:NAME (image forms)
    preset: str | None = None  # --preset
    size: int | None = None  # --size: resized to SIZE x SIZE (image forms)
    sigma: float | None = None  # --sigma: noise std, 0-255 units (default 25; image forms)
    iters: int | None = None  # --iters (image forms)
    sets: Sequence[str] | None = None  # --set key=value items, values as YAML
    fields: Mapping[str, str] = field(default_factory=dict)  # generic form: field -> its text
    seed: int = 0  # --seed: of the run (an image form's noise too, unless noise_seed)
    grey: bool = False  # --grey (image forms)
    device: str = "auto"  # --device: auto, cpu, cuda, cuda:N
    save: str | Path | None = None  # --save: write the output image here (.png/.jpg)
    noise_seed: int | None = None  # --noise-seed (image forms)
    problem_sets: Sequence[str] | None = None  # --problem key=value items
    replicates: int = 1  # --replicates K (image forms with a stage plan)
    fusion: str = "auto"  # --fusion: auto, fused or serial (with replicates)


def fit_request(request: FitRequest, *, bar: Callable[..., Any] | None = None,
                notes: Notes | None = None) -> FitResult:
    """Run `request` as `dipddpm fit` runs it (see the module's docstring) and return the
    result as arrays, with `summary` the command's --json object."""
    from dipddpm.methods import METHODS

    method = METHODS.get(request.method)
    if method.image_form is not None:
        if request.fields:
            raise DipddpmError(f"fields are the generic form's options; {request.method} "
                               f"takes its config as sets (--set key=value)")
        return _image_fit(method, request, bar, notes)
    given = [f.name for f in dataclasses.fields(FitRequest) if f.name in IMAGE_ONLY
             and getattr(request, f.name) != f.default]
    if given:
        raise DipddpmError(f"{request.method} has no image form: {', '.join(given)} apply to "
                           f"dip, guided-dip, ...; give its problem as problem_sets")
    return _method_fit(method, request, bar, notes)


def check_image_request(r: FitRequest) -> None:
    """--replicates and --fusion, before anything else."""
    from dipddpm.methods import METHODS
    from dipddpm.methods.fusion import MODES

    if r.replicates < 1:
        raise DipddpmError(f"--replicates must be >= 1, got {r.replicates}; e.g. --replicates 4")
    if r.replicates > 1 and METHODS.get(r.method).plan is None:
        raise DipddpmError(f"--replicates runs K seeds of a DIP fit (dip, guided-dip); "
                           f"{r.method} has no seed to vary: drop --replicates")
    if r.fusion not in MODES:
        raise DipddpmError(f"--fusion: fusion mode must be auto, fused or serial, got "
                           f"{r.fusion!r}{closest(r.fusion, list(MODES))}")


def problem_spec(method, r: FitRequest) -> dict:
    """An image form's problem spec: the preset's problem keys, then the defaults (sigma 25,
    the noise seed --seed), then --image/--sigma/--size/--grey/--noise-seed and --problem
    key=value: an option and a --problem pair setting one key is an error naming both.
    Checked for type and range before any image is read."""
    from dipddpm.config import coerce, merge_sources, parse_set

    if r.sigma is not None:
        coerce("--sigma", r.sigma, float)  # finite: inf and nan mean nothing here
    given = merge_sources(parse_set(list(r.problem_sets or []), "--problem"), {
        "image": ("--image", r.image), "sigma": ("--sigma", r.sigma), "size": ("--size", r.size),
        "grey": ("--grey", True if r.grey else None), "seed": ("--noise-seed", r.noise_seed)},
        "--problem", "problem")
    spec = {**method.problem_preset(r.preset), "sigma": 25.0, "grey": False, "seed": r.seed,
            **given}
    if "image" not in spec:  # the command requires --image
        raise DipddpmError(f"fit {r.method} needs an image: give image= (--image), e.g. "
                           f"skimage:astronaut")
    if method.check_problem_spec is not None:
        method.check_problem_spec(spec)
    return spec


def build_problem(method, cfg, spec: dict, notes: Notes | None):
    """An image form's problem, and a note when the net's size rule crops the image."""
    from dipddpm.data.images import load_image, resize_square
    from dipddpm.methods.problems import net_multiple

    original = load_image(spec["image"], grey=bool(spec.get("grey")))
    if spec.get("size"):
        original = resize_square(original, int(spec["size"]))
    problem = method.make_problem(spec, cfg)
    if problem.clean.shape != original.shape and notes is not None and hasattr(cfg, "net"):
        notes(f"note: cropped {original.shape[-2]}x{original.shape[-1]} to "
              f"{problem.clean.shape[-2]}x{problem.clean.shape[-1]} (net {cfg.net!r} "
              f"needs multiples of {net_multiple(cfg)})")
    return problem


def _image_setup(method, r: FitRequest, notes: Notes | None):
    """An image form's config, problem spec and problem, every check done in the command's
    order (the device first, the problem's image read last)."""
    from dipddpm.config import build, merge_sources, parse_set
    from dipddpm.methods.device import pick_device
    from dipddpm.methods.study_ensemble import check_replicates

    check_image_request(r)
    pick_device(r.device)  # a device this machine lacks: before any work
    overrides = merge_sources(parse_set(list(r.sets or [])), {"iters": ("--iters", r.iters)},
                              "--set", "config")
    cfg = build(method.config_cls, {**method.preset_values(r.preset), **overrides})
    check_replicates(cfg, r.replicates, where="--replicates")  # K seeds of one observation
    spec = problem_spec(method, r)
    if r.save is not None:
        check_save(r.save)
    problem = build_problem(method, cfg, spec, notes)
    if method.check_trial is not None:  # the rules joining config and problem, before any fit
        method.check_trial(cfg, problem)
    return cfg, spec, problem


def _image_fit(method, r: FitRequest, bar, notes: Notes | None) -> FitResult:
    """An image form's fit: one, or K replicates (the summary is member 0's plus every
    member's metrics and their mean); the output written to `save`."""
    from dipddpm.api.fit_replicates import run_replicates
    from dipddpm.config import to_dict

    cfg, spec, problem = _image_setup(method, r, notes)
    if r.replicates == 1:
        history = History()
        with progress_bar(bar, cfg.iters, ("psnr_gt", "psnr_best", "psnr_noisy")) as report:
            history.progress = report
            result = method.run(cfg, problem, report=history, seed=r.seed, device=r.device)
        extra, rows = {}, history.rows
    else:
        results, extra, rows = run_replicates(method, cfg, problem, r, bar)
        result = results[0]
    summary = {"method": r.method, "preset": r.preset, "image": spec["image"],
               "size": list(problem.clean.shape[-2:]), **result.metrics,
               "config": to_dict(cfg), **extra}
    if result.extra:
        summary.update(result.extra)
    if r.save is not None:
        save_output(result.images.get("output_best", result.images["output"]), r.save, summary)
    return as_fit_result(r.method, cfg, problem, result, rows, summary)


def _method_config(method, r: FitRequest, notes: Notes | None):
    """The generic form's config: the preset, then --set, then the fields' own options (which
    win over --set of their key: a note says so)."""
    from dipddpm.config import build, parse_set
    from dipddpm.yaml_input import load_value

    sets = parse_set(list(r.sets or []))
    own = {k: load_value(v, f"--{option(k)}") for k, v in r.fields.items()}
    for k in sorted(set(own) & set(sets)):  # documented: the field's own option wins
        if notes is not None:
            notes(f"note: --{option(k)} {r.fields[k]} overrides --set {k}={sets[k]}")
    return build(method.config_cls, {**method.preset_values(r.preset), **sets, **own})


def _method_fit(method, r: FitRequest, bar, notes: Notes | None) -> FitResult:
    """The generic form's fit: config and problem checked, the method run once, its output
    written to `save`."""
    from dipddpm.config import parse_set, to_dict
    from dipddpm.methods.device import pick_device

    pick_device(r.device)  # a device this machine lacks: before any work
    cfg = _method_config(method, r, notes)
    spec = {**method.problem_preset(r.preset), **parse_set(list(r.problem_sets or []),
                                                           "--problem")}
    if method.check_problem_spec is not None:
        method.check_problem_spec(spec)
    if r.save is not None:
        check_save(r.save)
    problem = method.make_problem(spec, cfg)
    if method.check_trial is not None:  # the rules joining config and problem, before any fit
        method.check_trial(cfg, problem)
    live = tuple(m for m in method.metrics if m != "iter")[:2]
    total = max(int(getattr(cfg, method.iters_key, 1) or 1), 1)
    history = History()
    with progress_bar(bar, total, live) as report:
        history.progress = report
        result = method.run(cfg, problem, report=history, seed=r.seed, device=r.device)
    summary = {"method": r.method, "preset": r.preset, **result.metrics,
               "config": to_dict(cfg)}
    if r.save is not None:
        if "output" not in result.images:
            raise DipddpmError(f"{r.method} returns no output image (it has: "
                               f"{', '.join(result.images) or 'none'}); drop --save")
        save_output(result.images["output"], r.save, summary)
    return as_fit_result(r.method, cfg, problem, result, history.rows, summary)


def option(field_name: str) -> str:
    """A config field's option name (`report_every` -> `report-every`)."""
    return field_name.replace("_", "-")


def check_save(path: str | Path) -> None:
    """--save names a PNG or JPEG file that can be written (before any work)."""
    from dipddpm.outputs import check_image_path

    check_image_path(path, "--save")


def save_output(image: Any, path: str | Path, summary: dict[str, Any]) -> None:
    """Write the output image (a (C,H,W) tensor) to `path`; the summary says where."""
    from dipddpm.data.images import save_image

    save_image(image, Path(path))
    summary["saved"] = str(path)
