"""Plug-ins travel to Ray's trial processes (dipddpm/registry.py): an entry registered from
outside dipddpm is listed by `Registry.plugins()`, and `Registry.install()` in a process that
imported dipddpm afresh registers it there. Built-in entries never travel. A subprocess stands
in for the trial's process (Ray's test: tests/test_contract_nets.py's toy net)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ray import cloudpickle

from dipddpm.nn import NETS
from dipddpm.registry import Registry


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


def test_a_fresh_process_gets_the_plugins_installed():
    NETS.register("toy_plugin")(toy_net)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        blob = cloudpickle.dumps(Registry.plugins())
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        NETS.unregister("toy_plugin")
    code = ("import sys, pickle\n"
            "from dipddpm.registry import Registry\n"
            "Registry.install(pickle.loads(sys.stdin.buffer.read()))\n"
            "from dipddpm.nn import NETS, build_net\n"
            "net = build_net('toy_plugin', 4, 3)\n"
            "print(type(net).__name__, 'toy_plugin' in NETS)\n")
    r = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout.decode().split() == ["Conv2d", "True"]


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
