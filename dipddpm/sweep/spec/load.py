"""Reading a sweep spec: strict YAML (yaml_input.py), the smoke block, `--set` and the other
command line overrides, merged into the raw mapping that `validate.parse_spec` checks."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from dipddpm.errors import ConfigError
from dipddpm.sweep.spec.schema import SweepSpec
from dipddpm.yaml_input import load_file, load_value


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.yaml"))
        example = f", e.g. {inside[0]}" if inside else ", e.g. sweeps/quick.yaml"
        raise ConfigError(f"{path} is a directory, not a sweep spec; give the path of a YAML "
                          f"spec file{example}")
    if not path.is_file():
        raise ConfigError(f"sweep spec not found: {path}; give the path of a YAML spec, "
                          f"e.g. sweeps/quick.yaml")
    data = load_file(path)
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
    value = load_value(raw, f"--set {key.strip()}")
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a mapping in the spec")
    node[parts[-1]] = value


def load_spec(path: str | Path, smoke: bool = False, sets: list[str] | None = None,
              num_samples: int | None = None, storage: str | None = None,
              load_problem: bool = True) -> SweepSpec:
    """Read, override (smoke block, --set, --num-samples, --storage) and validate a spec; the
    `smoke:` block is validated too, merged as a smoke run merges it, with or without
    --smoke. `load_problem` false: the problem's keys are checked but its image, dataset or
    checkpoint is not read (`sweep show` previews a spec without its data)."""
    data = load_yaml(path)
    block = data.get("smoke")
    if block is not None and not isinstance(block, Mapping):
        raise ConfigError(f"{path}: smoke: must be a mapping of overrides (e.g. smoke: "
                          f"{{num_samples: 2, fixed: {{iters: 20}}}}), got {block!r}")
    if smoke and block is None:
        raise ConfigError(f"{path}: --smoke needs a `smoke:` mapping of overrides in the "
                          f"spec (e.g. smoke: {{num_samples: 2, fixed: {{iters: 20}}}})")
    overrides(data, sets, num_samples, storage)
    if not smoke:
        spec = runnable(data, load_problem)
        if block is not None:
            check_smoke(data, block, sets, num_samples, storage)
        return spec
    # a smoke run tests the spec that goes to the cluster: the whole spec must be valid too
    # (its problem is loaded by the real run; the smoke run loads the smoke problem)
    runnable(data, load_problem=False)
    return runnable(smoke_data(data, block, sets, num_samples, storage), load_problem)


def runnable(data: dict, load_problem: bool) -> SweepSpec:
    """A spec to run: valid (`parse_spec`), and its trials not identical copies."""
    from dipddpm.sweep.spec.validate import check_identical_trials, parse_spec

    spec = parse_spec(data, load_problem=load_problem)
    check_identical_trials(spec)
    return spec


def smoke_data(data: dict, block: Mapping, sets: list[str] | None, num_samples: int | None,
               storage: str | None) -> dict:
    """The raw spec of a smoke run: another sweep (its results never mix with the real
    run's), the smoke block merged in, then the command line again (it wins over the block)."""
    out = merge({**data, "name": f"{data['name']}-smoke"}, block)
    overrides(out, sets, num_samples, storage)
    return out


def check_smoke(data: dict, block: Mapping, sets: list[str] | None, num_samples: int | None,
                storage: str | None) -> None:
    """The smoke block, validated as `--smoke` would run it (without loading its problem):
    a typo inside `smoke:` fails every `sweep validate`, not only a smoke run."""
    try:
        runnable(smoke_data(data, block, sets, num_samples, storage), load_problem=False)
    except ConfigError as e:
        raise ConfigError(f"smoke: {e}") from None


def overrides(data: dict, sets: list[str] | None, num_samples: int | None,
              storage: str | None) -> None:
    """The command line's --set, --num-samples and --storage, applied to a raw spec. Two of
    them setting one key is an error naming both (which one was meant is not known)."""
    given: dict[str, str] = {}
    for item in sets or []:
        key = item.partition("=")[0].strip()
        if key in given:
            raise ConfigError(f"{given[key]} and --set {item} both set {key}; give one")
        given[key] = f"--set {item}"
    for key, option, value in (("num_samples", "--num-samples", num_samples),
                               ("storage", "--storage", storage)):
        if value is not None and key in given:
            raise ConfigError(f"{option} {value} and {given[key]} both set {key}; give one")
    for item in sets or []:
        set_override(data, item)
    if num_samples is not None:
        data["num_samples"] = num_samples
    if storage is not None:
        data["storage"] = storage
