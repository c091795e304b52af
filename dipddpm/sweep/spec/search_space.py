"""A spec's `search:` block: domains (uniform, loguniform, int, choice, grid) with `when:`
conditions, each checked against the method's config, in condition order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dipddpm.config import checked, coerce, field_names, field_types
from dipddpm.errors import ConfigError, closest
from dipddpm.sweep.spec.schema import DOMAIN_KINDS, TRIAL_KEYS, Domain


def _stage_schedulers():
    from dipddpm.stages.schedulers import STAGE_SCHEDULERS

    return STAGE_SCHEDULERS


def _beta_schedules():
    from dipddpm.diffusion.schedules import SCHEDULES

    return SCHEDULES


def _nets():
    from dipddpm.nn import NETS

    return NETS


# str config fields whose values name a registered plug-in: checked at validation time
NAMED_FIELDS = {"scheduler": _stage_schedulers, "beta_schedule": _beta_schedules, "net": _nets}


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
            for v in vals:  # its type here; its range and joint rules at the corners
                try:
                    if key in TRIAL_KEYS:
                        coerce(key, v, TRIAL_KEYS[key])
                    else:
                        checked(cfg_cls, {key: v})
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
    try:
        NAMED_FIELDS[key]().get(value)
    except ConfigError as e:
        raise ConfigError(f"search.{key}: {e}") from None
