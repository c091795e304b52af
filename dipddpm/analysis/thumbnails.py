"""Small PNG copies of a sweep's output images, for the report's leaderboard and filmstrip."""

from __future__ import annotations

import base64
import io
from pathlib import Path


def thumbnail_uri(path: Path, size: int) -> str | None:
    """The image at `path` scaled to fit size x size (nearest: pixels stay pixels) as a PNG
    data URI; None when the file is absent or not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if max(im.size) > size:
                im.thumbnail((size, size), Image.Resampling.NEAREST)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, UnidentifiedImageError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
