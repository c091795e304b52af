"""A searcher's registry entry (sweep/searchers.py lists the fields' meanings) and what its
`make` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SearchSetup:
    searcher: Any  # Tune's search algorithm
    space: dict[str, Any] = field(default_factory=dict)  # Tune's param space
    db: str | None = None  # the local study file the driver keeps (None: none)
    publish: Callable[[], None] = lambda: None  # copies that file into the sweep dir


def _nothing(*args: Any) -> None:
    return None


def _no_notes(spec: Any, sweep: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Searcher:
    make: Callable[[Any, Any], SearchSetup]
    describe: Callable[[Any], str]
    help: str
    grid: bool = False
    conditional: bool = False
    holds_params: bool = False
    check: Callable[[Any], None] = _nothing
    shown: Callable[[tuple], dict[str, Any]] = lambda domains: {}  # key -> its text
    restored: Callable[[Any, Any, int], None] = _nothing  # (tune path, its fs, trials)
    fresh: Callable[[Any], None] = _nothing  # the search algorithm, at a fresh start
    dropped: Callable[[Any, Any, list[str]], None] = _nothing  # (spec, sweep, trial ids)
    notes: Callable[[Any, Any], list[str]] = _no_notes  # (spec, sweep) -> console lines
