"""Image datasets for DDPM training (docs/methods.md, DDPM), with deterministic train/val/test
splits.

A dataset builder is `(size, grey, seed, **params) -> (train, val, test)`, each a uint8 tensor
(N,C,H,W); `load_dataset(name, ...)` wraps them in an `ImageDataset` whose batches are float32
in [0,1] (docs/methods.md, Conventions). Registered names:

- `mnist`, `cifar10`: torchvision (imported lazily); `data_root` and `download` (off by default:
  nothing is fetched unless asked); absent files give an error saying where to put them. The
  official test set is the test split; val is a seeded `val_fraction` of the training set.
- `folder`: every PNG/JPEG under `path`, center-square-cropped and resized to `size`.
- `skimage-patches` (offline): seeded random crops of scikit-image's bundled photos, grey or RGB,
  any patch size. Splits are by photo (test: astronaut, coffee; val: chelsea), so held-out
  patches never overlap a training photo.
- `lfw` (offline): `skimage.data.lfw_subset()`, 200 grey 25x25 faces (100 faces, 100 not).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dipddpm.data.images import load_image, resize_square
from dipddpm.errors import ConfigError, DipddpmError, closest, first_line
from dipddpm.registry import Registry

DATASETS: Registry = Registry("dataset")
Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

PATCH_PHOTOS = {
    "train": ("camera", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "moon",
              "brick", "grass", "gravel", "coins", "clock", "page"),
    "val": ("chelsea",),
    "test": ("astronaut", "coffee"),
}


@dataclass
class ImageDataset:
    name: str
    train: torch.Tensor  # (N,C,H,W) uint8
    val: torch.Tensor
    test: torch.Tensor
    spec: dict  # the resolved dataset spec (for checkpoints)

    @property
    def channels(self) -> int:
        return self.train.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.shape[-1]

    @staticmethod
    def as_float(batch: torch.Tensor) -> torch.Tensor:
        """uint8 (B,C,H,W) -> float32 in [0,1]."""
        return batch.float() / 255.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N,C,h,w) float in [0,1] -> (N,C,size,size), antialiased bilinear."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) -> (N,1,H,W) with scikit-image's rgb2gray weights."""
    w = torch.tensor([0.2125, 0.7154, 0.0721], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _val_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train indices, val indices) of n items."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _torchvision(cls_name: str, folder: str, files: str, size: int | None, grey: bool,
                 seed: int, data_root: str, download: bool, val_fraction: float) -> Splits:
    try:
        import torchvision.datasets as tvd
    except ImportError:  # pragma: no cover - torchvision is a dependency
        raise DipddpmError(f"{cls_name} needs torchvision: pip install torchvision") from None
    root = Path(data_root).expanduser()
    sets = []
    for train in (True, False):
        try:
            ds = getattr(tvd, cls_name)(str(root), train=train, download=download)
        except Exception as e:  # absent files; with download: no network or a bad archive
            if not download:
                raise DipddpmError(
                    f"{cls_name} not found under {root}: put {files} in {root / folder} or "
                    f"pass download=true (--download) to fetch it") from None
            raise DipddpmError(f"could not download {cls_name} into {root} "
                               f"({type(e).__name__}: {first_line(e)}); put {files} in "
                               f"{root / folder} by hand") from None
        data = torch.as_tensor(np.asarray(ds.data))  # (N,H,W) or (N,H,W,3) uint8
        data = data[:, None] if data.dim() == 3 else data.permute(0, 3, 1, 2)
        sets.append(data.contiguous())
    train_all, test = sets
    if grey and train_all.shape[1] == 3 or size is not None and size != train_all.shape[-1]:
        def fix(x: torch.Tensor) -> torch.Tensor:
            x = ImageDataset.as_float(x)
            x = _grey(x) if grey and x.shape[1] == 3 else x
            return to_uint8(_resize(x, size or x.shape[-1]))

        train_all, test = fix(train_all), fix(test)
    tr, va = _val_split(train_all.shape[0], val_fraction, seed)
    return train_all[tr], train_all[va], test


@DATASETS.register("mnist")
def mnist(size: int | None = None, grey: bool = True, seed: int = 0, data_root: str = "data",
          download: bool = False, val_fraction: float = 0.1) -> Splits:
    """torchvision MNIST (28x28x1): 60,000 train (less val) / 10,000 test."""
    if not grey:
        raise ConfigError("mnist is grey only (1 channel); drop grey: false")
    return _torchvision("MNIST", "MNIST/raw", "train-images-idx3-ubyte(.gz), "
                        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
                        size, False, seed, data_root, download, val_fraction)


@DATASETS.register("cifar10")
def cifar10(size: int | None = None, grey: bool = False, seed: int = 0, data_root: str = "data",
            download: bool = False, val_fraction: float = 0.1) -> Splits:
    """torchvision CIFAR-10 (32x32x3): 50,000 train (less val) / 10,000 test."""
    return _torchvision("CIFAR10", "cifar-10-batches-py", "the extracted cifar-10-batches-py/ "
                        "folder (data_batch_1..5, test_batch)", size, grey, seed, data_root,
                        download, val_fraction)


