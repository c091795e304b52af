"""Validating a raw spec mapping into the frozen `SweepSpec`: everything is checked here, before
Ray starts, each bad input one `ConfigError` naming the key and the fix. The sections check
their own rules (schema.py); what joins sections, the method and the problem is checked here,
one small step per rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dipddpm.config import build, coerce
from dipddpm.dataset.storage_backends import check_storage
from dipddpm.errors import ConfigError, closest, first_line
from dipddpm.sweep.baselines import check_baselines
from dipddpm.sweep.spec.schema import (
    TOP_KEYS,
    TRIAL_KEYS,
    Domain,
    Fault,
    Resources,
    SchedulerSpec,
    SearcherSpec,
    SweepSpec,
)
from dipddpm.sweep.spec.search_space import parse_search
from dipddpm.tracking.spec import parse_tracking
from dipddpm.trial_schedulers import SweepFacts


def _mapping(data: Mapping, key: str) -> dict:
    v = data.get(key) or {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {v!r}")
    return dict(v)


def _sub(cls, data: Mapping, key: str):
    """Build a small frozen spec section (it checks its own rules), naming the section in
    errors that do not name it already."""
    values = _mapping(data, key)
    try:
        return build(cls, values, prefix=f"{key}.")
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith((f"{key}.", f"{key}:")) else f"{key}: {msg}") \
            from None


def _top(data: Mapping[str, Any]):
    """The top-level keys, the method, the name and the preset's values."""
    from dipddpm.methods import METHODS

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
    try:
        preset_values = method.preset_values(data.get("preset"))
    except ConfigError as e:
        raise ConfigError(f"preset: {e}") from None
    return method, name, preset_values


def _objective(data: Mapping[str, Any], method) -> tuple[str, str]:
    metric = str(data["metric"])
    if metric not in method.metrics:
        raise ConfigError(f"metric: {metric!r} is not reported by {method.name}"
                          f"{closest(metric, list(method.metrics))}; use one of: "
                          f"{', '.join(method.metrics)}")
    mode = data.get("mode", "max")
    if mode not in ("max", "min"):
        raise ConfigError(f"mode must be max or min, got {mode!r}"
                          f"{closest(str(mode), ['max', 'min'])}")
    return metric, mode


def _config_and_space(data: Mapping[str, Any], method, preset_values: dict):
    """`fixed:` on the preset (one buildable config) and the `search:` domains."""
    fixed = _mapping(data, "fixed")
    base_values = {**preset_values, **fixed}
    try:
        base_cfg = build(method.config_cls, base_values, prefix="fixed.")
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(("fixed.", "fixed:")) else f"fixed: {msg}") \
            from None
    if getattr(base_cfg, "epochs", None) is not None or "epochs" in _mapping(data, "search"):
        raise ConfigError(f"fixed.epochs: sweeps count iterations ({method.iters_key}: ASHA's "
                          f"time axis); set epochs: null and {method.iters_key}: N instead")
    search = parse_search(_mapping(data, "search"), method.config_cls, base_values)
    clash = {d.key for d in search} & set(fixed)
    if clash:
        k = sorted(clash)[0]
        raise ConfigError(f"search.{k}: {k!r} is also in fixed:; keep it in one of them")
    return fixed, base_cfg, search


def _searcher(data: Mapping[str, Any], search: tuple[Domain, ...]) -> SearcherSpec:
    from dipddpm.sweep.searchers import SEARCHERS

    searcher = _sub(SearcherSpec, data, "searcher")
    entry = SEARCHERS.get(searcher.type)
    grids = [d.key for d in search if d.kind == "grid"]
    if grids and not entry.grid:
        takes = ", ".join(n for n, e in SEARCHERS.items() if e.grid)
        raise ConfigError(f"search.{grids[0]}: grid domains need a grid searcher (searcher: "
                          f"{{type: {takes}}}); with the {searcher.type} searcher use choice: "
                          f"instead")
    conditional = [d.key for d in search if d.when]
    if conditional and not entry.conditional:
        takes = ", ".join(n for n, e in SEARCHERS.items() if e.conditional)
        raise ConfigError(f"search.{conditional[0]}.when: conditional keys need a searcher "
                          f"that samples define-by-run (searcher: {{type: {takes}}}); drop "
                          f"when: for the {searcher.type} searcher")
    return searcher


def _scheduler(data: Mapping[str, Any], facts: SweepFacts,
               searcher: SearcherSpec) -> SchedulerSpec:
    """The scheduler section (its entry's own keys), resolved against the sweep: its
    defaults that depend on the space filled in, its rules joining the spec checked."""
    from dipddpm.sweep.searchers import SEARCHERS

    raw = _mapping(data, "scheduler")
    try:
        section = SchedulerSpec.parse(raw)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(("scheduler.", "scheduler:"))
                          else f"scheduler: {msg}") from None
    entry = section.entry
    if entry.mutates_config and SEARCHERS.get(searcher.type).holds_params:
        free = ", ".join(n for n, e in SEARCHERS.items() if not e.holds_params)
        raise ConfigError(f"scheduler: {section.type} changes a running trial's config, but "
                          f"the {searcher.type} searcher records each trial's params as it "
                          f"suggested them; use searcher: {{type: {free}}}")
    return dataclasses.replace(section, options=entry.resolve(section.options, facts))


def _counts(data: Mapping[str, Any]) -> dict[str, Any]:
    """num_samples, checkpoint_every, max_failures and time_budget_s, where given."""
    values: dict[str, Any] = {}
    for k, lo in {"num_samples": 1, "checkpoint_every": 1, "max_failures": 0}.items():
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
    return values


