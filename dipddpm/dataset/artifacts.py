"""A sweep's images: `artifacts/<trial_id>/<name>.png` (a trial's outputs), its outputs at each
checkpoint (`artifacts/<trial_id>/iters/output-<iter>.png`) and the problem's clean and noisy
images (`artifacts/problem/`), written as 8-bit PNGs through the sweep's storage.
"""

from __future__ import annotations

from dipddpm.dataset.storage import Location, resolve


def _loc(sweep_dir: str | Location) -> Location:
    return sweep_dir if isinstance(sweep_dir, Location) else resolve(sweep_dir)


def png_bytes(img) -> bytes:
    """(C,H,W) tensor in [0,1] -> 8-bit PNG bytes."""
    import imageio.v3 as iio

    from dipddpm.data.images import to_uint8

    return iio.imwrite("<bytes>", to_uint8(img), extension=".png")


def artifact_path(trial_id: str, name: str) -> str:
    """artifacts/<trial_id>/<name>.png: where a trial's image `name` is, relative to the
    sweep dir."""
    return f"artifacts/{trial_id}/{name}.png"


def write_png(sweep_dir: str | Location, trial_id: str, name: str, png: bytes) -> str:
    """Write encoded PNG bytes as the trial's image `name`; returns its relative path."""
    rel = artifact_path(trial_id, name)
    _loc(sweep_dir).child(rel).write_bytes(png)
    return rel


def write_artifact(sweep_dir: str | Location, trial_id: str, name: str, image_tensor) -> str:
    """Write artifacts/<trial_id>/<name>.png; returns the path relative to the sweep dir."""
    return write_png(sweep_dir, trial_id, name, png_bytes(image_tensor))


def history_name(it: int) -> str:
    """The name of the output kept at a checkpoint (iteration `it`)."""
    return f"iters/output-{it:06d}"


def write_history(sweep_dir: str | Location, trial_id: str, it: int, image_tensor) -> str:
    """Keep the output at a checkpoint: artifacts/<trial_id>/iters/output-<iter>.png (the
    report's outputs over iterations); returns the path relative to the sweep dir."""
    return write_artifact(sweep_dir, trial_id, history_name(it), image_tensor)
