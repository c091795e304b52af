"""Checkpoints: a torch file of state dicts plus the resolved config as JSON.

    ckpt.pt    {"format", "version", "config_json", "kind", "tensors": {...}}
    ckpt.json  the same config, pretty-printed, for people and tools (written next to it)

Loading uses `torch.load(..., weights_only=True)`, so a checkpoint can hold only tensors and
plain containers and never runs code. `load_model` rebuilds the net from the stored config and
loads the weights strictly: a file whose weights do not fit its config (or a config that does
not match what the caller expects) is refused. Every problem is one `DipddpmError` line.
Files are written to a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dipddpm.atomic import atomic_bytes
from dipddpm.errors import DipddpmError, first_line

FORMAT = "dipddpm-checkpoint"
VERSION = 1


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to memory, then an atomic write: torch.save straight to a file reports a
    full disk as a RuntimeError ('unexpected pos'), a Python write as the OSError it is."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_bytes(path, buf.getbuffer().tobytes())


def save_checkpoint(path: str | Path, config: Mapping[str, Any], tensors: Mapping[str, Any],
                    kind: str = "ddpm") -> Path:
    """Write `tensors` (state dicts, nested plain containers) and `config` (JSON-able)."""
    path = Path(path)
    config_json = json.dumps(config, sort_keys=True)
    _atomic_save({"format": FORMAT, "version": VERSION, "kind": kind,
                  "config_json": config_json, "tensors": dict(tensors)}, path)
    atomic_bytes(path.with_suffix(".json"), json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


TRAIN_HINT = "train one with `dipddpm fit ddpm --dataset NAME --out DIR`, which writes DIR/ddpm.pt"
ZIP, PICKLE = b"PK\x03\x04", b"\x80"  # how torch.save's files start (zip; the old pickle format)
MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PAR1": "a Parquet file",
         b"{": "JSON text", b"SQLite format": "an SQLite database"}


def check_file(path: str | Path) -> Path:
    """The checkpoint's path, if it is a non-empty file; else the one-line reason.
    `recipe:NAME` is made by its recipe first (checkpoint_recipes.py)."""
    from dipddpm.checkpoint_recipes import is_recipe, recipe_path

    path = recipe_path(str(path)) if is_recipe(path) else Path(path)
    if path.is_dir():
        raise DipddpmError(f"checkpoint {path} is a folder, not a checkpoint file; give the "
                           f"file, e.g. {path / 'ddpm.pt'}")
    if not path.is_file():
        raise DipddpmError(f"checkpoint not found: {path} ({TRAIN_HINT})")
    if path.stat().st_size == 0:
        raise DipddpmError(f"checkpoint {path} is empty (0 bytes): a copy or a save that did "
                           f"not finish; {TRAIN_HINT}")
    return path


def not_loadable(path: Path, e: Exception) -> DipddpmError:
    """Why torch.load (weights only) refused `path`, in our words: a file of another kind, a
    torch file holding more than tensors (never loaded: it could run code), or a damaged one."""
    with open(path, "rb") as f:
        head = f.read(16)
    kind = next((what for magic, what in MAGIC.items() if head.startswith(magic)), None)
    if kind is not None:
        return DipddpmError(f"checkpoint {path} is not a torch checkpoint (it is {kind}); give "
                            f"the ddpm.pt that `dipddpm fit ddpm` writes")
    if not head.startswith((ZIP, PICKLE)):
        return DipddpmError(f"checkpoint {path} is corrupt or not a torch file (it does not "
                            f"start as torch.save's files do); {TRAIN_HINT}")
    if "weights only" in str(e).lower() or "weights_only" in str(e):
        return DipddpmError(f"{path} is a torch file holding more than tensors (not one "
                            f"dipddpm wrote: it is not loaded, as loading it could run code); "
                            f"{TRAIN_HINT}")
    return DipddpmError(f"checkpoint {path} is corrupt or not a torch file "
                        f"({type(e).__name__}: {first_line(e)}); {TRAIN_HINT}")


def read_checkpoint(path: str | Path, kind: str = "ddpm",
                    mmap: bool = False) -> tuple[dict, dict]:
    """(config, tensors) of a checkpoint file; DipddpmError if absent, corrupt or foreign.
    `mmap`: map the tensors instead of reading them (for a caller that needs the config)."""
    path = check_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, pickle error, not a torch file
        raise not_loadable(path, e) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DipddpmError(f"{path} is not a dipddpm checkpoint (no {FORMAT!r} header)")
    if payload.get("version") != VERSION:
        raise DipddpmError(f"checkpoint {path} has format version {payload.get('version')}, "
                           f"this dipddpm reads version {VERSION}")
    if payload.get("kind") != kind:
        raise DipddpmError(f"checkpoint {path} holds a {payload.get('kind')!r} state, "
                           f"expected {kind!r}")
    try:
        config = json.loads(payload["config_json"])
    except (KeyError, TypeError, ValueError) as e:
        raise DipddpmError(f"checkpoint {path} has an unreadable config ({e})") from None
    return config, payload.get("tensors", {})


def check_expected(path: str | Path, config: Mapping[str, Any],
                   expect: Mapping[str, Any] | None) -> None:
    """Refuse a config whose values differ from `expect` at any key `expect` names."""
    for key, want in (expect or {}).items():
        got = config.get(key)
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            check_expected(path, got, want)
        elif got != want:
            raise DipddpmError(f"checkpoint {path} does not match: {key} is {got!r} in the "
                               f"file, expected {want!r}")


def load_weights(path: str | Path, net: nn.Module, state: Mapping[str, torch.Tensor],
                 what: str = "net") -> None:
    """Strict load; a mismatch (missing, unexpected or wrong-shaped weights) is one line."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:240]
        raise DipddpmError(f"checkpoint {path}: the {what} weights do not match the net its "
                           f"config describes ({detail})") from None


def load_model(path: str | Path, build: Callable[[dict], nn.Module],
               expect: Mapping[str, Any] | None = None, kind: str = "ddpm",
               key: str = "net") -> tuple[nn.Module, dict, dict]:
    """Rebuild the net from the file's config with `build(config)` and load `tensors[key]`.

    Returns (net, config, tensors)."""
    config, tensors = read_checkpoint(path, kind)
    check_expected(path, config, expect)
    try:
        net = build(config)
    except DipddpmError as e:
        raise DipddpmError(f"checkpoint {path} has an invalid config: {e}") from None
    except (KeyError, TypeError) as e:
        raise DipddpmError(f"checkpoint {path} has an incomplete config "
                           f"({type(e).__name__}: {e})") from None
    if key not in tensors:
        raise DipddpmError(f"checkpoint {path} holds no {key!r} weights")
    load_weights(path, net, tensors[key], key)
    return net, config, tensors
