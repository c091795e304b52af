"""Sweep specs: YAML (safe-loaded) -> a frozen, fully validated `SweepSpec`.

A spec names a method and its problem, the metric to optimise, `fixed:` config values,
`search:` domains, the searcher, the scheduler, resources, the number of trials, storage and a
`smoke:` override block. Everything is checked here, before Ray starts: each bad input is one
`ConfigError` naming the key and the fix.

    name: quick
    method: guided_dip
    preset: tiny
    problem: {image: "skimage:astronaut", size: 64}
    metric: psnr_best          # must be a key the method reports; mode max|min
    fixed: {iters: 300}
    search:
      scheduler: {choice: [uniform, log10_linspace, exp_weighted]}
      exp_c: {loguniform: [50, 1000], when: {scheduler: exp_weighted}}
    searcher: {type: optuna, sampler: tpe, seed: 0, max_concurrent: 2}
    scheduler: {type: asha, grace_period: 50, reduction_factor: 3}
    smoke: {num_samples: 2, fixed: {iters: 20}}
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dipddpm.config import build, coerce, field_names, field_types
from dipddpm.errors import ConfigError, closest, first_line

TOP_KEYS = ("name", "description", "method", "preset", "problem", "metric", "mode", "fixed",
            "search", "searcher", "scheduler", "resources", "num_samples", "time_budget_s",
            "storage", "storage_options", "checkpoint_every", "max_failures", "seed",
            "summary_by", "faults", "smoke", "compact")
DOMAIN_KINDS = ("uniform", "loguniform", "int", "choice", "grid")
SAMPLERS = ("tpe", "cmaes", "gp", "random")
SEARCHERS = ("optuna", "grid")
SCHEDULERS = ("asha", "none")
FAULT_KINDS = ("raise", "nan")
RESOURCE_GRANULARITY = 0.0001  # the smallest fraction of a CPU or GPU Ray schedules
# str config fields whose values name a registered plug-in: checked at validation time
# searchable keys that are not method config fields: `seed` is the trial seed (net init, z,
# stage noise), so `search: {seed: {grid: [0, 1, 2]}}` repeats each configuration over seeds
TRIAL_KEYS = {"seed": int}
NAMED_FIELDS = {"scheduler": ("dipddpm.stages.schedulers", "STAGE_SCHEDULERS"),
                "beta_schedule": ("dipddpm.diffusion.schedules", "SCHEDULES"),
                "net": ("dipddpm.nn", "NETS")}


@dataclass(frozen=True)
class Domain:
    """One searched config key: kind, bounds or values, and an optional condition."""

    key: str
    kind: str  # uniform | loguniform | int | choice | grid
    low: float | int | None = None
    high: float | int | None = None
    step: int | float | None = None  # int: step between values (inclusive bounds)
    log: bool = False  # int on a log scale
    values: tuple = ()  # choice / grid
    when: tuple[tuple[str, tuple], ...] = ()  # ((key, allowed values), ...): all must hold

    def active(self, params: Mapping[str, Any]) -> bool:
        return all(k in params and params[k] in allowed for k, allowed in self.when)


@dataclass(frozen=True)
class SearcherSpec:
    type: str = "optuna"  # optuna | grid (Tune's grid/random variant generator)
    sampler: str = "tpe"  # optuna sampler: tpe (seeded, constant liar) | cmaes | gp | random
    seed: int = 0
    max_concurrent: int = 2  # trials running at once


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "asha"  # asha | none
    grace_period: int = 50  # iterations before ASHA may stop a trial
    reduction_factor: float = 3.0
    max_t: int | None = None  # iterations; null = the largest iteration budget in the space
    brackets: int = 1
    # the axis rungs are counted on: total | final | gated (sweep/rung_rules.py); null = the
    # method's default (staged methods: see rung_rules.DEFAULT_RULE)
    rung_rule: str | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0  # fractions allowed, e.g. 0.25 = four trials per GPU


@dataclass(frozen=True)
class Fault:
    """Fault injection for testing fault tolerance: fire in trials whose params match."""

    at_iter: int
    kind: str = "raise"  # raise: RuntimeError (retried by Tune); nan: the metric becomes NaN
    times: int = 1  # raise: how many attempts of the trial fail (counts restarts)
    when: tuple[tuple[str, Any], ...] = ()

    def matches(self, params: Mapping[str, Any]) -> bool:
        return all(params.get(k) == v for k, v in self.when)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    method: str
    problem: Mapping[str, Any]
    metric: str
    mode: str = "max"
    preset: str | None = None
    description: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    search: tuple[Domain, ...] = ()
    searcher: SearcherSpec = SearcherSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: Resources = Resources()
    num_samples: int = 8
    time_budget_s: float | None = None
    storage: str = "results"
    storage_options: Mapping[str, str] = field(default_factory=dict)  # s3 endpoint_url, region
    checkpoint_every: int = 100  # iterations between trial checkpoints (rounded to reports)
    max_failures: int = 1  # restarts of a crashed trial from its last checkpoint
    seed: int = 0  # trial seed (net init, z, stage noise); the problem has its own seed
    summary_by: str | None = None  # a searched key: the final table shows the best per value
    faults: tuple[Fault, ...] = ()
    compact: bool = True  # at the end, many per-trial Parquet files become a few (compaction.py)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_values(self) -> dict[str, Any]:
        """Preset values overlaid with `fixed:` (what every trial starts from)."""
        from dipddpm.methods import METHODS

        return {**METHODS.get(self.method).preset_values(self.preset), **self.fixed}

    def domain(self, key: str) -> Domain | None:
        return next((d for d in self.search if d.key == key), None)

    def trial_seed(self, params: Mapping[str, Any]) -> int:
        """A trial's seed: the searched `seed` when the space has one, else `seed:`."""
        return int(params.get("seed", self.seed))

    def resolved_dict(self) -> dict[str, Any]:
        """The spec as run, for spec.resolved.yaml: smoke and CLI overrides applied, the
        preset expanded into `fixed:` (every config value a trial starts from, searched keys
        left out) and every section's defaults filled in. It parses back to the same spec."""
        from dipddpm.config import build, to_dict
        from dipddpm.methods import METHODS

        m = METHODS.get(self.method)
        searched = {d.key for d in self.search}
        fixed = {k: v for k, v in to_dict(build(m.config_cls, self.base_values)).items()
                 if k not in searched}
        out = {k: v for k, v in self.raw.items() if k != "smoke"}
        out.update(
            name=self.name, method=self.method, preset=self.preset,
            problem=dict(self.problem), metric=self.metric, mode=self.mode, fixed=fixed,
            searcher=dataclasses.asdict(self.searcher),
            scheduler=dataclasses.asdict(self.scheduler),
            resources=dataclasses.asdict(self.resources), num_samples=self.num_samples,
            time_budget_s=self.time_budget_s, storage=self.storage,
            storage_options=dict(self.storage_options),
            checkpoint_every=self.checkpoint_every, max_failures=self.max_failures,
            seed=self.seed, summary_by=self.summary_by)
        return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec not found: {path}; give the path of a YAML spec, "
                          f"e.g. sweeps/quick.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {first_line(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep spec is a YAML mapping (method:, problem:, ...), "
                          f"got {type(data).__name__}")
    data.setdefault("name", path.stem)
    return data


