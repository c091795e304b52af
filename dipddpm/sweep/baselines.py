"""Baselines of a study: classical methods run once on the study's own observations.

`baselines: [bm3d]` in a spec runs each named baseline on every (image, replicate) pair of the
problem when the sweep starts (on the driver, no Ray: a baseline has nothing to search) and
writes `baselines/part-<name>.parquet`, a row per pair with the same summary columns as the
`pairs/` table. `results effect DIR --a baseline=bm3d --b stages=4` and the report then put
the DIP family next to the baseline on the same observations, paired.

A method serves as a baseline when its entry says so (`Method.baseline`: its config values
there; methods/__init__.py); the baselines are those methods, by their own names, plus any
variant registered here (`BASELINES.register("bm3d_vn")(Baseline("bm3d", {"profile": "vn"}))`).
A baseline returns the method's declared summary keys (methods/keys.py), as the fits do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dipddpm.errors import ConfigError
from dipddpm.registry import Registry


@dataclass(frozen=True)
class Baseline:
    method: str  # the registered method that computes it
    config: Mapping[str, Any] = field(default_factory=dict)  # its config values
    help: str = ""


class MethodBaselines(Registry[Baseline]):
    """Every method whose entry declares `baseline` config, by its name, and the variants
    registered here (a registered name wins)."""

    def _entries(self) -> dict[str, Baseline]:
        from dipddpm.methods import METHODS

        own = {name: Baseline(name, dict(m.baseline), m.help) for name, m in METHODS.items()
               if m.baseline is not None}
        return {**own, **self._items}


BASELINES: Registry[Baseline] = MethodBaselines("baseline")


def check_baselines(names: Any, problem: Mapping[str, Any]) -> tuple[str, ...]:
    """The spec's `baselines:` list: registered names, for a study's image problem."""
    from dipddpm.methods.study_pairs import is_study

    if names is None:
        return ()
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"baselines must be a list of names, e.g. baselines: [bm3d]; got "
                          f"{names!r}")
    for n in names:
        try:
            BASELINES.get(n)
        except ConfigError as e:
            raise ConfigError(f"baselines: {e}") from None
    if names and ("dataset" in problem or not is_study(problem)):
        raise ConfigError("baselines: run on a study's observations (problem.images: [...] "
                          "and/or problem.replicates: S); this problem is "
                          + ("a dataset" if "dataset" in problem else "one image and seed")
                          + ": make it a study, or drop baselines:")
    return tuple(names)


def baseline_rows(spec, name: str) -> list[dict]:
    """The baseline on every pair of the study: the very observations its trials fit (built
    by the sweep's method at its base config, so cropped alike), a row per pair."""
    from dipddpm.config import build
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import build_pairs

    own = METHODS.get(spec.method)
    pairs = build_pairs(own, dict(spec.problem), build(own.config_cls, spec.base_values),
                        spec.seed)
    entry = BASELINES.get(name)
    method = METHODS.get(entry.method)
    cfg = build(method.config_cls, dict(entry.config))
    rows = []
    for p in pairs:
        res = method.run(cfg, p.problem, device="cpu")
        H, W = p.problem.observed.shape[-2:]
        rows.append({"baseline": name, "image": p.spec.image, "replicate": p.spec.replicate,
                     "seed": p.seed, "noise_seed": int(p.spec.problem.get("seed", 0)),
                     "height": int(H), "width": int(W), **res.metrics})
    return rows


def run_baselines(spec, sweep, console) -> None:
    """Each of the spec's baselines on its observations, once per sweep: a baseline whose
    table is not there yet (a first run, or one that died before writing it) runs now."""
    from dipddpm.dataset.parquet import write_baseline

    for name in spec.baselines:
        if sweep.child("baselines", f"part-{name}.parquet").exists():
            continue
        t0 = time.perf_counter()
        rows = baseline_rows(spec, name)
        write_baseline(sweep, spec.name, name, rows)
        mean = sum(r["psnr_gt_final"] for r in rows) / len(rows)
        console.line(f"baseline {name}: {len(rows)} observation(s), mean psnr_gt "
                     f"{mean:.2f} dB ({time.perf_counter() - t0:.0f} s)")
