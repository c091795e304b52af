"""Files written whole or not at all: a temporary name in the same folder, then `os.replace`.

Readers see the old file or the new one, never half of one. On any failure the temporary file
is removed, and an OSError (no space left, a read-only folder, a folder removed meanwhile)
names the file that was being written: an error of write() alone names none, and the
temporary name means nothing to the user.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dipddpm.errors import first_line


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object],
                 suffix: str = ".tmp") -> Path:
    """`write(tmp)` into a new temporary file beside `path` (its folder is created), then
    rename it to `path`. `suffix` ends the temporary name (a writer may pick its format by
    it)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror or first_line(e), str(path)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or first_line(e), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_bytes(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write(path, lambda tmp: tmp.write_bytes(raw))