def merge(base: Mapping, over: Mapping) -> dict:
    """Deep merge of mappings: `over` wins; nested mappings are merged key by key, except a
    `search:` block (whole domains are replaced) and a `problem:` naming its own image or
    dataset (it replaces the problem)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if k == "problem" and isinstance(v, Mapping) and (
                {"image", "images", "dataset"} & set(v)):
            out[k] = copy.deepcopy(dict(v))  # a different image/dataset: a whole new problem
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k != "search":
            out[k] = merge(out[k], v)
        elif k == "search" and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}  # a smoke block replaces whole domains
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_override(data: dict, item: str) -> None:
    """Apply a CLI `--set a.b=value` (value read as YAML) to the raw spec mapping."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {item!r}; e.g. --set problem.size=64")
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a mapping in the spec")
    node[parts[-1]] = value


def load_spec(path: str | Path, smoke: bool = False, sets: list[str] | None = None,
              num_samples: int | None = None, storage: str | None = None) -> SweepSpec:
    """Read, override (smoke block, --set, --num-samples, --storage) and validate a spec."""
    data = load_yaml(path)
    block = data.get("smoke")
    if smoke and not isinstance(block, Mapping):
        raise ConfigError(f"{path}: --smoke needs a `smoke:` mapping of overrides in the "
                          f"spec (e.g. smoke: {{num_samples: 2, fixed: {{iters: 20}}}})")
    overrides(data, sets, num_samples, storage)
    if not smoke:
        return parse_spec(data)
    # a smoke run tests the spec that goes to the cluster: the whole spec must be valid too
    # (its problem is loaded by the real run; the smoke run loads the smoke problem)
    parse_spec(data, load_problem=False)
    # a smoke run is another sweep: its results never mix with the real run's
    data = merge({**data, "name": f"{data['name']}-smoke"}, block)
    overrides(data, sets, num_samples, storage)  # the command line wins over the smoke block
    return parse_spec(data)


