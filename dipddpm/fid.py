"""FID and KID of generated samples, only where Inception-v3 weights are present locally.

Nothing is downloaded: the weights are torchvision's `inception_v3_google-0cc3c7bd.pth`, looked
up at $DIPDDPM_INCEPTION_WEIGHTS or in the torch hub cache (<torch hub dir>/checkpoints/). When
they are absent the result carries no number, only a note saying FID/KID were skipped and why.
These use torchvision's Inception (not the TF-ported FID Inception), so values are comparable
between our runs, not with published FIDs.

    FID = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2)
    KID = unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3  (Binkowski et al.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dipddpm.errors import DipddpmError

WEIGHTS_NAME = "inception_v3_google-0cc3c7bd.pth"
ENV = "DIPDDPM_INCEPTION_WEIGHTS"


@dataclass
class FidResult:
    metrics: dict[str, float] = field(default_factory=dict)  # fid, kid (empty when skipped)
    note: str = ""  # what was computed, or why it was skipped


def find_inception_weights() -> Path | None:
    env = os.environ.get(ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
    return cached if cached.is_file() else None


def skipped_note() -> str:
    where = os.environ.get(ENV) or str(Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME)
    return (f"FID/KID skipped: no Inception-v3 weights at {where} (nothing is downloaded; put "
            f"torchvision's {WEIGHTS_NAME} there or set {ENV}=PATH)")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N,D), in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    sqrt_a = (v * np.sqrt(w.clip(min=0))) @ v.T
    m = sqrt_a @ s_b @ sqrt_a
    tr_sqrt = np.sqrt(np.linalg.eigvalsh((m + m.T) / 2).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
                 + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1)) - 2 * k_ab.mean())


def _inception(path: Path, device) -> torch.nn.Module:
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = torch.nn.Identity()  # 2048-d pool features
    return net.eval().to(device)


@torch.no_grad()
def _features(net, images: torch.Tensor, device, batch: int = 64) -> np.ndarray:
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device).float()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(net((x - mean) / std).cpu())
    return torch.cat(out).numpy()


def fid_kid(sample_fn: Callable[[int], torch.Tensor], real: torch.Tensor, n: int,
            device=None) -> FidResult:
    """FID/KID of n samples (sample_fn(n) -> (n,C,H,W) in [0,1]) vs `real` (N,C,H,W) in [0,1],
    or a skipped note when the weights are absent."""
    if n < 2:
        raise DipddpmError(f"FID/KID need at least 2 samples (covariances, unbiased MMD), got "
                           f"{n}; ask for more samples")
    path = find_inception_weights()
    if path is None:
        return FidResult(note=skipped_note())
    net = _inception(path, device or "cpu")
    fake = sample_fn(n)
    f_real = _features(net, real[:max(n, 2)], device or "cpu")
    f_fake = _features(net, fake, device or "cpu")
    return FidResult(metrics={"fid": frechet_distance(f_real, f_fake),
                              "kid": kernel_inception_distance(f_real, f_fake)},
                     note=f"FID/KID of {len(fake)} samples vs {len(f_real)} test images with "
                          f"torchvision Inception-v3 weights from {path} (not comparable to "
                          f"published TF-Inception FIDs)")
