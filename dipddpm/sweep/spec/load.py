"""Reading a sweep spec: YAML (safe-loaded), the smoke block, `--set` and the other command
line overrides, merged into the raw mapping that `validate.parse_spec` checks."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import yaml

from dipddpm.errors import ConfigError, first_line
from dipddpm.sweep.spec.schema import SweepSpec


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
    from dipddpm.sweep.spec.validate import parse_spec

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