def overrides(data: dict, sets: list[str] | None, num_samples: int | None,
              storage: str | None) -> None:
    """The command line's --set, --num-samples and --storage, applied to a raw spec."""
    for item in sets or []:
        set_override(data, item)
    if num_samples is not None:
        data["num_samples"] = num_samples
    if storage is not None:
        data["storage"] = storage


def _mapping(data: Mapping, key: str) -> dict:
    v = data.get(key) or {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {v!r}")
    return dict(v)


def _sub(cls, data: Mapping, key: str):
    """Build a small frozen spec section, naming the section in errors."""
    values = _mapping(data, key)
    try:
        return build(cls, values)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None


def parse_spec(data: Mapping[str, Any], load_problem: bool = True) -> SweepSpec:
    """Validate a raw spec mapping (after overrides) and return the frozen spec.
    `load_problem` false skips building the problem (loading its image, dataset or
    checkpoint): for readers of a finished sweep, e.g. `sweep status` from another folder."""
    from dipddpm.methods import METHODS

    data = dict(data)
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"unknown spec key {unknown[0]!r}{closest(unknown[0], list(TOP_KEYS))};"
                          f" valid keys: {', '.join(TOP_KEYS)}")
    for key in ("method", "problem", "metric"):
        if key not in data:
            raise ConfigError(f"spec needs `{key}:` (e.g. method: guided_dip, problem: "
                              f"{{image: skimage:astronaut}}, metric: psnr_best)")
    try:
        method = METHODS.get(str(data["method"]))
    except ConfigError as e:
        raise ConfigError(f"method: {e}") from None
    name = str(data.get("name") or "")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"name must be a plain directory name, got {name!r}")

    preset = data.get("preset")
    try:
        preset_values = method.preset_values(preset)
    except ConfigError as e:
        raise ConfigError(f"preset: {e}") from None
    metric = str(data["metric"])
    if metric not in method.metrics:
        raise ConfigError(f"metric: {metric!r} is not reported by {method.name}"
                          f"{closest(metric, list(method.metrics))}; use one of: "
                          f"{', '.join(method.metrics)}")
    mode = data.get("mode", "max")
    if mode not in ("max", "min"):
        raise ConfigError(f"mode must be max or min, got {mode!r}")

    fixed = _mapping(data, "fixed")
    base_values = {**preset_values, **fixed}
    try:
        base_cfg = build(method.config_cls, base_values)
    except ConfigError as e:
        raise ConfigError(f"fixed: {e}") from None
    if getattr(base_cfg, "epochs", None) is not None or "epochs" in _mapping(data, "search"):
        raise ConfigError(f"fixed.epochs: sweeps count iterations ({method.iters_key}: ASHA's "
                          f"time axis); set epochs: null and {method.iters_key}: N instead")
    search = parse_search(_mapping(data, "search"), method.config_cls, base_values)
    check_es_metric(metric, base_cfg, search)
    searched = {d.key for d in search}
    clash = searched & set(fixed)
    if clash:
        k = sorted(clash)[0]
        raise ConfigError(f"search.{k}: {k!r} is also in fixed:; keep it in one of them")

    searcher = _sub(SearcherSpec, data, "searcher")
    if searcher.type not in SEARCHERS:
        raise ConfigError(f"searcher.type must be one of {', '.join(SEARCHERS)}, got "
                          f"{searcher.type!r}")
    if searcher.sampler not in SAMPLERS:
        raise ConfigError(f"searcher.sampler must be one of {', '.join(SAMPLERS)}, got "
                          f"{searcher.sampler!r}{closest(searcher.sampler, list(SAMPLERS))}")
    if searcher.max_concurrent < 1:
        raise ConfigError(f"searcher.max_concurrent must be >= 1, got {searcher.max_concurrent}")
    grids = [d.key for d in search if d.kind == "grid"]
    if grids and searcher.type == "optuna":
        raise ConfigError(f"search.{grids[0]}: grid domains need `searcher: {{type: grid}}`; "
                          f"with the Optuna searcher use choice: instead")
    conditional = [d.key for d in search if d.when]
    if conditional and searcher.type == "grid":
        raise ConfigError(f"search.{conditional[0]}.when: conditional keys need the Optuna "
                          f"searcher (searcher: {{type: optuna}}); drop when: for a grid")

    scheduler = _sub(SchedulerSpec, data, "scheduler")
    if scheduler.type not in SCHEDULERS:
        raise ConfigError(f"scheduler.type must be asha or none, got {scheduler.type!r}")
    iters_key = method.iters_key
    budget = max_budget(search, base_cfg, iters_key)
    if scheduler.type == "asha":
        max_t = scheduler.max_t if scheduler.max_t is not None else budget
        if scheduler.grace_period < 1:
            raise ConfigError(f"scheduler.grace_period must be >= 1 iteration, got "
                              f"{scheduler.grace_period}")
        if scheduler.grace_period > max_t:
            raise ConfigError(f"scheduler.grace_period ({scheduler.grace_period}) > max_t "
                              f"({max_t} iterations); lower grace_period or raise max_t / "
                              f"{iters_key}")
        if scheduler.reduction_factor <= 1:
            raise ConfigError(f"scheduler.reduction_factor must be > 1, got "
                              f"{scheduler.reduction_factor}")
        if max_t < budget:
            raise ConfigError(f"scheduler.max_t ({max_t}) < the largest {iters_key} budget "
                              f"({budget}): ASHA would stop every trial at max_t and none "
                              f"could complete; raise max_t or leave it out (default: "
                              f"{budget})")
        scheduler = dataclasses.replace(scheduler, max_t=max_t)
    check_rung_rule(scheduler, method)

    resources = _sub(Resources, data, "resources")
    for k in ("cpu", "gpu"):
        v = getattr(resources, k)
        if v < 0:
            raise ConfigError(f"resources.{k} must be >= 0, got {v}")
        if 0 < v < RESOURCE_GRANULARITY:  # Ray refuses such a request at schedule time
            raise ConfigError(f"resources.{k} = {v} is below Ray's granularity "
                              f"({RESOURCE_GRANULARITY}); use 0 or at least "
                              f"{RESOURCE_GRANULARITY}")
    if resources.gpu > 1 and not float(resources.gpu).is_integer():
        raise ConfigError(f"resources.gpu above 1 must be whole GPUs, got {resources.gpu}")

    ints = {"num_samples": 1, "checkpoint_every": 1, "max_failures": 0}
    values: dict[str, Any] = {}
    for k, lo in ints.items():
        if k in data:
            v = coerce(k, data[k], int)
            if v < lo:
                raise ConfigError(f"{k} must be >= {lo}, got {v}")
            values[k] = v
    if data.get("time_budget_s") is not None:
        tb = coerce("time_budget_s", data["time_budget_s"], float)
        if tb <= 0:
            raise ConfigError(f"time_budget_s must be > 0 seconds (or null), got {tb}")
        values["time_budget_s"] = tb
    storage = str(data.get("storage") or "results")
    storage_options = parse_storage_options(data.get("storage_options"))
    summary_by = data.get("summary_by")
    if summary_by is not None and summary_by not in searched:
        raise ConfigError(f"summary_by: {summary_by!r} is not a searched key; use one of: "
                          f"{', '.join(sorted(searched)) or '(none)'}")
    faults = parse_faults(data.get("faults") or [])

    problem = {**problem_preset(method, preset), **_mapping(data, "problem")}
    spec = SweepSpec(
        name=name, method=method.name, problem=problem, metric=metric, mode=mode,
        preset=preset, description=str(data.get("description") or ""), fixed=fixed,
        search=search, searcher=searcher, scheduler=scheduler, resources=resources,
        storage=storage, storage_options=storage_options,
        seed=coerce("seed", data.get("seed", 0), int),
        summary_by=summary_by, faults=faults, raw=dict(data),
        compact=coerce("compact", data.get("compact", True), bool), **values)
    check_space(spec, base_cfg, load_problem)
    return spec