def _split_three(x: torch.Tensor, seed: int, val_fraction: float,
                 test_fraction: float) -> Splits:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise ConfigError(f"need 0 <= val_fraction, test_fraction and their sum < 1, got "
                          f"{val_fraction} and {test_fraction}")
    n = x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    return (x[perm[n_val + n_test:]], x[perm[:n_val]], x[perm[n_val:n_val + n_test]])


@DATASETS.register("folder")
def folder(size: int | None = None, grey: bool = False, seed: int = 0, path: str = "",
           val_fraction: float = 0.1, test_fraction: float = 0.1) -> Splits:
    """Every .png/.jpg/.jpeg under `path` (recursive), square-cropped and resized to `size`."""
    root = Path(path).expanduser()
    if not path or not root.is_dir():
        raise DipddpmError(f"dataset 'folder' needs path=DIR holding PNG/JPEG images, got "
                           f"{path!r}; e.g. --data path=./my_images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(files) < 3:
        raise DipddpmError(f"dataset 'folder' found {len(files)} images under {root}; it needs "
                           f"at least 3 (train, val, test)")
    imgs = [load_image(str(f), grey=grey) for f in files]
    if size is None:
        shapes = {tuple(i.shape[-2:]) for i in imgs}
        if len(shapes) != 1 or imgs[0].shape[-1] != imgs[0].shape[-2]:
            raise DipddpmError(f"images under {root} have sizes {sorted(shapes)[:3]}...; give "
                               f"size=N to square-crop and resize them all")
        size = imgs[0].shape[-1]
    data = to_uint8(torch.stack([resize_square(i, int(size)) for i in imgs]))
    return _split_three(data, seed, val_fraction, test_fraction)


def _patches(photos: tuple[str, ...], count: int, size: int, grey: bool, g: torch.Generator,
             scale: float, min_std: float) -> torch.Tensor:
    imgs = []
    for name in photos:
        img = load_image(f"skimage:{name}", grey=grey)
        if scale != 1.0:
            h, w = (max(size, int(round(s * scale))) for s in img.shape[-2:])
            img = F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True,
                                align_corners=False)[0].clamp(0, 1)
        if min(img.shape[-2:]) < size:
            raise DipddpmError(f"patch size {size} is larger than skimage:{name} "
                               f"({img.shape[-2]}x{img.shape[-1]}); use a smaller size")
        imgs.append(img)
    out = []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 50 * count:
            raise DipddpmError(f"found only {len(out)} of {count} patches with std >= "
                               f"{min_std}; lower min_std")
        img = imgs[int(torch.randint(len(imgs), (1,), generator=g))]
        H, W = img.shape[-2:]
        top = int(torch.randint(H - size + 1, (1,), generator=g))
        left = int(torch.randint(W - size + 1, (1,), generator=g))
        patch = img[:, top:top + size, left:left + size]
        if patch.std() >= min_std:
            out.append(patch)
    return to_uint8(torch.stack(out))


@DATASETS.register("skimage-patches")
def skimage_patches(size: int | None = 32, grey: bool = True, seed: int = 0, count: int = 4096,
                    eval_count: int = 256, scale: float = 1.0, min_std: float = 0.02) -> Splits:
    """`count` train and `eval_count` val and test random crops of the bundled photos; the
    photos are split (see PATCH_PHOTOS), `scale` resizes each photo first, crops with a pixel
    std below `min_std` (flat sky, black borders) are redrawn."""
    size = 32 if size is None else int(size)
    if size < 1 or count < 1 or eval_count < 1:
        raise ConfigError(f"size, count and eval_count must be >= 1, got {size}, {count}, "
                          f"{eval_count}")
    if scale <= 0:
        raise ConfigError(f"scale must be > 0, got {scale}")
    splits = []
    for i, (split, photos) in enumerate(PATCH_PHOTOS.items()):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        n = count if split == "train" else eval_count
        splits.append(_patches(photos, n, size, grey, g, scale, min_std))
    return tuple(splits)


@DATASETS.register("lfw")
def lfw(size: int | None = None, grey: bool = True, seed: int = 0, val_fraction: float = 0.1,
        test_fraction: float = 0.1) -> Splits:
    """scikit-image's 200 grey 25x25 LFW crops (offline); `size` resizes, grey=false repeats
    the grey channel three times."""
    import skimage.data

    x = torch.from_numpy(np.asarray(skimage.data.lfw_subset(), dtype=np.float32))[:, None]
    if size is not None:
        x = _resize(x, int(size))
    if not grey:
        x = x.expand(-1, 3, -1, -1)
    return _split_three(to_uint8(x).contiguous(), seed, val_fraction, test_fraction)


def dataset_params(name: str) -> list[str]:
    return list(inspect.signature(DATASETS.get(name)).parameters)


def load_dataset(name: str, **params) -> ImageDataset:
    """Build dataset `name` with its params (size, grey, seed, and the builder's own)."""
    valid = dataset_params(name)
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} for dataset {name!r}"
                          f"{closest(unknown[0], valid)}; valid options: {', '.join(valid)}")
    train, val, test = DATASETS.get(name)(**params)
    if train.shape[0] == 0:
        raise DipddpmError(f"dataset {name!r} has an empty training split")
    spec = {"dataset": name, **params}
    return ImageDataset(name=name, train=train, val=val, test=test, spec=spec)
