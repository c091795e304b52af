"""What a command writes, checked before it works; what the file system refuses, in one line.

Every output option (--save, --out, --plot, a folder a command writes into) goes through
`check_output` at the top of its command: the path names a file where a file is written (not
a folder) or a folder where a folder is written (not a file), and the deepest folder that
exists on the way is a folder in which a file can really be created (a probe file, removed
again: the file system's own answer, where `os.access` guesses from mode bits and can say yes
to what an NFS server or a security module refuses). Nothing is left by the check.

What still fails later (the disk fills up, a folder is removed meanwhile) is an `OSError`;
`os_error_line` turns it into the one line `user_errors` prints: the path and what the system
said, with the fix.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Literal

from dipddpm.errors import DipddpmError, first_line

FIX = {  # errno -> what the user can do about it
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EDQUOT: "free some space, or write elsewhere",
    errno.EROFS: "choose a writable location",
    errno.EACCES: "choose a writable location",
    errno.EPERM: "choose a writable location",
    errno.ENOTDIR: "a folder on the way is a file; choose another path",
    errno.EEXIST: "remove it or choose another path",
    errno.EISDIR: "give a file name, not a folder",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the path(s) it names, what the system said, and the fix."""
    why = e.strerror or first_line(e)
    fix = FIX.get(e.errno or 0)
    where = e.filename
    if where is None:
        return f"{type(e).__name__}: {first_line(e)}" + (f"; {fix}" if fix else "")
    if e.filename2 is not None:
        where = f"{e.filename} -> {e.filename2}"
    return f"{where}: {why}" + (f"; {fix}" if fix else "")


def _deepest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def probe_writable(folder: Path) -> str | None:
    """None if a file can be created in `folder` (a probe file is created and removed), else
    what the system said."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dipddpm-probe-", dir=folder)
    except OSError as e:
        return e.strerror or first_line(e)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output(path: str | os.PathLike, option: str,
                 kind: Literal["file", "folder"] = "file",
                 suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse (one line naming `option` and the path) an output that cannot be written: a
    file that is a folder, a folder that is a file, a file on the way, a location where no
    file can be created. Creates nothing; returns the path."""
    if str(path).strip() == "":
        raise DipddpmError(f"{option} is empty; give a path")
    p = Path(path).expanduser()
    if suffixes and p.suffix.lower() not in suffixes:
        raise DipddpmError(f"{option} must end in {', '.join(suffixes)}, got {path}")
    if kind == "file" and p.is_dir():
        raise DipddpmError(f"{option} {path} is a folder; give a file name, e.g. "
                           f"{p / ('out' + (suffixes[0] if suffixes else ''))}")
    if kind == "folder" and p.exists() and not p.is_dir():
        raise DipddpmError(f"{option} {path} is a file, not a folder; give a folder (it is "
                           f"created if missing)")
    start = p.parent if kind == "file" else p
    existing = _deepest_existing(start.absolute())
    if not existing.is_dir():
        raise DipddpmError(f"{option} {path}: {existing} is a file, not a folder; choose "
                           f"another path")
    why = probe_writable(existing)
    if why is not None:
        raise DipddpmError(f"{option} {path}: cannot create files in {existing} ({why}); "
                           f"choose a writable location")
    return p


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_image_path(path, option: str) -> None:
    """An output image path (--save, --out) must name a PNG or JPEG file that can be written
    (`outputs.check_output`)."""
    from dipddpm.errors import ConfigError

    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"{option} must end in .png or .jpg, got {path}")
    check_output(path, option, suffixes=IMAGE_SUFFIXES)
