"""Frozen, typed configs that reject unknown keys.

Every method config is a `@dataclass(frozen=True)`; one comment per field says its unit, range
and why. `build(cls, values)` turns a plain mapping (YAML, `--set key=value`, a Tune trial's
config) into the dataclass: pydantic v2 checks and converts every value against the field's
annotation (lax mode: "1e-3" is a number, "false" a boolean, a list a tuple; no NaN or
infinity; no unknown key), then the dataclass's own `__post_init__` checks its ranges. The
dataclasses stay plain stdlib ones (`dataclasses.fields`/`replace` work on them); pydantic
only sees a TypedDict mirror of their fields. Errors are one line naming the key, the value
and the fix. A field that may legitimately be infinite says so with `AllowInf` (none does).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import AllowInfNan, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from dipddpm.errors import ConfigError, closest

C = TypeVar("C")
AllowInf = AllowInfNan(True)  # Annotated[float, AllowInf]: a field where infinity means something
PYDANTIC = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)
NULLS = ("none", "null", "~")  # strings an Optional field reads as null (a Parquet/CSV cell)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_set(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """Parse CLI `--set key=value` pairs; values are read as YAML (1e-3, true, [1,2]). A key
    given twice is an error naming both."""
    from dipddpm.yaml_input import load_value

    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} expects key=value, got {item!r}; e.g. {option} lr=0.001")
        if key in seen:
            raise ConfigError(f"{option} {seen[key]} and {option} {item} both set {key}; give one")
        seen[key] = item
        out[key] = load_value(raw, f"{option} {key}")
    return out


def merge_sources(values: Mapping[str, Any], options: Mapping[str, tuple[str, Any]],
                  option: str, what: str) -> dict[str, Any]:
    """`values` (from `option` key=value pairs) plus dedicated command line options
    (key -> (flag, value); None: not given). A key both set is an error naming both: which
    one was meant is not known."""
    out = dict(values)
    for key, (flag, value) in options.items():
        if value is None:
            continue
        if key in values:
            given = flag if isinstance(value, bool) else f"{flag} {value}"
            raise ConfigError(f"{given} and {option} {key}={values[key]} both set the {what} "
                              f"key {key}; give one of them")
        out[key] = value
    return out


def _leaves(tp: Any) -> list[Any]:
    """The member types of a union (itself otherwise), Annotated's metadata dropped."""
    if get_origin(tp) is Annotated:
        return _leaves(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return [leaf for a in get_args(tp) for leaf in _leaves(a)]
    return [tp]


def _before(tp: Any):
    """What pydantic's lax mode does not do for us: a boolean is no number, "none" is null
    for an Optional, "1e3" is a number (YAML 1.1 reads it as a string), and a string for a
    tuple is read as a YAML list ("(0.5, 0.5)" too)."""
    from dipddpm.yaml_input import FLOAT_12

    leaves = _leaves(tp)
    nullable = type(None) in leaves
    takes_bool = bool in leaves or Any in leaves
    takes_tuple = any(get_origin(x) is tuple for x in leaves)
    numeric = "int_type" if int in leaves else "float_type" if float in leaves else None

    def pre(v: Any) -> Any:
        if isinstance(v, bool) and not takes_bool and numeric:
            raise PydanticCustomError(numeric, "a boolean is not a number")
        if isinstance(v, str) and nullable and v.strip().lower() in NULLS:
            return None
        if isinstance(v, str) and numeric and FLOAT_12.match(v.strip()):
            return float(v)
        if isinstance(v, str) and takes_tuple:
            from dipddpm.yaml_input import load_value

            return load_value(v.replace("(", "[").replace(")", "]"), "value")
        return v

    return BeforeValidator(pre)


def _parameters(target: Any, skip: int = 0) -> dict[str, tuple[Any, Any]]:
    """name -> (annotation, default) of a dataclass's fields or a function's keyword
    parameters (its first `skip` ones left out, e.g. a beta schedule's T)."""
    import inspect

    hints = typing.get_type_hints(target, include_extras=True)  # keeps AllowInf
    if dataclasses.is_dataclass(target):
        return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(target)}
    params = list(inspect.signature(target).parameters.values())[skip:]
    return {p.name: (hints.get(p.name, Any), p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@functools.cache
def _adapter(target: Any, skip: int = 0) -> TypeAdapter:
    """pydantic's validator of a mapping of `target`'s fields or parameters (any subset)."""
    fields = {k: Annotated[tp, _before(tp)] for k, (tp, _) in _parameters(target, skip).items()}
    mirror = TypedDict(target.__name__, fields, total=False)  # type: ignore[misc]
    mirror.__pydantic_config__ = PYDANTIC
    return TypeAdapter(mirror)


@functools.cache
def _type_adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(Annotated[tp, _before(tp)], config=PYDANTIC)


# pydantic error type -> what the value must be
_MUST = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
         "float_type": "a number", "float_parsing": "a number",
         "finite_number": "a finite number (not nan or inf)", "bool_type": "true or false",
         "bool_parsing": "true or false", "string_type": "a string", "tuple_type": "a list",
         "list_type": "a list", "dict_type": "a mapping", "mapping_type": "a mapping",
         "value_error": "a number", "none_required": "null"}


def _must(err: Mapping[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '')}".replace(" or ", ", ")
    if kind in ("too_short", "too_long"):
        return f"a list of {ctx.get('max_length', ctx.get('min_length'))} values"
    return _MUST.get(kind, err["msg"].removeprefix("Input should be ").lower())


def _example(name: str, default: Any) -> str:
    import inspect

    if default is None or default is dataclasses.MISSING or default is inspect.Parameter.empty:
        return ""
    shown = list(default) if isinstance(default, tuple) else default
    shown = str(shown).lower() if isinstance(shown, bool) else shown
    return f"; e.g. {name} {shown}" if name.startswith("--") else f"; e.g. {name}: {shown}"


def _message(e: ValidationError, prefix: str, values: Mapping[str, Any],
             params: Mapping[str, tuple[Any, Any]], top: str | None = None) -> str:
    """One line from pydantic's errors: the first key at fault, what it must be (each member
    of a union), the value received and an example (the field's default)."""
    errors = e.errors()
    field = top if top is not None else str(errors[0]["loc"][0])
    mine = [x for x in errors if top is not None or x["loc"][:1] == (field,)]
    loc = mine[0]["loc"][0 if top is not None else 1:]
    name = prefix + field + "".join(f"[{p}]" for p in loc if isinstance(p, int))
    if mine[0]["type"] == "extra_forbidden":
        return (f"unknown key {name!r}{closest(field, list(params))}; valid keys: "
                f"{', '.join(params)}")
    musts = list(dict.fromkeys(_must(x) for x in mine))
    value = mine[0].get("input", values.get(field) if top is None else values)
    hint = ""
    if mine[0]["type"] == "literal_error":
        choices = [c.strip().strip("'") for c in musts[0].removeprefix("one of ").split(",")]
        hint = closest(str(value), choices)
    default = params.get(field, (0, None))[1]
    return (f"{name} must be {' or '.join(musts)}, got {value!r}{hint}"
            f"{_example(name, default)}")


def coerce(name: str, value: Any, tp: Any) -> Any:
    """`value` as the annotated type `tp` (pydantic, lax), or a ConfigError naming `name`."""
    try:
        return _type_adapter(tp).validate_python(value)
    except ValidationError as e:
        raise ConfigError(_message(e, "", value, {}, top=name)) from None


def build(cls: type[C], values: Mapping[str, Any] | None = None, *, base: C | None = None,
          prefix: str = "") -> C:
    """Build `cls` from `values` (on top of `base` or the defaults); unknown keys and wrong
    types are an error naming `prefix` + the key (e.g. prefix "problem.")."""
    values = dict(values or {})
    names = field_names(cls)
    unknown = [k for k in values if k not in names]
    if unknown:
        key = unknown[0]
        where = f"{prefix.rstrip('.')}: " if prefix else ""
        raise ConfigError(f"{where}unknown config key {key!r} for {cls.__name__}"
                          f"{closest(str(key), names)}; valid keys: {', '.join(names)}")
    coerced = checked(cls, values, prefix)
    if base is not None:
        return dataclasses.replace(base, **coerced)
    try:
        return cls(**coerced)
    except TypeError as e:  # a required field missing
        raise ConfigError(f"{prefix or cls.__name__ + ': '}{e}") from None


def checked(target: Any, values: Mapping[str, Any], prefix: str = "",
            skip: int = 0) -> dict[str, Any]:
    """`values` checked and converted against a dataclass's fields or a function's annotated
    keyword parameters (a beta schedule's, a dataset builder's): a ConfigError naming
    `prefix` + the key otherwise. Unknown keys are the caller's to name."""
    try:
        return _adapter(target, skip).validate_python(dict(values))
    except ValidationError as e:
        raise ConfigError(_message(e, prefix, values, _parameters(target, skip))) from None


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


def check_name(key: str, value: str, registry: Any) -> None:
    """A field naming a registered plug-in (a net, a beta schedule) names one; the error
    lists the names, with "did you mean"."""
    if value not in registry:
        try:
            registry.get(value)
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None
