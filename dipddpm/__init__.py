"""dipddpm: Deep Image Prior and DDPM hybrids, as plain loops and as Ray Tune sweeps.

The Python API (`dipddpm.api`, imported on first use, so `import dipddpm` stays light):

    dipddpm.load(path_or_uri) -> Results      a sweep's Parquet results
    dipddpm.run(spec_or_path, smoke=False, storage=None, **overrides) -> Results
    dipddpm.resume(sweep_dir, address=None, drop_orphans=False) -> Results
    dipddpm.fit(method, image=..., **config) -> FitResult   one fit, no Ray
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dipddpm import _compat

__version__ = "0.1.0"

API = ("load", "run", "resume", "fit", "compare", "Results", "Verdict", "FitResult")
__all__ = ["__version__", *API]

_compat.install()  # old import paths of moved modules keep working (dipddpm/_compat.py)

if TYPE_CHECKING:
    from dipddpm.api import FitResult, Results, Verdict, compare, fit, load, resume, run  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in API:
        import dipddpm.api

        return getattr(dipddpm.api, name)
    raise AttributeError(f"module 'dipddpm' has no attribute {name!r}")
