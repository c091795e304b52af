"""The wheels the device run carries (benchmarks/device_carry.txt), laid out by
benchmarks/device_prepare.sh in one folder, one version of each.

    python benchmarks/device_wheels.py download DIR   (cp312 manylinux x86_64 wheels from the
                                                       package index, for the GPU machine)
    python benchmarks/device_wheels.py repack DIR     (wheels rebuilt from this interpreter's
                                                       installed copies: the rehearsal, offline)
    python benchmarks/device_wheels.py list           (the carried pins)

`download` keeps a wheel already in DIR and fetches only the missing ones, so a second prepare
needs no network. `repack` packs each carried distribution's installed files (its RECORD) and
metadata into a wheel tagged as its own WHEEL file says (this interpreter's tags), so
tests/test_device_rehearsal.py installs the carried packages through the device run's own wheel
step with no download. Both remove wheels that are not in the list.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
CARRY = HERE / "device_carry.txt"
IMAGE = HERE / "device_image.txt"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
SKIP_META = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def norm(name: str) -> str:
    """A distribution name as the package index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_names(path: Path) -> list[str]:
    """The entries of a list file: one per line, '#' starts a comment."""
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()
            if ln.split("#", 1)[0].strip()]


def pins() -> dict[str, str]:
    """Carried distribution (normalised name) -> version."""
    out = {}
    for entry in read_names(CARRY):
        name, _, version = entry.partition("==")
        out[norm(name)] = version.strip()
    return out


def image() -> set[str]:
    return {norm(n) for n in read_names(IMAGE)}


def wheel_name(path: Path) -> tuple[str, str]:
    """(normalised distribution name, version) of a wheel file."""
    name, version = path.name.split("-")[:2]
    return norm(name), version


def prune(dest: Path) -> None:
    want = pins()
    for whl in dest.glob("*.whl"):
        name, version = wheel_name(whl)
        if want.get(name) != version:
            whl.unlink()


def download(dest: Path) -> None:
    have = {wheel_name(w) for w in dest.glob("*.whl")}
    missing = [f"{n}=={v}" for n, v in pins().items() if (n, v) not in have]
    if missing:
        plats = [a for p in PLATFORMS for a in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                        "cp", *plats, "-d", str(dest), *missing], check=True)


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def repack_one(name: str, version: str, dest: Path) -> Path:
    """A wheel of installed distribution `name` (which must be at `version`)."""
    dist = metadata.distribution(name)
    if dist.version != version:
        raise SystemExit(f"error: {name} is {dist.version} here, the carry list pins {version}; "
                         f"install {name}=={version} or update benchmarks/device_carry.txt")
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines()
            if ln.startswith("Tag:")]
    info = next(str(f).split("/")[0] for f in dist.files if ".dist-info/" in str(f))
    files = [f for f in dist.files if not str(f).startswith("..") and "__pycache__" not in
             str(f) and not (str(f).startswith(info + "/") and f.name in SKIP_META)]
    out = dest / f"{norm(name).replace('-', '_')}-{version}-{tags[0]}.whl"
    record = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            data = Path(f.locate()).read_bytes()
            zf.writestr(str(f), data)
            record.append(f"{f},{_digest(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return out


def repack(dest: Path) -> None:
    for name, version in pins().items():
        for old in dest.glob(f"{name.replace('-', '_')}-*.whl"):
            old.unlink()
        repack_one(name, version, dest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("download", "repack", "list") or (
            argv[0] != "list" and len(argv) != 2):
        print("usage: device_wheels.py download|repack DIR | list", file=sys.stderr)
        return 2
    if argv[0] == "list":
        print("\n".join(f"{n}=={v}" for n, v in pins().items()))
        return 0
    dest = Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    prune(dest)
    (download if argv[0] == "download" else repack)(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
