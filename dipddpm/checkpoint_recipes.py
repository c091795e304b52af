"""Checkpoints a registered recipe makes where they are read: `recipe:NAME` in place of a path.

A smoke run must work on a fresh clone, offline, and DIP-prior DDPM needs a trained DDPM: its
bundled spec's smoke block names `checkpoint: recipe:tiny-ddpm`, which trains the tiny DDPM
preset for a few steps on patches of scikit-image's bundled photos (16x16 grey, T = 100; about
a second on CPU) the first time it is read and keeps it in the data cache
(<cache>/recipes/NAME-<digest>.pt, the digest of the recipe's config and the dipddpm version).
It is a real checkpoint of a barely trained model: it runs the method end to end; it does not
denoise well, and is not meant to.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dipddpm.registry import Registry

PREFIX = "recipe:"


@dataclass(frozen=True)
class Recipe:
    make: Callable[[Mapping[str, Any], Path], None]  # (config, path) -> writes a checkpoint
    help: str
    config: Mapping[str, Any] = field(default_factory=dict)


def _train_tiny_ddpm(config: Mapping[str, Any], path: Path) -> None:
    from dipddpm.config import build
    from dipddpm.methods.ddpm import dataset_problem, train_ddpm
    from dipddpm.methods.ddpm_config import PRESETS, DdpmConfig

    cfg = build(DdpmConfig, {**PRESETS["tiny"], **config["ddpm"]})
    data = dataset_problem(dict(config["dataset"]), cfg)
    train_ddpm(cfg, data, seed=0, device="cpu").save(path)


RECIPES: Registry[Recipe] = Registry("checkpoint recipe")
RECIPES.register("tiny-ddpm")(Recipe(
    _train_tiny_ddpm, "the tiny DDPM preset, 4 steps on 32 bundled 16x16 grey patches",
    {"ddpm": {"iters": 4, "val_max": 0, "sample_count": 0},
     "dataset": {"dataset": "skimage-patches", "size": 16, "count": 32}}))


def is_recipe(path: str | os.PathLike) -> bool:
    return str(path).startswith(PREFIX)


def recipe_path(ref: str) -> Path:
    """The checkpoint file of `recipe:NAME`, made (atomically) if the cache lacks it."""
    from dipddpm import __version__
    from dipddpm.data.fetch import cache_root

    recipe = RECIPES.get(ref[len(PREFIX):])
    key = json.dumps({"config": recipe.config, "version": __version__}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = cache_root() / "recipes" / f"{ref[len(PREFIX):]}-{digest}.pt"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".recipe-", dir=path.parent) as tmp:
        made = Path(tmp) / "ddpm.pt"
        recipe.make(recipe.config, made)  # trials that read it at once each make their own
        os.replace(made.with_suffix(".json"), path.with_suffix(".json"))
        os.replace(made, path)
    return path
