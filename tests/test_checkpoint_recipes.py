"""`recipe:NAME` checkpoints: made where they are first read, kept in the data cache, reused."""

from __future__ import annotations

import pytest

from dipddpm.checkpoint import read_checkpoint
from dipddpm.errors import ConfigError


def test_tiny_ddpm_recipe_is_made_once_and_loads(tmp_path, monkeypatch):
    from dipddpm.methods.ddpm_checkpoint import load_ddpm

    monkeypatch.setenv("DIPDDPM_DATA", str(tmp_path / "cache"))
    config, tensors = read_checkpoint("recipe:tiny-ddpm")
    made = list((tmp_path / "cache" / "recipes").glob("tiny-ddpm-*.pt"))
    assert len(made) == 1 and made[0].with_suffix(".json").is_file()
    assert config["dataset"]["dataset"] == "skimage-patches" and "net" in tensors
    stamp = made[0].stat().st_mtime_ns
    ddpm = load_ddpm("recipe:tiny-ddpm", device="cpu")  # the same file, not trained again
    assert made[0].stat().st_mtime_ns == stamp
    assert (ddpm.spec.channels, ddpm.spec.image_size, ddpm.process.T) == (1, 16, 100)
    assert not [p for p in made[0].parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_an_unknown_recipe_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPDDPM_DATA", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"unknown checkpoint recipe 'tiny' \(did you mean "
                                          r"'tiny-ddpm'\?\)"):
        read_checkpoint("recipe:tiny")