def check_space(spec: SweepSpec, base_cfg: Any, load_problem: bool) -> None:
    """Every corner of the search space builds a valid config (`corners.py`); with the problem
    loaded (a missing image fails here, before Ray starts) it also meets the method's rules
    joining config and problem."""
    from dipddpm.methods import METHODS
    from dipddpm.sweep.corners import check_corners

    method = METHODS.get(spec.method)

    def build_trial(params: Mapping[str, Any]) -> Any:
        values = {k: v for k, v in params.items() if k not in TRIAL_KEYS}
        return build(method.config_cls, {**spec.base_values, **values})

    check = None
    if load_problem:
        problems = check_problem(spec, base_cfg)
        if method.check_trial is not None:
            def check(cfg: Any) -> None:
                for problem in problems:
                    _check_image(method, cfg, problem)
    check_corners(spec.search, build_trial, check)


def _check_image(method: Any, cfg: Any, problem: Any) -> None:
    """The method's trial rule for one problem; in a study the error names the image."""
    from dipddpm.errors import DipddpmError

    try:
        method.check_trial(cfg, problem)
    except DipddpmError as e:
        raise type(e)(f"image {problem.name}: {first_line(e)}") from None


def parse_storage_options(raw: Any) -> dict[str, str]:
    """`storage_options: {endpoint_url: http://minio:9000, region: us-east-1}` (s3:// only;
    credentials stay in the environment, never in a spec)."""
    from dipddpm.sweep.storage import STORAGE_OPTIONS

    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"storage_options must be a mapping such as {{endpoint_url: "
                          f"http://127.0.0.1:9000, region: us-east-1}}, got {raw!r}")
    for k, v in raw.items():
        if k not in STORAGE_OPTIONS:
            hint = closest(str(k), list(STORAGE_OPTIONS))
            raise ConfigError(f"storage_options.{k}: unknown key{hint}; valid keys: "
                              f"{', '.join(STORAGE_OPTIONS)} (credentials come from "
                              f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile)")
        if not isinstance(v, str) or not v:
            raise ConfigError(f"storage_options.{k} must be a non-empty string, got {v!r}")
    return dict(raw)


