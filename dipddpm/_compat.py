"""Old import paths of moved modules and names, kept working (with a DeprecationWarning).

`MOVED_MODULES`: a module that moved, old dotted name -> new one (or the new modules a split
module's names went to). `install()` (called by `dipddpm/__init__.py`) puts a finder at the end
of `sys.meta_path` that answers only these old names: `import dipddpm.sweep.storage` gives the
module `dipddpm.dataset.storage` itself, so its objects (and a monkeypatch of them) are shared.

`MOVED_NAMES`: a name that left a module which still exists, module -> {name: its new module};
the module sets `__getattr__ = moved_names(__name__)`, so `from dipddpm.methods.fitting import
check_size` still works.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from typing import Any

MOVED_MODULES: dict[str, str | tuple[str, ...]] = {
    # the sweep directory's files: their own package, under both sweep and analysis
    "dipddpm.sweep.storage": "dipddpm.dataset.storage",
    "dipddpm.sweep.storage_backends": "dipddpm.dataset.storage_backends",
    "dipddpm.sweep.columns": "dipddpm.dataset.columns",
    "dipddpm.sweep.results": ("dipddpm.dataset.parquet", "dipddpm.dataset.artifacts"),
    "dipddpm.sweep.compaction": "dipddpm.dataset.compaction",
    "dipddpm.sweep.lifecycle": "dipddpm.dataset.lifecycle",
    "dipddpm.sweep.lock": "dipddpm.dataset.lock",
    "dipddpm.sweep.study": "dipddpm.dataset.optuna_study",
    # Ray plumbing
    "dipddpm.sweep.cluster": "dipddpm.cluster.doctor",
    "dipddpm.sweep.local_ray": "dipddpm.cluster.local_ray",
    "dipddpm.sweep.devices": "dipddpm.cluster.devices",
    "dipddpm.sweep.feasibility": "dipddpm.cluster.feasibility",
    # the spec
    "dipddpm.sweep.space": "dipddpm.sweep.spec.space",
    "dipddpm.sweep.corners": "dipddpm.sweep.spec.corners",
    "dipddpm.sweep.rung_rules": "dipddpm.sweep.spec.rung_rules",
    "dipddpm.sweep.estimate": "dipddpm.sweep.spec.estimate",
    # Tune schedulers: entries owning their sections, beside both sweep and analysis
    "dipddpm.sweep.tune_schedulers": "dipddpm.trial_schedulers",
    # the output-path checks: below the CLI, so the API uses them too
    "dipddpm.cli.outputs": "dipddpm.outputs",
}

MOVED_NAMES: dict[str, dict[str, str]] = {
    "dipddpm.methods.fitting": {
        "pick_device": "dipddpm.methods.device",
        "build_for_problem": "dipddpm.nn.sizes",
        "check_size": "dipddpm.nn.sizes",
        "size_error": "dipddpm.nn.sizes",
        "GlobalRng": "dipddpm.methods.loop_state",
        "dump_state": "dipddpm.methods.loop_state",
        "load_state": "dipddpm.methods.loop_state",
    },
    "dipddpm.methods.ddpm": {
        "loss_weight": "dipddpm.diffusion.loss",
        "diffusion_loss": "dipddpm.diffusion.loss",
        "make_grid": "dipddpm.data.grid",
        "DdpmConfig": "dipddpm.methods.ddpm_config",
        "PRESETS": "dipddpm.methods.ddpm_config",
        "autocast_on": "dipddpm.methods.ddpm_config",
        "Trained": "dipddpm.methods.ddpm_checkpoint",
        "load_ddpm": "dipddpm.methods.ddpm_checkpoint",
        "StateSaver": "dipddpm.methods.ddpm_checkpoint",
    },
    "dipddpm.cli.app": {
        "HELP_OPTIONS": "dipddpm.cli.common",
        "user_errors": "dipddpm.cli.common",
        "print_json": "dipddpm.cli.common",
        "IMAGE_SUFFIXES": "dipddpm.outputs",
        "check_image_path": "dipddpm.outputs",
    },
    "dipddpm.cli.common": {"IMAGE_SUFFIXES": "dipddpm.outputs",
                           "check_image_path": "dipddpm.outputs"},
    "dipddpm.sweep.rows": {"STATUSES": "dipddpm.dataset.columns"},
    "dipddpm.sweep.spec": {"RESOURCE_GRANULARITY": "dipddpm.cluster.devices",
                           "SEARCHERS": "dipddpm.sweep.searchers"},
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there", DeprecationWarning,
                  stacklevel=3)


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """The finder and loader of MOVED_MODULES' old names."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED_MODULES[spec.name]
        if isinstance(new, tuple):
            return None  # a split module: a module of its own, filled in exec_module
        _warn(spec.name, new)
        module = importlib.import_module(new)
        module.__dict__.setdefault("_compat_spec", module.__spec__)
        return module

    def exec_module(self, module) -> None:
        new = MOVED_MODULES[module.__spec__.name]
        if isinstance(new, tuple):
            _warn(module.__spec__.name, " and ".join(new))
            for name in new:
                src = importlib.import_module(name)
                module.__dict__.update({k: v for k, v in vars(src).items()
                                        if not k.startswith("__")})
            return
        module.__spec__ = module.__dict__.pop("_compat_spec")  # the module's own spec back


def moved_names(module: str) -> Callable[[str], Any]:
    """A module's `__getattr__` that finds the names MOVED_NAMES says left it."""
    table = MOVED_NAMES[module]

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{table[name]}.{name}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__


def install() -> None:
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
