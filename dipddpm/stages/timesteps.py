"""Stage timesteps t_1 > ... > t_K (most noisy first) and stage targets y_k (docs/methods.md)."""

from __future__ import annotations

import numpy as np
import torch

from dipddpm.errors import ConfigError


def stage_timesteps(K: int, t_max: int, t_min: int, spacing: str = "linear",
                    drop_first: bool = False) -> list[int]:
    """K integer timesteps from t_max down to t_min (int() truncation, as the sources do).

    drop_first: space K+1 points and drop the first (staged-DIP: linspace(999, 0, 10)[1:]).
    spacing 'log': geometric spacing of t + 1 (more stages at small t).
    """
    if K < 1:
        raise ConfigError(f"stages must be >= 1, got {K}")
    if not 0 <= t_min <= t_max:
        raise ConfigError(f"need 0 <= t_min <= t_max, got t_min={t_min}, t_max={t_max}")
    n = K + 1 if drop_first else K
    if spacing == "linear":
        ts = np.linspace(t_max, t_min, n)
    elif spacing == "log":
        ts = np.geomspace(t_max + 1, t_min + 1, n) - 1
    else:
        raise ConfigError(f"t_spacing must be 'linear' or 'log', got {spacing!r}")
    ts = ts.astype(np.int64).tolist()
    return ts[1:] if drop_first else ts


def stage_target(source: torch.Tensor, abar_t: float, eps: torch.Tensor,
                 noise_affine: tuple[float, float] = (1.0, 0.0), space: str = "unit"):
    """y_k = sqrt(abar) s + sqrt(1 - abar) (a eps + b), in [0,1] ('unit') or [-1,1] space."""
    if space not in ("unit", "symmetric"):
        raise ConfigError(f"stage space must be 'unit' or 'symmetric', got {space!r}")
    a, b = noise_affine
    if space == "symmetric":  # noise in [-1, 1], map the target back to [0, 1]
        s = 2 * source - 1
        return ((abar_t ** 0.5 * s + (1 - abar_t) ** 0.5 * (a * eps + b)) + 1) / 2
    return abar_t ** 0.5 * source + (1 - abar_t) ** 0.5 * (a * eps + b)
