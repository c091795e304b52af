"""Plug-ins for Ray's trial processes: entries registered outside dipddpm on the driver (a
user's script, a notebook, a test) travel with the trainable and are registered in the trial's
process before it runs (registry.py `Registry.plugins`, `Registry.install`).

Each entry travels as its own cloudpickle bytes, loaded inside the trial: an entry that cannot
be pickled on the driver, or loaded in the trial (its module is not importable there), is left
out with one line naming it and the fix, and breaks nothing else; a trial that needs it then
says which name it lacks.
"""

from __future__ import annotations

import warnings

from dipddpm.errors import first_line
from dipddpm.registry import Registry

FIX = ("register it from a module the Ray workers can import, or ship its module by value "
       "(ray.cloudpickle.register_pickle_by_value(module))")


def pack() -> tuple[tuple[str, str, str, bytes], ...]:
    """The driver's plug-ins as (home module, kind, name, cloudpickle bytes)."""
    from ray import cloudpickle

    out = []
    for home, kind, name, entry in Registry.plugins():
        try:
            out.append((home, kind, name, cloudpickle.dumps(entry)))
        except Exception as e:  # noqa: BLE001  (any pickling failure: left out, said)
            warnings.warn(f"{kind} {name!r} stays on the driver: it cannot be pickled for the "
                          f"trials ({first_line(e)}); {FIX}", stacklevel=2)
    return tuple(out)


def unpack(packed: tuple[tuple[str, str, str, bytes], ...]) -> list[str]:
    """Register the driver's plug-ins in this process; one line for each that cannot load."""
    from ray import cloudpickle

    problems = []
    for home, kind, name, blob in packed:
        try:
            Registry.install(home, kind, name, cloudpickle.loads(blob))
        except Exception as e:  # noqa: BLE001  (a plug-in this trial may not even use)
            problems.append(f"{kind} {name!r} registered on the driver is not available in "
                            f"this trial ({first_line(e)}); {FIX}")
    return problems
