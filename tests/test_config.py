"""Typed frozen configs: unknown keys, coercion from strings, range checks."""

import dataclasses

import pytest

from dipddpm.config import build, parse_set
from dipddpm.errors import ConfigError
from dipddpm.methods.dip import DipConfig
from dipddpm.methods.guided_dip import GuidedDipConfig


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'ittrs'.*did you mean 'iters'"):
        build(DipConfig, {"ittrs": 10})


def test_coercion_from_cli_strings():
    cfg = build(GuidedDipConfig, parse_set(["iters=100", "lr=1e-3", "backtracking=false",
                                            "noise_affine=[0.5, 0.5]", "width=null"]))
    assert cfg.iters == 100 and cfg.lr == 1e-3 and cfg.backtracking is False
    assert cfg.noise_affine == (0.5, 0.5) and cfg.width is None


def test_wrong_types_and_choices():
    with pytest.raises(ConfigError, match="iters must be an integer"):
        build(DipConfig, {"iters": "ten"})
    with pytest.raises(ConfigError, match="backtrack_mode must be one of"):
        build(DipConfig, {"backtrack_mode": "dirty"})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        build(DipConfig, {"lr": 0})
    with pytest.raises(ConfigError, match="t_max"):
        build(GuidedDipConfig, {"t_max": 1000})


def test_configs_are_frozen():
    cfg = build(DipConfig, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.iters = 5


def test_parse_set_rejects_missing_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["lr"])