def _bounds(key: str, kind: str, raw: Any, tp: Any) -> tuple:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ConfigError(f"search.{key}: {kind} takes [low, high], got {raw!r}; "
                          f"e.g. {{{kind}: [0.001, 0.1]}}")
    lo, hi = (coerce(f"search.{key}", v, tp) for v in raw)
    if lo > hi:
        raise ConfigError(f"search.{key}: low {lo} > high {hi}; swap them")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"search.{key}: loguniform needs low > 0, got {lo}; use uniform or "
                          f"a positive low")
    return lo, hi


def parse_search(raw: Mapping[str, Any], cfg_cls: type, base_values: Mapping) -> tuple:
    names = field_names(cfg_cls) + list(TRIAL_KEYS)
    types_ = {**field_types(cfg_cls), **TRIAL_KEYS}
    domains = []
    for key, d in raw.items():
        if key not in names:
            raise ConfigError(f"search.{key}: unknown config key for {cfg_cls.__name__}"
                              f"{closest(key, names)}; valid keys: {', '.join(names)}")
        if not isinstance(d, Mapping):
            raise ConfigError(f"search.{key}: a domain is a mapping such as {{choice: [a, b]}}"
                              f" or {{loguniform: [1e-4, 1e-2]}}, got {d!r}")
        kinds = [k for k in d if k in DOMAIN_KINDS]
        extra = [k for k in d if k not in (*DOMAIN_KINDS, "when", "step", "log")]
        if len(kinds) != 1 or extra:
            bad = extra[0] if extra else ", ".join(kinds) or "(none)"
            raise ConfigError(f"search.{key}: give exactly one of {', '.join(DOMAIN_KINDS)} "
                              f"(plus optional when:/step:/log:), got {bad}")
        kind = kinds[0]
        tp = types_[key]
        kw: dict[str, Any] = {}
        if kind in ("uniform", "loguniform"):
            if key in TRIAL_KEYS:
                raise ConfigError(f"search.{key}: a seed is an integer; use int:, choice: or "
                                  f"grid:, e.g. {{grid: [0, 1, 2]}}")
            kw["low"], kw["high"] = _bounds(key, kind, d[kind], float)
            coerce(key, kw["low"], tp)  # the field must take a number
        elif kind == "int":
            kw["low"], kw["high"] = _bounds(key, kind, d[kind], int)
            coerce(key, kw["low"], tp)
            kw["step"] = coerce(f"search.{key}.step", d.get("step", 1), int)
            kw["log"] = coerce(f"search.{key}.log", d.get("log", False), bool)
            if kw["step"] < 1:
                raise ConfigError(f"search.{key}.step must be >= 1, got {kw['step']}")
            if kw["log"] and (kw["low"] < 1 or kw["step"] != 1):
                raise ConfigError(f"search.{key}: int with log: true needs low >= 1 and step 1")
        else:
            vals = d[kind]
            if not isinstance(vals, list | tuple) or not vals:
                raise ConfigError(f"search.{key}: {kind} takes a non-empty list, got {vals!r}")
            for v in vals:
                try:
                    if key in TRIAL_KEYS:
                        coerce(f"search.{key}", v, TRIAL_KEYS[key])
                    else:
                        build(cfg_cls, {**base_values, key: v})
                except ConfigError as e:
                    raise ConfigError(f"search.{key}: value {v!r}: {e}") from None
                check_named(key, v)
            if len(set(map(repr, vals))) != len(vals):
                raise ConfigError(f"search.{key}: {kind} values repeat: {vals!r}")
            kw["values"] = tuple(vals)
        if "step" in d and kind != "int" or "log" in d and kind != "int":
            raise ConfigError(f"search.{key}: step:/log: apply to int domains only "
                              f"(use loguniform for a log-scale float)")
        kw["when"] = parse_when(key, d.get("when"), raw)
        domains.append(Domain(key=key, kind=kind, **kw))
    return condition_order(domains)


