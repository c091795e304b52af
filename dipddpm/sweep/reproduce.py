"""A trial's `reproduce` column: the `dipddpm fit ...` command that re-runs exactly that trial
without Ray (method, preset, every config value, the problem, the trial and noise seeds).

Every config field goes on the command line (`--set key=value`), not only the searched ones,
so the command stays exact if a default changes later. Methods without a one-image fit command
(ddpm; dip_prior_ddpm, which needs its checkpoint) get no command (null).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

FIT_COMMANDS = {"dip": "dip", "guided_dip": "guided-dip", "bm3d": "bm3d"}
PROBLEM_OPTIONS = {"image": "--image", "size": "--size", "sigma": "--sigma",
                   "seed": "--noise-seed"}


def _yaml(v: Any) -> str:
    """A value as `--set` reads it back (YAML): lists for tuples, null, true/false."""
    import yaml

    if isinstance(v, tuple):
        v = list(v)
    return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix(
        "\n...").removesuffix(" ...")


def command(method: str, preset: str | None, config: Mapping[str, Any],
            problem: Mapping[str, Any], seed: int) -> str | None:
    """The fit command line of one trial, or None where the method has no such command."""
    if method not in FIT_COMMANDS:
        return None
    args = ["dipddpm", "fit", FIT_COMMANDS[method]]
    for key, opt in PROBLEM_OPTIONS.items():
        if problem.get(key) is not None:
            args += [opt, str(problem[key])]
    if problem.get("grey"):
        args.append("--grey")
    for key, value in problem.items():
        if key not in PROBLEM_OPTIONS and key != "grey":
            args += ["--problem", f"{key}={_yaml(value)}"]
    if preset:
        args += ["--preset", preset]
    args += ["--seed", str(seed)]
    for key, value in config.items():
        args += ["--set", f"{key}={_yaml(value)}"]
    return " ".join(shlex.quote(a) for a in args)
