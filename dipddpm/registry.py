"""A registry per plug-in kind: beta schedules, stage schedulers, nets, methods, Tune
schedulers, searchers, Optuna samplers, baselines, storage backends, plot kinds. An entry
declares its own parameters and facts (its dataclass says how); the CLI's help texts, the spec
validator and the runner read them from here, never by comparing a name.

Names are registered once and never change meaning; add a new name instead of redefining one.
`Registry.every()` lists every registry made so far (tests cover them all without a list).

A plug-in is an entry registered from outside the dipddpm package (a user's script, a
notebook, a test, a plug-in package). Ray's trial processes import dipddpm afresh, so they have
the built-in entries but not those: `Registry.plugins()` on the driver lists them, the
trainable carries them, and `Registry.install()` in the trial's process registers them there
(sweep/trainable.py TrialParts).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from dipddpm.errors import ConfigError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    _every: list[Registry] = []  # every registry made, in order (see `every`)

    def __init__(self, kind: str) -> None:
        self.kind = kind  # e.g. "beta schedule"; used in error messages
        self._items: dict[str, T] = {}
        self._plugins: set[str] = set()  # names registered from outside dipddpm
        self.home = _caller_module(1)  # the module that made it (a trial process imports it)
        Registry._every.append(self)

    @classmethod
    def plugins(cls) -> tuple[tuple[str, str, str, Any], ...]:
        """(home module, kind, name, entry) of every plug-in entry registered now in one of
        dipddpm's registries (a registry a script makes for itself is its own business)."""
        return tuple((r.home, r.kind, n, r._items[n]) for r in cls._every if _is_ours(r.home)
                     for n in sorted(r._plugins) if n in r._items)

    @classmethod
    def install(cls, home: str, kind: str, name: str, entry: Any) -> None:
        """Register, in this process, one plug-in `plugins()` listed on the driver (unless
        this process has it)."""
        importlib.import_module(home)
        reg = next((r for r in cls._every if r.home == home and r.kind == kind), None)
        if reg is None:
            raise ConfigError(f"no {kind} registry in {home} here, for plug-in {name!r}: "
                              f"is the same dipddpm installed where this runs?")
        if name not in reg._items:
            reg.register(name)(entry)

    @classmethod
    def every(cls) -> list[Registry]:
        """Every registry made so far (import the modules that make them first)."""
        return list(cls._every)

    def _entries(self) -> dict[str, T]:
        """Name -> entry; a registry derived from another one overrides this."""
        return self._items

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@SCHEDULES.register("cosine")`. Refuses a duplicate name."""

        def add(obj: T) -> T:
            if name in self._entries():
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            if not _is_ours(_caller_module(1)):
                self._plugins.add(name)
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove `name` (a plug-in registered by a test, taken out again after it)."""
        self._items.pop(name)
        self._plugins.discard(name)

    def get(self, name: str) -> T:
        try:
            return self._entries()[name]
        except KeyError:
            valid = self.names()
            raise ConfigError(
                f"unknown {self.kind} {name!r}{closest(str(name), valid)}; "
                f"valid names: {', '.join(valid)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries())

    def items(self) -> list[tuple[str, T]]:
        entries = self._entries()
        return [(n, entries[n]) for n in sorted(entries)]

    def help(self, sep: str = ", ") -> str:
        """The names for a help text: 'a, b or c'."""
        names = self.names()
        return names[0] if len(names) == 1 else f"{sep.join(names[:-1])} or {names[-1]}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries())


def _caller_module(depth: int) -> str:
    """The __name__ of the module running `depth` frames above the function calling this."""
    return sys._getframe(depth + 1).f_globals.get("__name__", "")


def _is_ours(module: str) -> bool:
    return module == "dipddpm" or module.startswith("dipddpm.")
