"""Write an output file whole or not at all: a temporary file in the same folder, then rename
(dipddpm/atomic.py)."""

from __future__ import annotations

from pathlib import Path

from dipddpm.atomic import atomic_bytes


def write_atomic(out: str | Path, data: bytes | str) -> Path:
    """Write data (text as UTF-8) to out via a temporary file and `os.replace`."""
    return atomic_bytes(out, data)
