"""Problem specs (a plain mapping from a sweep spec or the CLI) -> problem objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from dipddpm.config import build, check, field_names
from dipddpm.data.images import ImageProblem, make_image_problem
from dipddpm.errors import ConfigError, closest
from dipddpm.nn import build_net, min_size, size_multiple

OBSERVATION_T = 1000  # the forward observation's process length (data/images.py)
# the problem of the examples' image methods (see Method.example_problem)
IMAGE_32 = {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0}


@dataclass(frozen=True)
class ImageProblemSpec:
    """The problem keys of an image method (a spec's `problem:`, fit's --problem): checked
    for type and range before any image is read."""

    image: str  # a PNG/JPEG path or skimage:NAME
    size: int | None = None  # resize to size x size (centre square crop first); null = as is
    sigma: float = 25.0  # Gaussian noise std in 0-255 units (observation gaussian)
    seed: int = 0  # the noise seed
    grey: bool = False  # convert the image to one channel
    observation: Literal["gaussian", "forward"] = "gaussian"  # forward: the guided-DIP source's
    observation_t: int = 40  # forward: the step the clean image is noised to (0-based, < 1000)
    observation_schedule: str = "linear"  # forward: its beta schedule

    def __post_init__(self) -> None:
        from dipddpm.diffusion.schedules import SCHEDULES

        check(self.size is None or self.size >= 1, f"size must be >= 1 pixel (or null), got "
              f"{self.size}")
        check(self.sigma >= 0, f"sigma must be >= 0 (0-255 units), got {self.sigma}")
        check(0 <= self.observation_t < OBSERVATION_T, f"observation_t must be in [0, "
              f"{OBSERVATION_T}), got {self.observation_t}")
        if self.observation_schedule not in SCHEDULES:
            try:
                SCHEDULES.get(self.observation_schedule)
            except ConfigError as e:  # it lists the names
                raise ConfigError(f"observation_schedule: {e}") from None


IMAGE_PROBLEM_KEYS = tuple(field_names(ImageProblemSpec))


def net_multiple(cfg) -> int:
    """The size multiple the config's net needs (H, W % multiple == 0)."""
    net = build_net(cfg.net, cfg.input_depth, 1, cfg.width, cfg.depth, cfg.net_sigmoid)
    return size_multiple(net)


def check_image_spec(spec: Mapping[str, Any], cls: type = ImageProblemSpec) -> dict[str, Any]:
    """An image problem spec names an image and only keys of `cls`, each of its type and in
    its range. Returns the given keys' values, converted (e.g. sigma "25" -> 25.0)."""
    valid = field_names(cls)
    unknown = [k for k in spec if k not in valid]
    if unknown:
        raise ConfigError(f"unknown problem key {unknown[0]!r}"
                          f"{closest(str(unknown[0]), valid)}; valid keys: {', '.join(valid)}")
    if "image" not in spec:
        raise ConfigError("problem needs 'image': a PNG/JPEG path or skimage:NAME "
                          "(e.g. skimage:astronaut)")
    try:
        built = build(cls, spec, prefix="problem.")
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(("problem.", "problem:")) else f"problem.{msg}") \
            from None
    return {f.name: getattr(built, f.name) for f in dataclasses.fields(built) if f.name in spec}


def image_problem(spec: Mapping[str, Any], cfg) -> ImageProblem:
    """An image denoising problem from a spec such as {image: skimage:astronaut, size: 64}."""
    return make_image_problem(**check_image_spec(spec), multiple=net_multiple(cfg))


@lru_cache(maxsize=256)
def _size_rule(net: str, input_depth: int, width, depth, sigmoid) -> tuple[int, int]:
    built = build_net(net, input_depth, 1, width, depth, sigmoid)
    return size_multiple(built), min_size(built)


def check_net_size(cfg, problem) -> None:
    """A trial's net fits the problem's image (checked for every corner of a sweep's space,
    and every image of a study, before Ray starts)."""
    from dipddpm.nn.sizes import size_error

    m, low = _size_rule(cfg.net, cfg.input_depth, cfg.width, cfg.depth, cfg.net_sigmoid)
    H, W = problem.observed.shape[-2:]
    err = size_error(cfg.net, m, low, H, W)
    if err is not None:
        raise err
