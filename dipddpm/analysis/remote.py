"""A sweep on object storage (s3://, gs://, ...) for the analysis commands: its result files
are copied once into a local temporary folder, removed when the process exits, and read from
there like any sweep directory.

Copied: trials/, metrics/ and pairs/ (the Parquet), spec.resolved.yaml, optuna.db and, when asked
(the report), artifacts/. Never Tune's checkpoints (tune/). The storage is reached the usual
way (AWS_* variables; the sweep's own storage_options when its spec has them).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from dipddpm.errors import DipddpmError

RESULT_FOLDERS = ("trials", "metrics", "pairs", "baselines")
RESULT_FILES = ("spec.resolved.yaml", "optuna.db")


def sweep_location(uri: str):
    """The sweep's Location, with its spec's storage_options when it has them."""
    import yaml

    from dipddpm.dataset.storage import resolve

    loc = resolve(uri)
    spec = loc.child("spec.resolved.yaml")
    try:
        raw = yaml.safe_load(spec.read_text()) if spec.exists() else None
    except Exception:  # unreadable or not YAML: load_sweep reads the Parquet regardless
        raw = None
    options = (raw or {}).get("storage_options") if isinstance(raw, dict) else None
    return resolve(uri, options) if options else loc


def local_copy(uri: str, artifacts: bool = False) -> Path:
    """Copy the result files of the sweep at `uri` into a new temporary folder; returns it."""
    import pyarrow.fs as pafs

    loc = sweep_location(uri)
    try:
        if not loc.exists():
            bucket = loc.path.split("/", 1)[0]
            what = (f"bucket {bucket!r} does not exist" if not loc.fs.get_file_info(bucket).type
                    else "it does not exist")
            raise DipddpmError(f"{loc.uri}: {what}; expected a sweep results directory "
                               f"(<storage>/<sweep>, as `dipddpm sweep run` writes)")
        out = Path(tempfile.mkdtemp(prefix="dipddpm-sweep-"))
        atexit.register(shutil.rmtree, out, True)
        local = pafs.LocalFileSystem()
        for name in RESULT_FOLDERS + (("artifacts",) if artifacts else ()):
            sub = loc.child(name)
            if sub.fs.get_file_info(sub.path).type == pafs.FileType.Directory:
                (out / name).mkdir()
                pafs.copy_files(sub.path, str(out / name), source_filesystem=loc.fs,
                                destination_filesystem=local, use_threads=True)
        for name in RESULT_FILES:
            f = loc.child(name)
            if f.exists():
                with f.fs.open_input_stream(f.path) as src:
                    (out / name).write_bytes(src.read())
    except DipddpmError:
        raise
    except Exception as e:  # credentials, endpoint, permissions: one line naming the URI
        from dipddpm.dataset.storage import remote_failure

        raise remote_failure(loc, e) from None
    return out
