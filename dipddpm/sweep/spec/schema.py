"""The sweep spec's schema: its sections as frozen dataclasses, each checking its own rules
in `__post_init__`; the top-level keys and the resolved spec follow from the fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dipddpm.cluster.devices import RESOURCE_GRANULARITY
from dipddpm.errors import ConfigError, closest

DOMAIN_KINDS = ("uniform", "loguniform", "int", "choice", "grid")
FAULT_KINDS = ("raise", "nan")
# searchable keys that are not method config fields: `seed` is the trial seed (net init, z,
# stage noise), so `search: {seed: {grid: [0, 1, 2]}}` repeats each configuration over seeds
TRIAL_KEYS = {"seed": int}


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
    # a registered searcher (sweep/searchers.py): optuna | grid (Tune's variant generator)
    type: str = "optuna"
    sampler: str = "tpe"  # optuna sampler: tpe (seeded, constant liar) | cmaes | gp | random
    seed: int = 0
    max_concurrent: int = 2  # trials running at once

    def __post_init__(self) -> None:
        from dipddpm.config import check_name
        from dipddpm.sweep.samplers import SAMPLERS
        from dipddpm.sweep.searchers import SEARCHERS

        check_name("searcher.type", self.type, SEARCHERS)
        if self.sampler not in SAMPLERS:
            names = SAMPLERS.names()
            raise ConfigError(f"searcher.sampler must be one of {', '.join(names)}, got "
                              f"{self.sampler!r}{closest(str(self.sampler), names)}")
        if self.max_concurrent < 1:
            raise ConfigError(f"searcher.max_concurrent must be >= 1, got "
                              f"{self.max_concurrent}")


@dataclass(frozen=True)
class SchedulerSpec:
    """The `scheduler:` section: `type` names a Tune scheduler (dipddpm/trial_schedulers/), the
    other keys are that scheduler's own section (its entry's `section` dataclass, which checks
    itself). `spec.scheduler.KEY` reads a key of that section."""

    type: str = "asha"  # a registered Tune scheduler (the Registries below): asha | none | pbt
    options: Any = None  # its section (the keys beside type); null: its defaults

    def __post_init__(self) -> None:
        from dipddpm.config import check_name
        from dipddpm.trial_schedulers import TUNE_SCHEDULERS

        check_name("scheduler.type", self.type, TUNE_SCHEDULERS)
        section = TUNE_SCHEDULERS.get(self.type).section
        if self.options is None:
            object.__setattr__(self, "options", section())
        elif not isinstance(self.options, section):
            raise ConfigError(f"scheduler: a {self.type} section must be {section.__name__}, "
                              f"got {type(self.options).__name__}")

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SchedulerSpec:
        """The section from the spec's mapping: `type` (default asha) and its entry's keys."""
        from dipddpm.config import check_name
        from dipddpm.trial_schedulers import TUNE_SCHEDULERS

        kind = str(raw.get("type", "asha"))
        check_name("scheduler.type", kind, TUNE_SCHEDULERS)
        entry = TUNE_SCHEDULERS.get(kind)
        return cls(kind, entry.build({k: v for k, v in raw.items() if k != "type"}))

    def __getattr__(self, key: str) -> Any:  # a key of the scheduler's own section
        if key.startswith("__") or key in ("type", "options"):
            raise AttributeError(key)
        return getattr(self.options, key)

    @property
    def entry(self) -> Any:
        from dipddpm.trial_schedulers import TUNE_SCHEDULERS

        return TUNE_SCHEDULERS.get(self.type)

    @property
    def rung_rule(self) -> str | None:
        """The section's rung rule; null (also for a scheduler without one): the method's."""
        return getattr(self.options, "rung_rule", None)

    def value(self, key: str) -> Any:
        """A key of its section, None where the section has no such key."""
        return getattr(self.options, key, None)

    def as_dict(self) -> dict[str, Any]:
        """As the spec writes it: `type` and its section's keys."""
        return {"type": self.type, **self.entry.values(self.options)}


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0  # fractions allowed, e.g. 0.25 = four trials per GPU

    def __post_init__(self) -> None:
        for k in ("cpu", "gpu"):
            v = getattr(self, k)
            if v < 0:
                raise ConfigError(f"resources.{k} must be >= 0, got {v}")
            if 0 < v < RESOURCE_GRANULARITY:  # Ray refuses such a request at schedule time
                raise ConfigError(f"resources.{k} = {v} is below Ray's granularity "
                                  f"({RESOURCE_GRANULARITY}); use 0 or at least "
                                  f"{RESOURCE_GRANULARITY}")
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise ConfigError(f"resources.gpu above 1 must be whole GPUs, got {self.gpu}")


@dataclass(frozen=True)
class Fault:
    """Fault injection for testing fault tolerance: fire in trials whose params match."""

    at_iter: int
    kind: str = "raise"  # raise: RuntimeError (retried by Tune); nan: the metric becomes NaN
    times: int = 1  # raise: how many attempts of the trial fail (counts restarts)
    when: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"kind must be raise or nan, got {self.kind!r}")

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
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    resources: Resources = field(default_factory=Resources)
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
    baselines: tuple[str, ...] = ()  # run once on the study's observations (sweep/baselines.py)
    # where the sweep is also recorded: backend name -> its options (dipddpm/tracking/)
    tracking: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # sound, but likely unmeant

    @property
    def base_values(self) -> dict[str, Any]:
        """Preset values overlaid with `fixed:` (what every trial starts from)."""
        from dipddpm.methods import METHODS

        return {**METHODS.get(self.method).preset_values(self.preset), **self.fixed}

    @property
    def trials(self) -> int:
        """The trials the sweep runs: a grid searcher (its entry's `grid`) runs every grid
        point num_samples times; the others run num_samples trials."""
        from dipddpm.sweep.searchers import searcher_of

        n = self.num_samples
        if searcher_of(self).grid:
            for d in self.search:
                n *= len(d.values) if d.kind == "grid" else 1
        return n

    def domain(self, key: str) -> Domain | None:
        return next((d for d in self.search if d.key == key), None)

    def trial_seed(self, params: Mapping[str, Any]) -> int:
        """A trial's seed: the searched `seed` when the space has one, else `seed:`."""
        return int(params.get("seed", self.seed))

    def resolved_dict(self) -> dict[str, Any]:
        """The spec as run, for spec.resolved.yaml: smoke and CLI overrides applied, the
        preset expanded into `fixed:` (every config value a trial starts from, searched keys
        left out) and every section's defaults filled in; `search:` and `faults:` as
        written. Derived from the fields; it parses back to the same spec."""
        from dipddpm.config import build, to_dict
        from dipddpm.methods import METHODS

        m = METHODS.get(self.method)
        searched = {d.key for d in self.search}
        out = {k: v for k, v in self.raw.items() if k != "smoke"}
        for f in dataclasses.fields(self):
            if f.name in ("raw", "search", "faults", "warnings"):
                continue  # the mapping itself; domains and faults as written; derived
            v = getattr(self, f.name)
            if hasattr(v, "as_dict"):  # a section whose keys depend on its type
                v = v.as_dict()
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)  # as YAML writes it back
            out[f.name] = v
        out["fixed"] = {k: v for k, v in to_dict(build(m.config_cls, self.base_values)).items()
                        if k not in searched}
        return out


# every field is a top-level key (raw is the mapping itself, warnings are derived), plus the
# smoke override block
TOP_KEYS = tuple(f.name for f in dataclasses.fields(SweepSpec)
                 if f.name not in ("raw", "warnings")) + ("smoke",)
