"""Plug-ins travel to Ray's trial processes (dipddpm/registry.py): an entry registered from
outside dipddpm is listed by `Registry.plugins()`, and `Registry.install()` in a process that
imported dipddpm afresh registers it there. Built-in entries never travel. A subprocess stands
in for the trial's process (Ray's test: tests/test_contract_nets.py's toy net)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from ray import cloudpickle

from dipddpm.nn import NETS
from dipddpm.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def toy_net(i, o, width=None, depth=None):
    import torch

    return torch.nn.Conv2d(i, o, 3, padding=1)


def test_only_entries_registered_outside_dipddpm_are_plugins():
    import dipddpm.methods  # noqa: F401  (every built-in registry made)

    assert Registry.plugins() == ()
    NETS.register("toy_plugin")(toy_net)
    try:
        assert [(home, kind, name) for home, kind, name, _ in Registry.plugins()] == [
            ("dipddpm.nn", "net", "toy_plugin")]
    finally:
        NETS.unregister("toy_plugin")
    assert Registry.plugins() == ()


def other_net(i, o, width=None, depth=None):
    import torch

    return torch.nn.Conv2d(i, o, 1)


def test_a_fresh_process_gets_the_plugins_installed_and_one_line_for_one_it_cannot_load():
    """As a Ray trial does (sweep/plugins.py): the plug-in shipped by value is registered; the
    one whose module the process cannot import is left out with one line, and breaks nothing."""
    from dipddpm.sweep import plugins

    NETS.register("toy_plugin")(toy_net)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        packed = plugins.pack()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        NETS.unregister("toy_plugin")
    NETS.register("toy_elsewhere")(other_net)  # pickled by reference to this test module
    try:
        packed += plugins.pack()[-1:]
    finally:
        NETS.unregister("toy_elsewhere")
    assert [p[2] for p in packed] == ["toy_plugin", "toy_elsewhere"]
    code = ("import sys, pickle\n"
            "from dipddpm.sweep import plugins\n"
            "problems = plugins.unpack(pickle.loads(sys.stdin.buffer.read()))\n"
            "from dipddpm.nn import NETS, build_net\n"
            "print(type(build_net('toy_plugin', 4, 3)).__name__, 'toy_elsewhere' in NETS)\n"
            "print(*problems, sep='\\n')\n")
    r = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(packed),
                       capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    first, *problems = r.stdout.decode().strip().splitlines()
    assert first.split() == ["Conv2d", "False"]
    assert len(problems) == 1 and problems[0].startswith("net 'toy_elsewhere' registered on "
                                                         "the driver is not available"), problems
    assert "register_pickle_by_value" in problems[0]


def test_a_reverse_sampler_registered_is_taken_by_every_config_naming_one():
    """A config field naming a plug-in checks it against the registry, not a Literal list:
    a sampler registered later is taken by the sampling, DDPM and DIP-prior DDPM configs."""
    from dipddpm.config import build
    from dipddpm.diffusion.sampling import REVERSE_SAMPLERS, SamplerConfig
    from dipddpm.errors import ConfigError
    from dipddpm.methods.ddpm_config import DdpmConfig
    from dipddpm.methods.dip_prior_ddpm import DipPriorDdpmConfig

    fields = ((SamplerConfig, "sampler"), (DdpmConfig, "sample_sampler"),
              (DipPriorDdpmConfig, "sampler"))
    for cls, key in fields:
        with pytest.raises(ConfigError, match="unknown reverse sampler 'ddim_toy'"):
            build(cls, {key: "ddim_toy"})
    REVERSE_SAMPLERS.register("ddim_toy")(REVERSE_SAMPLERS.get("ddim"))
    try:
        for cls, key in fields:
            assert getattr(build(cls, {key: "ddim_toy"}), key) == "ddim_toy"
    finally:
        REVERSE_SAMPLERS.unregister("ddim_toy")
