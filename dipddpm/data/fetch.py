"""The data cache: `data:SET/IMAGE` names resolved to files, and `dipddpm data fetch SET`.

Cache: $DIPDDPM_DATA, else $XDG_CACHE_HOME/dipddpm/data, else ~/.cache/dipddpm/data. A set's
files are in <cache>/<folder>/ (cset9/F16.png, butterfly/Image_1.jpg): the layout of a plain
folder of these images, so DIPDDPM_DATA may also point at one.

A fetch reads each image from its pinned public URL (catalog.py), or only from a mirror
(--mirror DIR_OR_URL, or $DIPDDPM_DATA_MIRROR) that holds <folder>/<served file> or
<folder>/<cache file>: offline, nothing else is contacted. Every image is checked against its
pins in a staging folder beside the set's; only when all pass are they moved in, so a mismatch
(or a failed download) leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dipddpm.data.catalog import DATA, DataImage, DataSet, pixel_digest, smallest_set_with
from dipddpm.errors import ConfigError, DipddpmError, closest, first_line

PREFIX = "data:"
CACHE_ENV = "DIPDDPM_DATA"
MIRROR_ENV = "DIPDDPM_DATA_MIRROR"
MAX_BYTES = 64 * 2**20  # no image of the catalog comes near; a runaway download stops here
TIMEOUT_S = 30.0


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dipddpm" / "data"


def is_data_ref(source: str) -> bool:
    return source.startswith(PREFIX)


def parse_ref(ref: str) -> tuple[str, DataSet, DataImage | None]:
    """(set name, set, image or None) of `data:SET/IMAGE` or `data:SET`."""
    body = ref[len(PREFIX):]
    name, _, image = body.partition("/")
    if name not in DATA:
        raise ConfigError(f"{ref}: unknown data set {name!r}{closest(name, DATA.names())}; "
                          f"registered: {', '.join(DATA.names())} (`dipddpm data list`)")
    ds = DATA.get(name)
    if not image:
        return name, ds, None
    img = ds.image(image)
    if img is None:
        names = [i.name for i in ds.images]
        raise ConfigError(f"{ref}: no image {image!r} in data set {name}"
                          f"{closest(image, names)}; its images: {', '.join(names)}")
    return name, ds, img


def image_path(ref: str) -> Path:
    """The cache file of `data:SET/IMAGE`; a one-line error naming the fetch when absent."""
    name, ds, img = parse_ref(ref)
    if img is None:
        raise ConfigError(f"{ref} names a whole data set; an image is data:{name}/IMAGE, e.g. "
                          f"data:{name}/{ds.images[0].name} (a study takes "
                          f"problem.images: [{ref}])")
    path = cache_root() / ds.folder / img.file
    if not path.is_file():
        raise DipddpmError(f"{ref} is not in the data cache ({path}); run `dipddpm data "
                           f"fetch {smallest_set_with(ds.folder, img.name)}` (offline: with "
                           f"--mirror DIR)")
    return path


def set_images(ref: str) -> list[str]:
    """`data:SET` -> the refs of its images; `data:SET/IMAGE` -> itself."""
    name, ds, img = parse_ref(ref)
    return [ref] if img is not None else [f"{PREFIX}{name}/{i.name}" for i in ds.images]


# --- reading and checking ---------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(data: bytes, kind: str):
    """A uint8 image array from served or cached bytes ('npz': one array; else an image)."""
    import numpy as np

    if kind == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if len(z.files) != 1:
                raise ValueError(f"expected one array, found {len(z.files)}")
            return z[z.files[0]]
    import imageio.v3 as iio

    return iio.imread(data)


def cached_file_ok(img: DataImage, path: Path) -> bool:
    """Whether a file in the cache (or a mirror's cache-named file) is this image."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if img.served == "file":
        return sha256(data) == img.sha256
    try:
        return pixel_digest(_decode(data, "png")) == img.pixels
    except Exception:  # not an image at all
        return False


@dataclass
class Fetched:
    """What `fetch` did for one set."""

    name: str
    folder: Path
    source: str
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"set": self.name, "folder": str(self.folder), "source": self.source,
                "fetched": self.fetched, "present": self.present}


