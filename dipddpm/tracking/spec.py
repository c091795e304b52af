"""The spec's `tracking:` key, and the checks before Ray starts.

    tracking: [mlflow, tensorboard]                      # names, each with its defaults
    tracking: {mlflow: {experiment: denoising}, wandb: {project: dip}}   # names -> options
    tracking: [tensorboard, {mlflow: {tracking_uri: http://127.0.0.1:5000}}]

`parse_tracking` turns any of these into one mapping, name -> every option's value (the form
spec.resolved.yaml stores, which parses back to itself). Each entry checks its own options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dipddpm.errors import ConfigError
from dipddpm.tracking.base import TRACKING, SweepContext, as_values

FORM = "a list of names, e.g. tracking: [mlflow, tensorboard], or names -> options"


def _items(raw: Any) -> list[tuple[Any, Any]]:
    """(name, options) pairs, in the order written."""
    if isinstance(raw, Mapping):
        return list(raw.items())
    if not isinstance(raw, list | tuple):
        raise ConfigError(f"tracking must be {FORM}; got {raw!r}")
    out: list[tuple[Any, Any]] = []
    for item in raw:
        if isinstance(item, Mapping) and len(item) == 1:
            out.extend(item.items())
        elif isinstance(item, str):
            out.append((item, None))
        else:
            raise ConfigError(f"tracking: each item is a name or {{name: options}}, got "
                              f"{item!r}; e.g. tracking: [mlflow, {{wandb: {{project: dip}}}}]")
    return out


def parse_tracking(raw: Any) -> dict[str, dict[str, Any]]:
    """The spec's `tracking:` as name -> options (every field, defaults filled in)."""
    if raw is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, values in _items(raw):
        try:
            entry = TRACKING.get(str(name))
        except ConfigError as e:  # "unknown tracking backend 'x' (did you mean ...)"
            raise ConfigError(f"tracking: {e}") from None
        if name in out:
            raise ConfigError(f"tracking: {name} is listed twice; list each backend once")
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"tracking.{name}: options must be a mapping, got {values!r}")
        out[str(name)] = as_values(entry.build(str(name), values))
    return out


def preflight(spec: Any, sweep_uri: str) -> None:
    """Before Ray starts: every backend's package is installed and what it must reach answers
    (bounded probes); one `DipddpmError` line otherwise."""
    ctx = SweepContext(spec=spec, sweep_uri=sweep_uri)
    for name, values in spec.tracking.items():
        entry = TRACKING.get(name)
        entry.check_installed(name)
        if entry.preflight is not None:
            entry.preflight(entry.build(name, values), ctx)


def tracking_callbacks(spec: Any, sweep_uri: str) -> list:
    """The Tune callbacks recording the sweep in the spec's tracking backends ([] for none)."""
    if not spec.tracking:
        return []
    from dipddpm.tracking.callback import TrackingCallback

    return [TrackingCallback(spec, sweep_uri)]
