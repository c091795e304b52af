"""A trial's `reproduce` column: the `dipddpm fit ...` command that re-runs exactly that trial
without Ray (method, preset, every config value, the problem, the trial and noise seeds).

Every config field goes on the command line (`--set key=value`), not only the searched ones,
so the command stays exact if a default changes later. The command's first words are the
method entry's `reproduce` (methods/__init__.py); a method without one (ddpm; dip_prior_ddpm,
which needs its checkpoint) gets no command (null).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

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
    from dipddpm.methods import METHODS

    head = METHODS.get(method).reproduce
    if head is None:
        return None
    args = shlex.split(head)
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


def trial_command(method: str, preset: str | None, config: Mapping[str, Any],
                  problem: Mapping[str, Any], seed: int) -> str | None:
    """A trial's command; a study trial's is every pair's command, joined by `&&`."""
    from dipddpm.methods.study_pairs import is_study, pair_specs

    if not is_study(problem):
        return command(method, preset, config, problem, seed)
    cmds = [command(method, preset, config, p.problem, p.seed) for p in pair_specs(problem, seed)]
    return None if None in cmds else " && ".join(cmds)


def pair_commands(spec, params: Mapping[str, Any],
                  pairs: list[Mapping[str, Any]]) -> list[str | None]:
    """The command re-running each pair of a study trial (its image, noise seed and seed);
    the trial's config and its pairs are worked out once for all of them."""
    from dipddpm.config import to_dict
    from dipddpm.methods.study_pairs import pair_specs
    from dipddpm.sweep.trainable import trial_config

    cfg = to_dict(trial_config(spec, dict(params)))
    by_key = {(p.image, p.replicate): p for p in pair_specs(spec.problem,
                                                             spec.trial_seed(params))}
    out = []
    for pair in pairs:
        p = by_key.get((pair["image"], int(pair["replicate"])))
        out.append(None if p is None else command(spec.method, spec.preset, cfg, p.problem,
                                                  p.seed))
    return out
