"""`dipddpm.fit`: one method on one image, in this process (no Ray), as arrays.

The same run as `dipddpm fit METHOD --image ... --preset ... --set key=value`: the config is
the preset's values overlaid with the keyword arguments (an unknown key is an error listing the
valid ones), the problem the method's (the preset's problem keys, then `image=`, then
`problem=`), and the loop the method's own. The command itself is `fit_request`
(api/fit_request.py), which takes its options as given (--sigma, --replicates, --save) and
its defaults (an image form's noise seed is --seed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def to_array(image: Any) -> np.ndarray:
    """A (C,H,W) tensor in [0,1] as an (H,W,C) float32 array ((H,W) for one channel)."""
    a = image.detach().float().cpu().numpy()
    a = np.moveaxis(a, 0, -1) if a.ndim == 3 else a
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


@dataclass
class FitResult:
    """One fit: its summary metrics, its output image as an array, every report."""

    method: str
    config: dict[str, Any]  # every config value the fit ran with
    metrics: dict[str, float]  # the method's summary (psnr_gt_final, psnr_gt_best, ...)
    output: np.ndarray | None  # (H,W,C) float32 in [0,1]: the image the method returns
    images: dict[str, np.ndarray] = field(default_factory=dict)  # output, output_sm, ...
    clean: np.ndarray | None = None  # the problem's clean image (for metrics only)
    observed: np.ndarray | None = None  # what the method saw (the noisy image)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # a row per report
    # what `dipddpm fit ... --json` prints (filled by `fit_request`, the commands' entry)
    summary: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shape = None if self.output is None else self.output.shape
        keys = ", ".join(f"{k}={v:.3f}" for k, v in self.metrics.items()
                         if k in ("psnr_gt_final", "psnr_gt_best"))
        return f"<FitResult {self.method}: output {shape}{', ' + keys if keys else ''}>"


class History:
    """A report callback that keeps a row per report (`FitResult.history`) and passes each on
    to `progress` (None: to nothing)."""

    def __init__(self, progress: Callable[[int, Mapping[str, float], Any], None] | None = None):
        self.rows: list[dict[str, Any]] = []
        self.progress = progress

    def __call__(self, it: int, metrics: Mapping[str, float], state: Any) -> None:
        self.rows.append({"iter": it, **{k: v for k, v in metrics.items() if k != "iter"}})
        if self.progress is not None:
            self.progress(it, metrics, state)


def progress_bar(bar: Callable[..., Any] | None, total: int, live: tuple[str, ...],
                 description: str = "fitting"):
    """`bar`'s context for `total` iterations showing the `live` metrics (None: no bar)."""
    if bar is None:
        return contextlib.nullcontext(None)
    return bar(total, live, description=description)


def as_fit_result(method: str, cfg: Any, prob: Any, res: Any, rows: list[dict[str, Any]],
                  summary: dict[str, Any] | None = None) -> FitResult:
    """A method's Result (tensors) as a FitResult (arrays), with its problem's images."""
    from dipddpm.config import to_dict

    images = {k: to_array(v) for k, v in res.images.items() if getattr(v, "ndim", 0) == 3}
    arr = {k: to_array(getattr(prob, k)) for k in ("clean", "observed")
           if getattr(getattr(prob, k, None), "ndim", 0) == 3}
    return FitResult(method=method, config=to_dict(cfg), metrics=dict(res.metrics),
                     output=images.get("output"), images=images, clean=arr.get("clean"),
                     observed=arr.get("observed"), history=pd.DataFrame(rows),
                     summary=dict(summary or {}))


def fit(method: str, image: str | None = None, *, preset: str | None = None,
        problem: Mapping[str, Any] | None = None, seed: int = 0, device: str = "auto",
        progress: Callable[[int, Mapping[str, float], Any], None] | None = None,
        **config: Any) -> FitResult:
    """Fit `method` to one image without Ray and return the result as arrays.

    `image`: a PNG/JPEG path or a bundled photo (`skimage:astronaut`). `preset`: a named
    preset (e.g. `tiny`, `dip_original`). `problem`: more problem keys (size, sigma, seed).
    `config`: config fields (`iters=300`, `lr=0.01`). `device`: auto, cpu, cuda[:N].
    `progress`: called at each report with (iteration, metrics, state), as the method's loop
    reports them (the CLI's progress bar takes these).

    >>> import dipddpm
    >>> r = dipddpm.fit("dip", image="skimage:astronaut", preset="tiny",
    ...                 problem={"size": 32}, iters=10, report_every=5, device="cpu")
    >>> r.output.shape, r.output.dtype.name, float(r.output.min()) >= 0.0
    ((32, 32, 3), 'float32', True)
    >>> list(r.history["iter"])
    [5, 10]
    >>> seen = []
    >>> r = dipddpm.fit("dip", image="skimage:astronaut", preset="tiny", problem={"size": 32},
    ...                 iters=10, report_every=5, device="cpu",
    ...                 progress=lambda it, metrics, state: seen.append(it))
    >>> seen
    [5, 10]
    >>> dipddpm.fit("dip", image="skimage:astronaut", preset="tiny", iterz=10)
    Traceback (most recent call last):
    dipddpm.errors.ConfigError: unknown config key 'iterz' for DipConfig (did you mean ...
    """
    from dipddpm.config import build
    from dipddpm.methods import METHODS

    m = METHODS.get(method)
    cfg = build(m.config_cls, {**m.preset_values(preset), **config})
    spec = {**m.problem_preset(preset), **({"image": image} if image is not None else {}),
            **dict(problem or {})}
    prob = m.make_problem(spec, cfg)
    history = History(progress)
    res = m.run(cfg, prob, report=history, seed=seed, device=device)
    return as_fit_result(method, cfg, prob, res, history.rows)