def parse_spec(data: Mapping[str, Any], load_problem: bool = True) -> SweepSpec:
    """Validate a raw spec mapping (after overrides) and return the frozen spec.
    `load_problem` false skips building the problem (loading its image, dataset or
    checkpoint): for readers of a finished sweep, e.g. `sweep status` from another folder."""
    data = dict(data)
    method, name, preset_values = _top(data)
    metric, mode = _objective(data, method)
    fixed, base_cfg, search = _config_and_space(data, method, preset_values)
    check_es_metric(metric, base_cfg, search)
    searched = {d.key for d in search}
    summary_by = data.get("summary_by")
    if summary_by is not None and summary_by not in searched:
        raise ConfigError(f"summary_by: {summary_by!r} is not a searched key; use one of: "
                          f"{', '.join(sorted(searched)) or '(none)'}")
    preset = data.get("preset")
    counts = _counts(data)
    searcher = _searcher(data, search)
    facts = SweepFacts(method, max_budget(search, base_cfg, method.iters_key), search,
                       counts.get("checkpoint_every", SweepSpec.checkpoint_every))
    spec = SweepSpec(
        name=name, method=method.name, metric=metric, mode=mode, preset=preset,
        problem={**method.problem_preset(preset), **_mapping(data, "problem")},
        description=str(data.get("description") or ""), fixed=fixed, search=search,
        searcher=searcher, scheduler=_scheduler(data, facts, searcher),
        resources=_sub(Resources, data, "resources"),
        storage=check_storage(data.get("storage", "results")),
        storage_options=parse_storage_options(data.get("storage_options")),
        seed=coerce("seed", data.get("seed", 0), int), summary_by=summary_by,
        faults=parse_faults(data.get("faults") or []), raw=dict(data),
        compact=coerce("compact", data.get("compact", True), bool),
        baselines=check_baselines(data.get("baselines"), data.get("problem") or {}),
        tracking=parse_tracking(data.get("tracking")),
        **counts)
    check_problem_keys(method, spec.problem)
    warnings = check_space(spec, base_cfg, load_problem)
    return dataclasses.replace(spec, warnings=warnings) if warnings else spec


def check_problem_keys(method: Any, problem: Mapping[str, Any]) -> None:
    """The problem's keys, their types and ranges, without reading its image, dataset or
    checkpoint (`sweep show` works without the data; a study's images are read later)."""
    from dipddpm.methods.study_pairs import STUDY_KEYS, replicates

    replicates(problem)
    if method.check_problem_spec is None:
        return
    one = {k: v for k, v in problem.items() if k not in STUDY_KEYS}
    if "images" in problem and "image" not in one:
        one["image"] = "images"  # each image of the set stands here; read when loaded
    method.check_problem_spec(one)


def check_identical_trials(spec: SweepSpec) -> None:
    """num_samples > 1 over a space with nothing random in it runs identical trials (same
    config, same seed): an empty search, or a grid searcher's grid repeated. Checked on a
    spec a person runs (`load_spec`), not on every parse (a spec built in code for a reader
    may leave num_samples at its default)."""
    if spec.num_samples == 1 or any(d.kind != "grid" for d in spec.search):
        return
    n = spec.num_samples
    if not spec.search:
        raise ConfigError(f"num_samples: {n} trials over an empty search: would be {n} "
                          f"identical trials (same config, same seed); set num_samples: 1, "
                          f"or repeat over seeds with searcher: {{type: grid}} and search: "
                          f"{{seed: {{grid: [0, 1, 2]}}}}")
    raise ConfigError(f"num_samples: {n} repeats each of the grid's {spec.trials // n} points "
                      f"{n} times, identically (same config, same seed); set num_samples: 1, "
                      f"and add seeds to the grid for repeats (search: {{seed: {{grid: "
                      f"[0, 1]}}}})")


def check_space(spec: SweepSpec, base_cfg: Any, load_problem: bool) -> tuple[str, ...]:
    """Every corner of the search space builds a valid config (`corners.py`); with the problem
    loaded (a missing image fails here, before Ray starts) it also meets the method's rules
    joining config and problem. Returns the warnings the corners raise (the scheduler's)."""
    from dipddpm.methods import METHODS
    from dipddpm.sweep.spec.corners import check_corners

    method = METHODS.get(spec.method)
    built: list[Any] = []

    def build_trial(params: Mapping[str, Any]) -> Any:
        values = {k: v for k, v in params.items() if k not in TRIAL_KEYS}
        built.append(build(method.config_cls, {**spec.base_values, **values}))
        return built[-1]

    check = None
    if load_problem:
        problems = check_problem(spec, base_cfg)
        if method.check_trial is not None:
            def check(cfg: Any) -> None:
                for problem in problems:
                    _check_image(method, cfg, problem)
    check_corners(spec.search, build_trial, check)
    return scheduler_warnings(spec, method, built)


def scheduler_warnings(spec: SweepSpec, method: Any, configs: list[Any]) -> tuple[str, ...]:
    """What the Tune scheduler's entry warns of over the space's corner configs (ASHA: no
    final stage reaches its grace period, so it would stop nothing)."""
    return spec.scheduler.entry.warn(spec.scheduler.options, method, configs)


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
    from dipddpm.dataset.storage import STORAGE_OPTIONS

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
        except ConfigError as e:  # the field's own rule keeps its name: faults[i].kind ...
            msg = str(e)
            sep = "." if msg.split(" ", 1)[0] in ("kind", "at_iter", "times") else ": "
            raise ConfigError(f"faults[{i}]{sep}{msg}") from None
        out.append(fault)
    return tuple(out)


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
    """The problem keys a method's preset implies (e.g. guided_dip's 128x128 forward noise):
    its registry entry's `problem_presets`."""
    return method.problem_preset(preset)


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

