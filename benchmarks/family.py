"""A family study's arms: one sweep spec per method, all on the same observations.

A sweep has one `method:`, so a study of several methods is a base spec and its arms:

    sweeps/study_dip_family.yaml         the base: a valid sweep spec on its own (the reference
                                         arm, plain DIP), holding the shared protocol (problem,
                                         net, budget, searcher, resources, storage, smoke
                                         block) and the study's `baselines:` (run once, here)
    sweeps/study_dip_family/ARM.yaml     one overlay per other arm: its `method:`, `metric:`,
                                         `preset:`, `fixed:` and `search:` (its neighbourhood),
                                         `num_samples:`, and a `smoke:` block of its own

An arm's sweep is the base with the arm's overlay merged in (the spec loader's merge): the
base's `fixed:` (and its smoke block's `fixed:`) carry over only where the arm's method has
that config field (a shared net, budget and report cadence; plain DIP's own keys stay
plain DIP's); the base's `search:`, `summary_by:`, `metric:`, `preset:` and `baselines:` do
not carry over. An arm may not set `problem:`, `name:` or `storage:`: every arm sees the same
observations (same images, replicates, size, sigma and noise seeds), and its sweep is
`<base name>-<arm>` beside the base's. The reference arm is the base itself, named after its
method.

An arm whose method is not registered (a plug-in not installed, or one still to land) is
`pending`: it is listed, not run, and a verdict over a family with pending arms says so.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dipddpm.errors import ConfigError
from dipddpm.sweep.spec.load import load_yaml, merge
from dipddpm.yaml_input import load_file

# the metrics a family verdict ranks by: the GT-free pick of the fit's outputs (psnr_es: of
# the raw outputs; psnr_es_sm: of the smoothed ones; psnr_output: the output the config
# reports, where that is a GT-free pick). Never the oracle (psnr_best, psnr_gt_*).
GT_FREE_METRICS = ("psnr_es", "psnr_es_sm", "psnr_output")
ARM_OWN = ("method", "metric", "preset", "fixed", "search", "num_samples", "summary_by",
           "searcher", "smoke", "description")  # what an overlay may set
# the base's own keys, not the arms'
NOT_INHERITED = ("search", "summary_by", "metric", "preset", "baselines", "description")


@dataclass(frozen=True)
class Arm:
    name: str
    method: str
    raw: dict[str, Any]  # the arm's whole sweep spec, as a mapping (dipddpm.run takes it)


@dataclass(frozen=True)
class Family:
    name: str
    base: Path
    reference: str  # the arm that is plain DIP (the base spec itself)
    arms: dict[str, Arm]  # every runnable arm, the reference first
    pending: dict[str, str] = field(default_factory=dict)  # arm -> its unregistered method
    baselines: tuple[str, ...] = ()


def arms_dir(base: Path) -> Path:
    """Where a base spec's arms live: the folder named after it, beside it."""
    return base.with_suffix("")


def method_fields(method: str) -> set[str]:
    from dipddpm.methods import METHODS

    return {f.name for f in dataclasses.fields(METHODS.get(method).config_cls)}


def own_keys(fixed: dict | None, keys: set[str]) -> dict:
    """The base's `fixed:` values that the arm's method has a field for."""
    return {k: v for k, v in (fixed or {}).items() if k in keys}


def inherited(base: dict, method: str) -> dict:
    """What an arm takes from the base: the shared protocol, its `fixed:` (and its smoke
    block's `fixed:`) narrowed to the arm method's config fields."""
    out = {k: copy.deepcopy(v) for k, v in base.items() if k not in NOT_INHERITED}
    keys = method_fields(method)
    out["fixed"] = own_keys(base.get("fixed"), keys)
    smoke = dict(out.get("smoke") or {})
    if smoke:
        smoke.pop("search", None)
        if "fixed" in smoke:
            smoke["fixed"] = own_keys(smoke["fixed"], keys)
        out["smoke"] = smoke
    return out


def check_overlay(path: Path, overlay: Any) -> None:
    if not isinstance(overlay, dict) or "method" not in overlay:
        raise ConfigError(f"{path}: an arm is a mapping with at least method: (and its "
                          f"metric:, fixed:, search:), got {overlay!r}")
    bad = [k for k in overlay if k not in ARM_OWN]
    if bad:
        raise ConfigError(f"{path}: an arm may not set {bad[0]!r} (every arm shares the "
                          f"base's problem, storage and baselines); an arm sets "
                          f"{', '.join(ARM_OWN)}")


def check_metric(where: str, raw: dict) -> None:
    if raw.get("metric") not in GT_FREE_METRICS:
        raise ConfigError(f"{where}: metric: {raw.get('metric')!r} is not a GT-free pick; a "
                          f"family study ranks by {', '.join(GT_FREE_METRICS)}")


def arm_spec(base: dict, arm: str, overlay: dict) -> dict:
    """The arm's whole spec: the base's shared part, the overlay merged in."""
    raw = merge(inherited(base, overlay["method"]), overlay)
    raw["name"] = f"{base['name']}-{arm}"
    return raw


def load_family(base_path: str | Path, only: list[str] | None = None) -> Family:
    """The family of a base spec: its arms (all, or `only` those named), each a whole spec
    mapping. Unknown arm names and bad overlays are one error each."""
    from dipddpm.methods import METHODS

    base_path = Path(base_path)
    base = load_yaml(base_path)
    check_metric(str(base_path), base)
    reference = str(base["method"])
    overlays = {p.stem: (p, load_file(p)) for p in sorted(arms_dir(base_path).glob("*.yaml"))}
    names = [reference, *overlays]
    wanted = names if only is None else only
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise ConfigError(f"--arms: no arm {unknown[0]!r} in {base_path}; its arms: "
                          f"{', '.join(names)}")
    arms: dict[str, Arm] = {}
    pending: dict[str, str] = {}
    if reference in wanted:
        arms[reference] = Arm(reference, reference, copy.deepcopy(base))
    for arm, (path, overlay) in overlays.items():
        check_overlay(path, overlay)
        check_metric(str(path), overlay)
        if arm not in wanted:
            continue
        if overlay["method"] not in METHODS:
            pending[arm] = str(overlay["method"])
            continue
        arms[arm] = Arm(arm, str(overlay["method"]), arm_spec(base, arm, overlay))
    return Family(str(base["name"]), base_path, reference, arms, pending,
                  tuple(base.get("baselines") or ()))


def load_arm(arm: Arm, smoke: bool = False, storage: str | None = None,
             load_problem: bool = True):
    """The arm's validated SweepSpec (its smoke run's with `smoke`), as `dipddpm sweep run`
    would load it: a typo in an arm fails here, before any sweep starts. `load_problem`
    false: the problem's keys are checked, its images not read (no data fetched yet)."""
    import tempfile

    import yaml

    from dipddpm.sweep.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="dipddpm-family-") as folder:
        path = Path(folder) / f"{arm.raw['name']}.yaml"
        path.write_text(yaml.safe_dump(arm.raw, sort_keys=False))
        try:
            return load_spec(path, smoke=smoke, storage=storage, load_problem=load_problem)
        except ConfigError as e:
            raise ConfigError(f"arm {arm.name}: {e}") from None