def condition_order(domains: list[Domain]) -> tuple[Domain, ...]:
    """The domains with every `when:` key before the keys it conditions (a YAML mapping has no
    order, so a spec written back with sorted keys means the same); otherwise as written.
    A cycle of conditions is the one error, naming it."""
    by_key = {d.key: d for d in domains}
    out: list[Domain] = []
    placed: set[str] = set()

    def place(d: Domain, path: tuple[str, ...]) -> None:
        if d.key in placed:
            return
        if d.key in path:
            cycle = " -> ".join((*path[path.index(d.key):], d.key))
            raise ConfigError(f"search: the when: conditions form a cycle ({cycle}); a key "
                              f"cannot depend on itself, drop one of these conditions")
        for k, _ in d.when:
            place(by_key[k], (*path, d.key))
        placed.add(d.key)
        out.append(d)

    for d in domains:
        place(d, ())
    return tuple(out)


def parse_when(key: str, when: Any, raw: Mapping) -> tuple:
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"search.{key}.when must map a searched key to a value or list, "
                          f"e.g. when: {{scheduler: exp_weighted}}; got {when!r}")
    out = []
    for k, v in when.items():
        if k not in raw or k == key:
            raise ConfigError(f"search.{key}.when: {k!r} is not another searched key; "
                              f"conditions refer to choice/grid keys in search:")
        dom = raw[k]
        allowed = tuple(v) if isinstance(v, list | tuple) else (v,)
        choices = dom.get("choice", dom.get("grid")) if isinstance(dom, Mapping) else None
        if choices is None:
            raise ConfigError(f"search.{key}.when: {k!r} must be a choice or grid domain")
        missing = [a for a in allowed if a not in choices]
        if missing:
            raise ConfigError(f"search.{key}.when: {missing[0]!r} is not one of {k}'s values "
                              f"{list(choices)!r}")
        out.append((k, allowed))
    return tuple(out)


def check_named(key: str, value: Any) -> None:
    """A value of a registry-named field (scheduler, beta_schedule, net) must be registered."""
    if key not in NAMED_FIELDS or not isinstance(value, str):
        return
    import importlib

    mod, attr = NAMED_FIELDS[key]
    try:
        registry = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError):
        return
    try:
        registry.get(value)
    except ConfigError as e:
        raise ConfigError(f"search.{key}: {e}") from None


