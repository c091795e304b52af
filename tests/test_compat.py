"""Old import paths of moved modules and names keep working, and give the same objects as the
new paths (dipddpm/_compat.py), each with a DeprecationWarning naming the new home."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from dipddpm._compat import MOVED_MODULES, MOVED_NAMES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_is_the_new_module(old):
    new = MOVED_MODULES[old]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert importlib.import_module(old) is mod
    if isinstance(new, str):
        real = importlib.import_module(new)
        assert mod is real
        assert real.__spec__.name == new  # the module keeps its own spec
    else:  # a split module: every public name of each new module, the same object
        for name in new:
            for k, v in vars(importlib.import_module(name)).items():
                if not k.startswith("_"):
                    assert getattr(mod, k) is v, (name, k)
    parent, child = old.rsplit(".", 1)
    assert getattr(importlib.import_module(parent), child) is mod
    if not any(issubclass(w.category, DeprecationWarning) for w in caught):
        # imported earlier in this session: the warning came then; a fresh process shows it
        code = f"import warnings; warnings.simplefilter('error'); import {old}"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode != 0 and "DeprecationWarning" in r.stderr, r.stderr
        assert "moved to" in r.stderr


@pytest.mark.parametrize("module,name", sorted((m, n) for m, t in MOVED_NAMES.items()
                                              for n in t))
def test_an_old_name_path_is_the_new_object(module, name):
    new = importlib.import_module(MOVED_NAMES[module][name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        got = getattr(importlib.import_module(module), name)
        ns: dict = {}
        exec(f"from {module} import {name} as x", ns)
    assert got is getattr(new, name) and ns["x"] is got


def test_a_name_that_never_existed_is_still_an_attribute_error():
    from dipddpm.methods import fitting

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fitting.nope  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("dipddpm.sweep.nope")


def test_old_paths_in_a_fresh_process():
    code = ("from dipddpm.sweep.storage import resolve\n"
            "from dipddpm.sweep import storage\n"
            "import dipddpm.dataset.storage as new\n"
            "assert storage is new and resolve is new.resolve\n"
            "from dipddpm.sweep.results import write_artifact, read_trials\n"
            "from dipddpm.methods.ddpm import make_grid, load_ddpm\n"
            "from dipddpm.cli.app import user_errors\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