def read_url(url: str) -> bytes | None:
    """The bytes at an http(s) URL, a file:// URL or a path; None if there is no such file."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        req = urllib.request.Request(url, headers={"User-Agent": "dipddpm-data-fetch"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
                data = r.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise DipddpmError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", None) or first_line(e)
            raise DipddpmError(f"cannot download {url} ({why}); check the network, or fetch "
                               f"offline from a mirror: --mirror DIR") from None
        if len(data) > MAX_BYTES:
            raise DipddpmError(f"{url} is larger than {MAX_BYTES // 2**20} MiB: not an image "
                               f"of the catalog")
        return data
    path = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url)
    return path.read_bytes() if path.is_file() else None


def _mismatch(name: str, where: str, got: str, want: str) -> DipddpmError:
    return DipddpmError(f"data {name}: {where} does not match its pinned SHA-256 (got "
                        f"{got[:16]}..., expected {want[:16]}...); nothing was written to the "
                        f"cache; the source or mirror serves other bytes than the pinned ones")


def _from_source(name: str, img: DataImage, where: str, data: bytes, into: Path) -> None:
    """Check the served bytes against the pins and write the cache file `into`."""
    got = sha256(data)
    if got != img.sha256:
        raise _mismatch(name, where, got, img.sha256)
    if img.served == "file":
        into.write_bytes(data)
        return
    arr = _decode(data, img.served)
    if pixel_digest(arr) != img.pixels:
        raise _mismatch(name, f"{where} (its pixels)", pixel_digest(arr), img.pixels or "")
    import imageio.v3 as iio

    into.write_bytes(iio.imwrite("<bytes>", arr, extension=".png"))


def _get_one(name: str, ds: DataSet, img: DataImage, mirror: str | None, into: Path) -> None:
    """One image into `into`: from the mirror (served or cache-named file) or its URL."""
    if mirror is None:
        data = read_url(img.url)
        if data is None:
            raise DipddpmError(f"data {name}: {img.url} answered 404 (not found); the source "
                               f"moved: fetch from a mirror with --mirror DIR")
        _from_source(name, img, img.url, data, into)
        return
    base = mirror.rstrip("/")
    served = f"{base}/{ds.folder}/{img.served_name}"
    data = read_url(served)
    if data is not None:
        _from_source(name, img, served, data, into)
        return
    cached = f"{base}/{ds.folder}/{img.file}"
    data = read_url(cached)
    if data is None:
        names = dict.fromkeys((f"{ds.folder}/{img.served_name}", f"{ds.folder}/{img.file}"))
        raise DipddpmError(f"data {name}: the mirror {mirror} has no {' or '.join(names)}; "
                           f"give a folder or URL holding FOLDER/FILE as the source names it")
    into.write_bytes(data)
    if not cached_file_ok(img, into):
        what = img.sha256 if img.served == "file" else img.pixels or ""
        raise _mismatch(name, cached, sha256(data), what)


def fetch(name: str, mirror: str | None = None) -> Fetched:
    """Put data set `name` into the cache (see the module docstring); returns what it did."""
    ds = DATA.get(name)
    mirror = mirror or os.environ.get(MIRROR_ENV, "").strip() or None
    folder = cache_root() / ds.folder
    done = Fetched(name, folder, mirror or "its public source")
    todo = [img for img in ds.images if not cached_file_ok(img, folder / img.file)]
    done.present = [img.name for img in ds.images if img not in todo]
    if not todo:
        return done
    made = _first_missing(folder)
    staging = folder.parent / f".{ds.folder}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        for img in todo:
            _get_one(name, ds, img, mirror, staging / img.file)
        folder.mkdir(exist_ok=True)
        for img in todo:
            os.replace(staging / img.file, folder / img.file)
            done.fetched.append(img.name)
    except BaseException:
        _undo(staging, made)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return done


def _first_missing(path: Path) -> Path | None:
    """The highest folder on the way to `path` that does not exist yet (None if it does)."""
    missing = None
    p = path.absolute()
    while not p.exists():
        missing, p = p, p.parent
    return missing


def _undo(staging: Path, made: Path | None) -> None:
    """Remove the staging folder, and the folders this fetch created if they are empty."""
    shutil.rmtree(staging, ignore_errors=True)
    if made is not None and made.is_dir() and not any(p.is_file() for p in made.rglob("*")):
        shutil.rmtree(made, ignore_errors=True)
