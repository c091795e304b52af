"""A virtual environment holding only what the GPU machine's image holds, for the rehearsal.

    python benchmarks/device_venv.py DIR      (from the environment whose packages to use)

It makes a bare venv (no pip of its own) with this interpreter's base Python, and links into
its site-packages the installed files of every distribution of this environment that the
image's list names (benchmarks/device_image.txt), at the versions installed here. Nothing is
copied or downloaded: torch with its CUDA libraries alone is gigabytes, a link costs nothing.
A folder that distributions share (a namespace such as nvidia/) is linked whole only where
every distribution in it is on the list, else built of links one level down. So Ray, Optuna,
plotly, bm3d, cmaes (and this project) are absent there, as on the device, and a part that
imports one fails as it would there.

Differences from the device that remain: this interpreter's Python (the device has 3.12) and
package versions (torch here is whatever this environment holds); CUDA is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections import defaultdict
from importlib import metadata
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_wheels import image, norm  # noqa: E402


def owners() -> tuple[dict[tuple[str, ...], set[str]], Path]:
    """Every path prefix (up to 2 parts) of site-packages -> the distributions with files
    under it; and site-packages itself."""
    site = Path(sysconfig.get_paths()["purelib"])
    out: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for dist in metadata.distributions(path=[str(site)]):
        name = norm(dist.metadata["Name"] or "")
        for f in dist.files or ():
            parts = PurePosixPath(str(f)).parts
            if not parts or parts[0] == ".." or "__pycache__" in parts:
                continue
            out[parts[:1]].add(name)
            if len(parts) > 2:
                out[parts[:2]].add(name)
    return out, site


def link_allowed(dest: Path) -> list[str]:
    """Link the image's distributions into site-packages `dest`; returns their names."""
    allowed, (own, site) = image(), owners()
    linked = set()
    for prefix, names in sorted(own.items()):
        if len(prefix) != 1 or not names & allowed:
            continue
        if names <= allowed:
            (dest / prefix[0]).symlink_to(site / prefix[0])
            linked |= names
            continue
        (dest / prefix[0]).mkdir()  # shared with a distribution the image lacks: one level down
        for sub, subnames in own.items():
            if len(sub) == 2 and sub[0] == prefix[0] and subnames <= allowed:
                (dest / sub[0] / sub[1]).symlink_to(site / sub[0] / sub[1])
                linked |= subnames
    return sorted(linked)


def make(dest: Path) -> list[str]:
    """The venv at `dest` (which must not exist); returns the linked distributions."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    py = dest / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    return link_allowed(Path(site.stdout.strip()))


if __name__ == "__main__":
    if len(sys.argv) != 2 or os.path.exists(sys.argv[1]):
        sys.exit("usage: device_venv.py DIR (a folder that does not exist yet)")
    names = make(Path(sys.argv[1]))
    print(f"{len(names)} distributions linked into {sys.argv[1]}: {' '.join(names)}")