def parse_faults(raw: Any) -> tuple:
    if not isinstance(raw, list):
        raise ConfigError(f"faults must be a list of {{at_iter, kind, times, when}}, got {raw!r}")
    out = []
    for i, f in enumerate(raw):
        if not isinstance(f, Mapping):
            raise ConfigError(f"faults[{i}] must be a mapping, got {f!r}")
        when = f.get("when") or {}
        try:
            fault = build(Fault, {**{k: v for k, v in f.items() if k != "when"},
                                  "when": tuple(dict(when).items())})
        except ConfigError as e:
            raise ConfigError(f"faults[{i}]: {e}") from None
        if fault.kind not in FAULT_KINDS:
            raise ConfigError(f"faults[{i}].kind must be raise or nan, got {fault.kind!r}")
        out.append(fault)
    return tuple(out)


def check_rung_rule(scheduler: SchedulerSpec, method: Any) -> None:
    """A rung rule by name; one computed from a key the method does not report is refused."""
    from dipddpm.sweep.rung_rules import RUNG_RULES, rule_for

    if scheduler.rung_rule is not None and scheduler.rung_rule not in RUNG_RULES:
        try:
            RUNG_RULES.get(scheduler.rung_rule)
        except ConfigError as e:  # it lists the valid names
            raise ConfigError(f"scheduler.rung_rule: {e}") from None
    rule = rule_for(method.name, scheduler.rung_rule)
    if rule.needs is not None and rule.needs not in method.metrics:
        raise ConfigError(f"scheduler.rung_rule: {rule.name!r} counts rungs in the final stage,"
                          f" which {method.name} has no notion of (it reports no "
                          f"{rule.needs}); use rung_rule: total")


def check_es_metric(metric: str, base_cfg: Any, search: tuple[Domain, ...]) -> None:
    """`metric: psnr_es` is the GT-free rule's pick: a trial without a rule has none."""
    if metric != "psnr_es":
        return
    d = next((x for x in search if x.key == "es_rule"), None)
    rules = set(d.values) if d is not None and d.kind in ("choice", "grid") else {
        getattr(base_cfg, "es_rule", "none")}
    if "none" in rules:
        raise ConfigError("metric: psnr_es is the pick of a GT-free early-stopping rule, but "
                          "es_rule is none (for some trials); set fixed.es_rule: emv (or wmv), "
                          "or use metric: psnr_best")


def max_budget(search: tuple[Domain, ...], base_cfg: Any, iters_key: str) -> int:
    """The largest iteration budget any trial can have (the default ASHA max_t)."""
    d = next((x for x in search if x.key == iters_key), None)
    if d is None:
        return int(getattr(base_cfg, iters_key))
    if d.kind in ("choice", "grid"):
        return int(max(d.values))
    return int(d.high)


def problem_preset(method: Any, preset: str | None) -> dict:
    """A method module's PROBLEM_PRESETS[preset] (e.g. guided_dip's 128x128 forward noise)."""
    import sys

    presets = getattr(sys.modules.get(method.run.__module__), "PROBLEM_PRESETS", {})
    return dict(presets.get(preset, {})) if preset else {}


def check_problem(spec: SweepSpec, base_cfg: Any) -> list[Any]:
    """Build the problem once (loads the image; a study: every image of its set, each
    replicate's observation): a missing file fails before Ray starts."""
    from dipddpm.errors import DipddpmError
    from dipddpm.methods import METHODS
    from dipddpm.methods.study_pairs import build_pairs, is_study

    method = METHODS.get(spec.method)
    if is_study(spec.problem) and "dataset" in spec.problem:
        raise ConfigError(f"problem: images:/replicates: make a study of image problems; "
                          f"{spec.method} trains on a dataset: drop them")
    try:
        pairs = build_pairs(method, dict(spec.problem), base_cfg, spec.seed)
    except DipddpmError as e:
        key = "fixed.checkpoint" if "checkpoint" in str(e) else (
            "problem.data_root" if "dataset" in spec.problem else
            "problem.images" if "images" in spec.problem else "problem.image")
        raise ConfigError(f"problem: {e}; a spec key can be overridden on the command line, "
                          f"e.g. --set {key}=PATH") from None
    return [p.problem for p in pairs]
