"""A registry per plug-in kind: beta schedules, stage schedulers, nets, methods, Tune
schedulers, Optuna samplers, plot kinds. An entry declares its own parameters (its dataclass
says how); the CLI's help texts and the spec validator read the names from here.

Names are registered once and never change meaning; add a new name instead of redefining one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dipddpm.errors import ConfigError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # e.g. "beta schedule"; used in error messages
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@SCHEDULES.register("cosine")`. Refuses a duplicate name."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove `name` (a plug-in registered by a test, taken out again after it)."""
        self._items.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = self.names()
            raise ConfigError(
                f"unknown {self.kind} {name!r}{closest(str(name), valid)}; "
                f"valid names: {', '.join(valid)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def help(self, sep: str = ", ") -> str:
        """The names for a help text: 'a, b or c'."""
        names = self.names()
        return names[0] if len(names) == 1 else f"{sep.join(names[:-1])} or {names[-1]}"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
