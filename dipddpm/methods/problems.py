"""Problem specs (a plain mapping from a sweep spec or the CLI) -> problem objects."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from dipddpm.data.images import ImageProblem, make_image_problem
from dipddpm.errors import ConfigError, closest
from dipddpm.nn import build_net, min_size, size_multiple

IMAGE_PROBLEM_KEYS = ("image", "size", "sigma", "seed", "grey", "observation", "observation_t",
                      "observation_schedule")


def net_multiple(cfg) -> int:
    """The size multiple the config's net needs (H, W % multiple == 0)."""
    net = build_net(cfg.net, cfg.input_depth, 1, cfg.width, cfg.depth, cfg.net_sigmoid)
    return size_multiple(net)


def check_image_spec(spec: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    """An image problem spec names an image and only keys in `valid`."""
    unknown = [k for k in spec if k not in valid]
    if unknown:
        raise ConfigError(f"unknown problem key {unknown[0]!r}"
                          f"{closest(unknown[0], list(valid))}; valid keys: {', '.join(valid)}")
    if "image" not in spec:
        raise ConfigError("problem needs 'image': a PNG/JPEG path or skimage:NAME "
                          "(e.g. skimage:astronaut)")


def image_problem(spec: Mapping[str, Any], cfg) -> ImageProblem:
    """An image denoising problem from a spec such as {image: skimage:astronaut, size: 64}."""
    check_image_spec(spec, IMAGE_PROBLEM_KEYS)
    return make_image_problem(**dict(spec), multiple=net_multiple(cfg))


@lru_cache(maxsize=256)
def _size_rule(net: str, input_depth: int, width, depth, sigmoid) -> tuple[int, int]:
    built = build_net(net, input_depth, 1, width, depth, sigmoid)
    return size_multiple(built), min_size(built)


def check_net_size(cfg, problem) -> None:
    """A trial's net fits the problem's image (checked for every corner of a sweep's space,
    and every image of a study, before Ray starts)."""
    from dipddpm.methods.fitting import size_error

    m, low = _size_rule(cfg.net, cfg.input_depth, cfg.width, cfg.depth, cfg.net_sigmoid)
    H, W = problem.observed.shape[-2:]
    err = size_error(cfg.net, m, low, H, W)
    if err is not None:
        raise err
