"""Images and degradations: load a path or a built-in scikit-image photo, crop, resize, noise.

Images are float32 tensors (C,H,W) in [0,1] (docs/methods.md, Conventions). Built-in names:
`skimage:astronaut` and need no download; `data:cset9/F16` names a benchmark image of the
data cache (`dipddpm data fetch cset9`, data/catalog.py). The observation y is drawn once per
(image, seed) from a seeded generator so every trial of a sweep sees the same y.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dipddpm.errors import DipddpmError, first_line

BUILTIN_IMAGES = ("astronaut", "camera", "cat", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "moon", "text", "brick", "grass", "gravel",
                  "coins", "page", "clock", "horse", "colorwheel", "logo", "motorcycle_left")


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    else:
        arr = arr.astype(np.float32)
        if arr.max() > 1.0:
            arr = arr / (65535.0 if arr.max() > 255 else 255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 4:  # drop alpha
        arr = arr[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).clamp(0, 1)


def image_file(source: str) -> Path:
    """The path of an image source (a file, or `data:SET/IMAGE` in the data cache: see
    data/fetch.py), if it is a non-empty file; else the one-line reason."""
    from dipddpm.data.fetch import image_path, is_data_ref

    path = image_path(source) if is_data_ref(source) else Path(source)
    if path.is_dir():
        raise DipddpmError(f"image {source} is a folder, not an image file; give a PNG/JPEG "
                           f"file (a study takes a folder as problem.images: [{source}])")
    if not path.is_file():
        raise DipddpmError(f"image not found: {source} (give a PNG/JPEG path or "
                           f"skimage:NAME, e.g. skimage:astronaut)")
    if path.stat().st_size == 0:
        raise DipddpmError(f"image {source} is empty (0 bytes); give a PNG or JPEG file")
    return path


def load_image(source: str, grey: bool = False) -> torch.Tensor:
    """Load `source` (a PNG/JPEG path, `skimage:NAME` or `data:SET/IMAGE`) as (C,H,W) float32
    in [0,1]."""
    if source.startswith("skimage:"):
        import skimage.data

        name = source.split(":", 1)[1]
        if name not in BUILTIN_IMAGES or not hasattr(skimage.data, name):
            raise DipddpmError(f"unknown built-in image {source!r}; valid: "
                               + ", ".join(f"skimage:{n}" for n in BUILTIN_IMAGES))
        img = _to_tensor(np.asarray(getattr(skimage.data, name)()))
    else:
        path = image_file(source)  # a path, or data:SET/IMAGE from the data cache
        try:
            import skimage.io

            img = _to_tensor(np.asarray(skimage.io.imread(str(path))))
        except Exception as e:  # unreadable or not an image
            raise DipddpmError(f"cannot read image {source}: {type(e).__name__}: "
                               f"{first_line(e)}; give a PNG or JPEG file") from None
    if grey and img.shape[0] == 3:
        w = torch.tensor([0.2125, 0.7154, 0.0721]).view(3, 1, 1)
        img = (img * w).sum(0, keepdim=True)
    elif not grey and img.shape[0] == 1:
        img = img.expand(3, -1, -1).clone()
    return img


def center_crop(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    H, W = img.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top:top + h, left:left + w]


def crop_to_multiple(img: torch.Tensor, multiple: int) -> torch.Tensor:
    """Center-crop so H and W are divisible by `multiple` (the net's size multiple)."""
    H, W = img.shape[-2:]
    h, w = H - H % multiple, W - W % multiple
    if h == 0 or w == 0:
        raise DipddpmError(f"image of {H}x{W} is smaller than the net's size multiple "
                           f"{multiple}; use a larger --size or a shallower net (depth)")
    return center_crop(img, h, w)


def resize_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Center-crop to a square, then resize (antialiased bilinear) to size x size."""
    if size < 1:
        raise DipddpmError(f"--size must be a positive number of pixels, got {size}")
    H, W = img.shape[-2:]
    s = min(H, W)
    img = center_crop(img, s, s)
    if s == size:
        return img
    out = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)[0]
    return out.clamp(0, 1)


def gaussian_noise(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """y = clip(x + sigma/255 N(0, I), 0, 1) from a generator seeded by `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(clean.shape, generator=g, dtype=torch.float32)
    return (clean + sigma / 255.0 * noise).clamp(0, 1)


@dataclass
class ImageProblem:
    """A denoising problem: the clean image (metrics only) and the observation y."""

    clean: torch.Tensor  # (C,H,W) in [0,1]
    observed: torch.Tensor  # (C,H,W) in [0,1]
    name: str = ""
    sigma: float = 25.0
    seed: int = 0
    # the std of the observation's additive Gaussian noise in [0, 1] units, where the problem
    # knows it (sigma / 255 for a gaussian observation); None where it does not (the
    # forward-noised observation, a problem made without it)
    noise_std: float | None = None

    @property
    def channels(self) -> int:
        return self.clean.shape[0]


def make_image_problem(image: str, size: int | None = None, sigma: float = 25.0,
                       seed: int = 0, grey: bool = False, multiple: int = 1,
                       observation: str = "gaussian", observation_t: int = 40,
                       observation_schedule: str = "linear") -> ImageProblem:
    """Load, resize, crop to `multiple` and degrade.

    observation "gaussian" (y = clip(x + sigma N(0, I), 0, 1)) or "forward" (the guided-DIP
    source: the clean image forward-noised to `observation_t` with the shifted noise
    0.5 eps + 0.5, in [0,1] space).
    """
    if sigma < 0:
        raise DipddpmError(f"sigma must be >= 0 (0-255 units), got {sigma}")
    clean = load_image(image, grey=grey)
    if size:
        clean = resize_square(clean, int(size))
    clean = crop_to_multiple(clean, multiple)
    noise_std = None
    if observation == "gaussian":
        observed = gaussian_noise(clean, sigma, seed)
        noise_std = sigma / 255.0
    elif observation == "forward":
        from dipddpm.diffusion import DiffusionProcess

        proc = DiffusionProcess.from_schedule(observation_schedule, 1000)
        g = torch.Generator().manual_seed(int(seed))
        eps = torch.randn(clean.shape, generator=g)
        observed = proc.q_sample(clean[None], observation_t, 0.5 * eps[None] + 0.5)[0]
        observed = observed.clamp(0, 1)
    else:
        raise DipddpmError(f"observation must be 'gaussian' or 'forward', got {observation!r}")
    return ImageProblem(clean=clean, observed=observed, name=image, sigma=sigma, seed=seed,
                        noise_std=noise_std)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(C,H,W) in [0,1] -> 8-bit (H,W,C), or (H,W) for one channel, rounded."""
    arr = (img.detach().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255 + 0.5)
    arr = arr.astype(np.uint8)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def save_image(img: torch.Tensor, path) -> None:
    """Write (C,H,W) in [0,1] as an 8-bit PNG/JPEG (by its suffix), creating the folder;
    encoded in memory, then written atomically (a failed write leaves no file open)."""
    import imageio.v3 as iio

    from dipddpm.atomic import atomic_bytes

    path = Path(path)
    atomic_bytes(path, iio.imwrite("<bytes>", to_uint8(img), extension=path.suffix.lower()))
