"""The corners of a search space: every trial config a spec can produce must be buildable.

A rule that joins two keys (dip_prior_ddpm's `dip_input_depth` against `dip_passes` under
`noise_passes`, a net's depth against the image size) breaks only for some combinations of
searched values, and a trial that meets it fails after Ray has started, or after a whole fit.
`sweep validate` (and every `sweep run`) therefore builds the config of each corner of the
space: every value of a choice/grid domain, both bounds of a numeric one, with `when:`
conditions respected. Past `MAX_CORNERS` combinations it varies one key at a time from the
first corner instead (every value is still seen, not every pairing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dipddpm.errors import ConfigError, DipddpmError, first_line

MAX_CORNERS = 512


def values(d) -> tuple:
    """A domain's representative values: all of a choice/grid, the bounds of a range."""
    if d.kind in ("choice", "grid"):
        return tuple(d.values)
    if d.kind == "int":
        top = d.low + (d.high - d.low) // d.step * d.step  # the largest value on the grid
        return (d.low, top) if top != d.low else (d.low,)
    return (d.low, d.high) if d.high != d.low else (d.low,)


def product(domains: tuple) -> Iterator[dict[str, Any]]:
    """Every combination of representative values; an inactive key is left out (the domains
    come in condition order, so a `when:` key is always chosen first)."""
    def walk(i: int, chosen: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(domains):
            yield dict(chosen)
            return
        d = domains[i]
        if not d.active(chosen):
            yield from walk(i + 1, chosen)
            return
        for v in values(d):
            chosen[d.key] = v
            yield from walk(i + 1, chosen)
            del chosen[d.key]

    return walk(0, {})


def one_at_a_time(domains: tuple) -> Iterator[dict[str, Any]]:
    """The first corner, then each key's other values on it (its conditions set to allow it)."""
    first = next(product(domains))
    yield first
    for d in domains:
        for v in values(d):
            params = {**first, **{k: allowed[0] for k, allowed in d.when}, d.key: v}
            yield {e.key: params[e.key] for e in domains if e.key in params and e.active(params)}


def corners(domains: tuple) -> Iterator[dict[str, Any]]:
    if not domains:
        return iter([{}])
    n = 1
    for d in domains:
        n *= len(values(d))
    return product(domains) if n <= MAX_CORNERS else one_at_a_time(domains)


def check_corners(domains: tuple, build: Callable[[Mapping[str, Any]], Any],
                  check: Callable[[Any], None] | None = None) -> int:
    """Build (and `check`) the config of every corner; the first that breaks a rule is one
    error naming its searched values. Returns the number of corners checked."""
    n = 0
    for params in corners(domains):
        try:
            cfg = build(params)
            if check is not None:
                check(cfg)
        except DipddpmError as e:
            raise ConfigError(f"search: the trial with {_fmt(params)} breaks a rule: "
                              f"{first_line(e)}; "
                              f"narrow the search (or add a when: condition) so no trial "
                              f"can take these values") from None
        n += 1
    return n


def _fmt(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "the fixed values"
