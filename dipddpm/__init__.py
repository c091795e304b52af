"""dipddpm: Deep Image Prior and DDPM hybrids, as plain loops and as Ray Tune sweeps.

The Python API (`dipddpm.api`, imported on first use, so `import dipddpm` stays light):

    dipddpm.load(path_or_uri) -> Results      a sweep's Parquet results
    dipddpm.run(spec_or_path, smoke=False, storage=None, **overrides) -> Results
    dipddpm.resume(sweep_dir, address=None, drop_orphans=False) -> Results
    dipddpm.fit(method, image=..., **config) -> FitResult   one fit, no Ray
    dipddpm.fit_request(dipddpm.FitRequest(method, ...)) -> FitResult   `dipddpm fit` itself
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dipddpm import _compat

__version__ = "0.1.0"

API = ("load", "run", "resume", "fit", "fit_request", "compare", "Results", "Verdict",
       "FitResult", "FitRequest")
__all__ = ["__version__", *API]

_compat.install()  # old import paths of moved modules keep working (dipddpm/_compat.py)

if TYPE_CHECKING:
    from dipddpm.api import (  # noqa: F401
        FitRequest,
        FitResult,
        Results,
        Verdict,
        compare,
        fit,
        fit_request,
        load,
        resume,
        run,
    )


def __getattr__(name: str) -> Any:
    if name in API:
        import dipddpm.api

        return getattr(dipddpm.api, name)
    raise AttributeError(f"module 'dipddpm' has no attribute {name!r}")
