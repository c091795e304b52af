"""The `dipddpm` command line: a thin typer layer over the library."""

from __future__ import annotations

from dipddpm.cli import cluster as _cluster  # noqa: F401  (each registers its commands)
from dipddpm.cli import data as _data  # noqa: F401
from dipddpm.cli import ddpm as _ddpm  # noqa: F401
from dipddpm.cli import effect as _effect  # noqa: F401
from dipddpm.cli import inspect as _inspect  # noqa: F401
from dipddpm.cli import results as _results  # noqa: F401
from dipddpm.cli import sweep as _sweep  # noqa: F401
from dipddpm.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
