"""Frozen, typed configs that reject unknown keys.

Every method config is a `@dataclass(frozen=True)`; one comment per field says its unit, range
and why. `build(cls, values)` turns a plain mapping (YAML, `--set key=value`, a Tune trial's
config) into the dataclass, coercing strings and refusing unknown keys or wrong types with a
message that names the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from dipddpm.errors import ConfigError, closest

C = TypeVar("C")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse CLI `--set key=value` pairs; values are read as YAML scalars (1e-3, true, [1,2])."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}; e.g. --set lr=0.001")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _union(name: str, value: Any, tp: Any) -> Any:
    """The first member type of a union that takes the value (null for an Optional)."""
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(name, value, arg)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{name}: cannot use {value!r}")


def _literal(name: str, value: Any, tp: Any) -> Any:
    choices = get_args(tp)
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            f"{closest(str(value), [str(c) for c in choices])}"
        )
    return value


def _tuple(name: str, value: Any, tp: Any) -> tuple:
    """A fixed-length tuple[a, b] or a tuple[a, ...]; a string is read as a YAML list."""
    args = get_args(tp)
    if isinstance(value, str):
        value = yaml.safe_load(value.replace("(", "[").replace(")", "]"))
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{name} must be a list, got {value!r}; e.g. {name}=[1, 2]")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(name, v, args[0]) for v in value)
    if len(value) != len(args):
        raise ConfigError(f"{name} must have {len(args)} values, got {len(value)}: {value!r}")
    return tuple(coerce(name, v, a) for v, a in zip(value, args, strict=True))


def _bool(name: str, value: Any, tp: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _int(name: str, value: Any, tp: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value)) if float(value).is_integer() else int(value)
        except ValueError:
            pass
    if hasattr(value, "item"):  # numpy scalar
        return coerce(name, value.item(), tp)
    raise ConfigError(f"{name} must be an integer, got {value!r}")


def _float(name: str, value: Any, tp: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hasattr(value, "item"):
        return coerce(name, value.item(), tp)
    raise ConfigError(f"{name} must be a number, got {value!r}")


def _str(name: str, value: Any, tp: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{name} must be a string, got {value!r}")


def _dict(name: str, value: Any, tp: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, got {value!r}")
    return dict(value)


# how each annotated type is coerced: by its origin (Union, Literal, tuple, dict), else by type
_BY_ORIGIN = {Union: _union, types.UnionType: _union, Literal: _literal, tuple: _tuple,
              dict: _dict}
_BY_TYPE = {bool: _bool, int: _int, float: _float, str: _str, dict: _dict}


def coerce(name: str, value: Any, tp: Any) -> Any:
    """Coerce `value` to the annotated type `tp`, or raise ConfigError naming the key."""
    if tp is Any:
        return value
    rule = _BY_ORIGIN.get(get_origin(tp)) or _BY_TYPE.get(tp)
    return value if rule is None else rule(name, value, tp)


def build(cls: type[C], values: Mapping[str, Any] | None = None, *, base: C | None = None) -> C:
    """Build `cls` from `values` (on top of `base` or the defaults); unknown keys are an error."""
    values = dict(values or {})
    names = field_names(cls)
    unknown = [k for k in values if k not in names]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown config key {key!r} for {cls.__name__}{closest(key, names)}; "
            f"valid keys: {', '.join(names)}"
        )
    types_ = field_types(cls)
    coerced = {k: coerce(k, v, types_[k]) for k, v in values.items()}
    if base is not None:
        return dataclasses.replace(base, **coerced)
    try:
        return cls(**coerced)
    except TypeError as e:  # a required field missing
        raise ConfigError(f"{cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict (tuples as lists) for JSON, YAML and Parquet."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def check(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless cond; for range checks in __post_init__."""
    if not cond:
        raise ConfigError(message)
