"""Image sets: the images of a study (`problem.images:`), expanded to a list of sources.

An entry of `images:` is one of
    a path (PNG/JPEG/TIFF) or `skimage:NAME`     one image
    a directory                                 its image files, sorted by name
    a glob (`data/*.png`)                       its matches, sorted
    `skimage-set:NAME`                          a named offline set of scikit-image's photos
    `data:SET` or `data:SET/IMAGE`              a benchmark set of the data cache, or one of
                                                its images (`dipddpm data fetch SET`)
A string is a list of one entry. The order is kept and a repeated image is an error (it would
weigh twice in every mean). Reading the images is left to the problem builder, which names the
image that cannot be read.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from dipddpm.errors import ConfigError, closest

# named offline sets: the colour photos bundled with scikit-image (no download)
SKIMAGE_SETS: dict[str, tuple[str, ...]] = {
    "photos": ("skimage:astronaut", "skimage:chelsea", "skimage:coffee", "skimage:rocket"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _entry(entry: str) -> list[str]:
    if entry.startswith("skimage-set:"):
        name = entry.split(":", 1)[1]
        if name not in SKIMAGE_SETS:
            raise ConfigError(f"problem.images: unknown set {entry!r}"
                              f"{closest(name, list(SKIMAGE_SETS))}; valid sets: "
                              + ", ".join(f"skimage-set:{n}" for n in SKIMAGE_SETS))
        return list(SKIMAGE_SETS[name])
    if entry.startswith("skimage:"):
        return [entry]
    from dipddpm.data.fetch import is_data_ref, set_images

    if is_data_ref(entry):  # the loader names a missing image and its fetch
        return set_images(entry)
    path = Path(entry)
    if path.is_dir():
        found = sorted(str(p) for p in path.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not found:
            raise ConfigError(f"problem.images: folder {entry} has no image files "
                              f"({', '.join(IMAGE_SUFFIXES)}); give a folder of images")
        return found
    if glob.has_magic(entry):
        found = sorted(glob.glob(entry))
        if not found:
            raise ConfigError(f"problem.images: the pattern {entry!r} matches no file; "
                              f"check the path (relative paths start at the working folder)")
        return found
    return [entry]


def expand_images(images: Any) -> list[str]:
    """The image sources of `problem.images` (see the module docstring)."""
    entries = [images] if isinstance(images, str) else images
    if not isinstance(entries, list | tuple) or not entries:
        raise ConfigError(f"problem.images must be a non-empty list of paths, folders, globs, "
                          f"skimage:NAME or skimage-set:NAME, got {images!r}; e.g. images: "
                          f"[skimage:astronaut, skimage:coffee]")
    out: list[str] = []
    for e in entries:
        if not isinstance(e, str) or not e.strip():
            raise ConfigError(f"problem.images: every entry is a path or name, got {e!r}")
        for source in _entry(e.strip()):
            if source in out:
                raise ConfigError(f"problem.images: {source} appears twice; each image once "
                                  f"(use replicates: S for more seeds per image)")
            out.append(source)
    return out
