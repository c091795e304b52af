"""A study's problem: the (image, replicate) pairs one trial fits its configuration to.

`problem.images: [...]` (data/image_sets.py) and `problem.replicates: S` turn a trial's one
problem into N x S pairs. Replicate r of an image is drawn with noise seed `problem.seed + r`
and fitted with the trial's seed + r, so every pair has its own observation and net, and two
configurations see the same observation at the same (image, replicate): paired verdicts
compare like with like. With `problem.shared_noise: true` the replicates of an image share one
observation (noise seed `problem.seed`) and differ in their fit seed only: what an ensemble of
replicates (`output: ensemble`, methods/output_rules.py) averages. Without `images:` and with
one replicate the problem is one pair, the trial as it always was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dipddpm.data.image_sets import expand_images
from dipddpm.errors import ConfigError, DipddpmError, first_line

STUDY_KEYS = ("images", "replicates", "shared_noise")


@dataclass(frozen=True)
class PairSpec:
    """One (image, replicate) of a study: its one-image problem spec and its fit seed."""

    image: str
    replicate: int
    problem: dict[str, Any]  # the method's one-image problem spec (image, seed = noise seed)
    seed: int  # the fit's seed (net init, z, stage noise)


@dataclass
class Pair:
    spec: PairSpec
    problem: Any  # the built problem object

    @property
    def seed(self) -> int:
        return self.spec.seed


def is_study(problem: Mapping[str, Any]) -> bool:
    """True when the problem names an image set, more than one replicate, or shared_noise."""
    return "images" in problem or replicates(problem) != 1 or "shared_noise" in problem


def shared_noise(problem: Mapping[str, Any]) -> bool:
    """`problem.shared_noise`: the replicates of an image share one observation."""
    raw = problem.get("shared_noise", False)
    if not isinstance(raw, bool):
        raise ConfigError(f"problem.shared_noise must be true or false (the replicates of an "
                          f"image share one observation), got {raw!r}")
    return raw


def replicates(problem: Mapping[str, Any]) -> int:
    raw = problem.get("replicates", 1)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if isinstance(raw, bool) or n < 1 or str(n) != str(raw).strip():
        raise ConfigError(f"problem.replicates must be a whole number >= 1 (seeds per image), "
                          f"got {raw!r}; e.g. replicates: 2")
    return n


def pair_specs(problem: Mapping[str, Any], seed: int) -> list[PairSpec]:
    """The pairs of a problem spec for a trial of seed `seed` (see the module docstring)."""
    base = {k: v for k, v in problem.items() if k not in STUDY_KEYS}
    n_rep = replicates(problem)
    if "images" in problem:
        if "image" in base:
            raise ConfigError("problem has both image: and images:; give one image, or the "
                              "set as images: [..] (drop image:)")
        sources = expand_images(problem["images"])
    else:
        sources = [base.get("image")]
    noise_seed = int(base.get("seed", 0))
    seeded = is_study(problem) or "seed" in base  # a plain problem keeps its own keys
    step = 0 if shared_noise(problem) else 1
    out = []
    for source in sources:
        for r in range(n_rep):
            spec = {**base, "seed": noise_seed + step * r} if seeded else dict(base)
            if source is not None and "images" in problem:
                spec["image"] = source
            out.append(PairSpec(str(source), r, spec, int(seed) + r))
    return out


def build_pairs(method, problem: Mapping[str, Any], cfg, seed: int) -> list[Pair]:
    """The pairs with their problems built (each image loaded and degraded). An image that
    cannot be read or breaks a rule is one error naming it."""
    specs = pair_specs(problem, seed)
    study = is_study(problem)
    out = []
    for s in specs:
        try:
            out.append(Pair(s, method.make_problem(s.problem, cfg)))
        except DipddpmError as e:
            if not study:
                raise
            raise type(e)(f"image {s.image}: {first_line(e)}") from None
    return out


# A sweep's start-up builds its problem three times over otherwise: validating the spec
# (sweep/spec/validate.py `check_problem`: a missing image fails before Ray starts), writing the
# problem images (sweep/runner.py) and running the baselines on the same observations
# (sweep/baselines.py). Each step asks `startup_pairs`, which builds them once per process.
_STARTUP: dict[str, Any] = {}


def _startup_key(method, problem: Mapping[str, Any], cfg, seed: int) -> tuple:
    return (method.name, repr(sorted(problem.items(), key=lambda kv: kv[0])), repr(cfg),
            int(seed))


def startup_pairs(method, problem: Mapping[str, Any], cfg, seed: int) -> list[Pair]:
    """`build_pairs`, shared by a sweep's start-up steps: the pairs of the last call with the
    same method, problem, config and seed, built once (each image read and degraded once).
    The caller must not change them; `release_startup_pairs` forgets them once the start-up
    is over (the trials build their own, in their own processes)."""
    key = _startup_key(method, problem, cfg, seed)
    if _STARTUP.get("key") != key:
        _STARTUP.clear()
        pairs = build_pairs(method, problem, cfg, seed)  # an error leaves nothing cached
        _STARTUP.update(key=key, pairs=pairs)
    return _STARTUP["pairs"]


def release_startup_pairs() -> None:
    """Forget the pairs `startup_pairs` keeps (their images' memory)."""
    _STARTUP.clear()
