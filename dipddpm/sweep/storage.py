"""Where a sweep's files live: a local or NFS path (DEFAULT), s3://bucket/prefix or gs://...

Everything goes through a pyarrow filesystem, so the same code writes to a laptop disk, an NFS
mount shared by a cluster, or an object store. Writes are atomic: on a POSIX filesystem a
temporary name in the same directory is `os.replace`d; on an object store a single PUT is
already atomic (readers see the old object or the new one, never half of it).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from dipddpm.errors import DipddpmError, first_line

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://")


def is_remote(uri: str) -> bool:
    return str(uri).startswith(REMOTE_SCHEMES)


@dataclass(frozen=True)
class Location:
    """A directory on some filesystem: `uri` as the user wrote it, `fs` + `path` for pyarrow."""

    uri: str
    fs: object  # pyarrow.fs.FileSystem
    path: str

    @property
    def local(self) -> bool:
        return not is_remote(self.uri)

    def child(self, *parts: str) -> Location:
        sub = "/".join(p.strip("/") for p in parts)
        return Location(f"{self.uri.rstrip('/')}/{sub}", self.fs, f"{self.path.rstrip('/')}/{sub}")

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as f:
            return f.read().decode()

    def write_bytes(self, data: bytes) -> None:
        """Atomic write of a whole file (temporary name + rename locally; one PUT remotely)."""
        if self.local:
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, p)
        else:
            parent = self.path.rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())


def resolve(uri: str | os.PathLike) -> Location:
    """A Location for a local path (made absolute) or a URI understood by pyarrow."""
    uri = str(uri)
    if is_remote(uri):
        import pyarrow.fs as pafs

        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except Exception as e:  # bad bucket name, missing credentials, no network
            raise DipddpmError(f"storage {uri}: cannot open ({type(e).__name__}: "
                               f"{first_line(e)}); check the URI and "
                               f"credentials") from None
        return Location(uri.rstrip("/"), fs, path.rstrip("/"))
    import pyarrow.fs as pafs

    path = str(Path(uri).expanduser().absolute())
    return Location(path, pafs.LocalFileSystem(), path)


def check_writable(loc: Location) -> None:
    """Fail (one line, nothing left behind) unless files can be created under `loc`."""
    if loc.local:  # probe the deepest existing folder: nothing is created on the way
        p = Path(loc.path)
        existing = p
        while not existing.exists():
            existing = existing.parent
        probe = existing / f".dipddpm-probe-{uuid.uuid4().hex[:8]}"
        try:
            if not existing.is_dir():
                raise NotADirectoryError(f"{existing} is not a directory")
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            raise DipddpmError(f"storage {loc.uri} is not writable ({existing}: "
                               f"{e.strerror or e}); pass --storage DIR with a writable "
                               f"path") from None
        return
    probe = loc.child(f".dipddpm-probe-{uuid.uuid4().hex[:8]}")
    try:
        probe.write_bytes(b"ok")
        loc.fs.delete_file(probe.path)
    except Exception as e:
        raise DipddpmError(f"storage {loc.uri} is not writable ({type(e).__name__}: "
                           f"{first_line(e)}); check the bucket and credentials") from None
