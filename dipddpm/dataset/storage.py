"""Where a sweep's files live: a local or NFS path (DEFAULT), s3://bucket/prefix or gs://...
(the backends, their schemes and options: storage_backends.py).

Everything goes through a pyarrow filesystem, so the same code writes to a laptop disk, an NFS
mount shared by a cluster, or an object store. Writes are atomic: on a POSIX filesystem a
temporary name in the same directory is `os.replace`d; on an object store a single PUT is
already atomic (readers see the old object or the new one, never half of it).

S3 (AWS, MinIO, Ceph RGW, any S3 API) is configured the usual AWS way: credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile, or an instance role), the region from
AWS_REGION / AWS_DEFAULT_REGION, another endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
A spec's `storage_options: {endpoint_url: ..., region: ...}` overrides the last two for that
sweep. Small files go up in one PUT each (no multipart upload), and creating a folder costs
nothing: an object store has no folders, but pyarrow's S3 `create_dir` writes a marker object
per level (a HEAD of the bucket and a PUT each), which Tune calls before every upload (measured:
44% of a smoke sweep's requests); `NoFolderMarkers` makes it a no-op.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from dipddpm.atomic import atomic_bytes
from dipddpm.dataset.storage_backends import (
    TIMEOUT_ENV,
    Backend,
    NoAnswer,
    all_options,
    backend_for,
    bounded,
    check_options,
    normalize,
    probe_timeout,
)
from dipddpm.errors import DipddpmError, first_line

STORAGE_OPTIONS = all_options()  # every backend's storage_options keys (storage_backends.py)
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
_REACHED: set[tuple] = set()  # (uri scheme, bucket, endpoint, options) probed in this process


def is_remote(uri: str) -> bool:
    """Whether `uri` is on a remote backend (s3://, gs://); an empty value or an unknown
    scheme is a one-line error (storage_backends.backend_for)."""
    return backend_for(str(uri)).remote


def local_path(uri: str) -> str:
    return str(Path(uri).expanduser().absolute())


@dataclass(frozen=True)
class Location:
    """A directory on some filesystem: `uri` as the user wrote it, `fs` + `path` for pyarrow."""

    uri: str
    fs: object  # pyarrow.fs.FileSystem
    path: str
    endpoint: str = ""  # where a remote backend connects (for error messages)
    remote: bool | None = None  # on a remote backend (None: asked of the registry)

    @property
    def local(self) -> bool:
        return not (is_remote(self.uri) if self.remote is None else self.remote)

    def child(self, *parts: str) -> Location:
        sub = "/".join(p.strip("/") for p in parts)
        return Location(f"{self.uri.rstrip('/')}/{sub}", self.fs,
                        f"{self.path.rstrip('/')}/{sub}", self.endpoint, self.remote)

    def exists(self) -> bool:

        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as f:
            return f.read().decode()

    def write_bytes(self, data: bytes) -> None:
        """Atomic write of a whole file (temporary name + rename locally; one PUT remotely)."""
        if self.local:  # no temporary file left behind on failure (dipddpm/atomic.py)
            atomic_bytes(self.path, data)
        else:  # one PUT: an object store has no folders to create first
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())


class NoFolderMarkers(pafs.FileSystemHandler):
    """An S3FileSystem whose create_dir does nothing (see the module docstring)."""

    def __init__(self, fs) -> None:
        self.fs = fs

    def __reduce__(self):  # Tune pickles the filesystem to its trials
        return NoFolderMarkers, (self.fs,)

    def __eq__(self, other) -> bool:
        return isinstance(other, NoFolderMarkers) and self.fs.equals(other.fs)

    def get_type_name(self) -> str:
        return "s3-no-folder-markers"

    def normalize_path(self, path):
        return self.fs.normalize_path(path)

    def get_file_info(self, paths):
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive) -> None:
        pass

    def delete_dir(self, path) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("deleting a whole bucket's contents is not something dipddpm does")

    def delete_file(self, path) -> None:
        self.fs.delete_file(path)

    def move(self, src, dest) -> None:
        self.fs.move(src, dest)

    def copy_file(self, src, dest) -> None:
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.fs.open_append_stream(path, metadata=metadata)


def s3_settings(options: Mapping[str, str] | None = None) -> dict[str, str]:
    """Endpoint and region for S3: the spec's storage_options, else the AWS_* variables."""
    env = os.environ
    options = dict(options or {})
    endpoint = (options.get("endpoint_url") or env.get("AWS_ENDPOINT_URL_S3")
                or env.get("AWS_ENDPOINT_URL"))
    region = options.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    return {k: v for k, v in (("endpoint_url", endpoint), ("region", region)) if v}


def s3_filesystem(bucket: str, options: Mapping[str, str] | None = None):
    """A pyarrow S3FileSystem for `bucket` (see the module docstring for the settings)."""

    st = s3_settings(options)
    # a small file is one PUT, not a multipart upload; writes in the writing thread, not on
    # Arrow's IO pool, which copy_files with threads (Tune's uploads) could fill and deadlock
    kw: dict = {"allow_delayed_open": True, "background_writes": False}
    if "endpoint_url" in st:
        kw["endpoint_override"] = st["endpoint_url"]
    if "region" in st:
        kw["region"] = st["region"]
    elif "endpoint_url" not in st:  # AWS itself: the bucket's own region
        kw["region"] = pafs.resolve_s3_region(bucket)
    return pafs.PyFileSystem(NoFolderMarkers(pafs.S3FileSystem(**kw)))


def split_uri(uri: str) -> tuple[str, str]:
    """('s3', 'bucket/prefix') of a remote URI; a URI without a bucket is a one-line error."""
    scheme, _, rest = uri.partition("://")
    bucket = rest.split("/", 1)[0]
    if not bucket or bucket in (".", ".."):
        raise DipddpmError(f"storage {uri}: no bucket in the URI; expected "
                           f"{scheme}://BUCKET/prefix, e.g. {scheme}://my-bucket/sweeps")
    return scheme, rest.rstrip("/")


def resolve(uri: str | os.PathLike, options: Mapping[str, str] | None = None,
            backend: Backend | None = None) -> Location:
    """A Location for a local path (made absolute) or a registered URI (storage_backends.py);
    `options` (a spec's storage_options) are the backend's own (an s3:// endpoint and
    region); `backend`: its entry (None: the registry's for the URI's scheme). Remote storage
    is probed once per process, within DIPDDPM_STORAGE_TIMEOUT."""
    uri = str(uri)
    backend = backend or backend_for(uri)
    options = check_options(uri, options, backend)
    if not backend.remote:
        path = local_path(uri)
        return Location(path, pafs.LocalFileSystem(), path, remote=False)
    uri = normalize(uri)
    scheme, path = split_uri(uri)
    endpoint = backend.endpoint(options)
    key = (scheme, path.split("/", 1)[0], endpoint, tuple(sorted(options.items())))
    try:
        if key in _REACHED:
            fs, path = backend.open(uri, options)
        else:
            fs, path = bounded(lambda: _open_and_probe(backend, uri, options),
                               probe_timeout(), f"storage {uri}")
            _REACHED.add(key)
    except NoAnswer:
        raise unreachable(uri, endpoint) from None
    except DipddpmError:
        raise
    except Exception as e:  # bad bucket name, missing credentials, no network
        raise DipddpmError(f"storage {uri}: cannot open ({type(e).__name__}: "
                           f"{first_line(e)}); check the URI and "
                           f"credentials") from None
    return Location(uri.rstrip("/"), fs, path.rstrip("/"), endpoint, remote=True)


def unreachable(uri: str, endpoint: str) -> DipddpmError:
    return DipddpmError(f"storage {uri}: cannot reach the endpoint {endpoint}: no answer in "
                        f"{probe_timeout():g} s; check the network and the endpoint "
                        f"(storage_options.endpoint_url, AWS_ENDPOINT_URL), or wait longer "
                        f"with {TIMEOUT_ENV}=SECONDS")


def _open_and_probe(backend, uri: str, options: Mapping[str, str]):
    """Open the filesystem and read the bucket's metadata: a missing bucket or an endpoint
    that refuses is an error now; anything else (credentials, permissions) is left to the
    operation that needs them, which names it."""
    fs, path = backend.open(uri, options)
    bucket = path.split("/", 1)[0]
    loc = Location(uri, fs, path, backend.endpoint(options), remote=True)
    try:
        info = fs.get_file_info(bucket)
    except Exception as e:
        if failure_kind(first_line(e)) in ("missing", "unreachable"):
            raise remote_failure(loc, e) from None
        return fs, path
    if info.type == pafs.FileType.NotFound:
        raise DipddpmError(f"storage {uri} is not usable: bucket {bucket!r} does not exist; "
                           f"create it (e.g. aws s3 mb / gcloud storage buckets create) or fix "
                           f"the URI")
    return fs, path


def has_credentials() -> bool:
    """Whether AWS credentials can be found without asking an instance-metadata service."""
    if any(os.environ.get(k) for k in CREDENTIAL_ENV):
        return True
    files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
             os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    if any(Path(f).expanduser().is_file() for f in files):
        return True
    return os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true"


FAILURES = {  # what a remote storage's error message says, by kind
    "missing": r"NO_SUCH_BUCKET|NoSuchBucket|Bucket '[^']*' not found",
    "unreachable": r"NETWORK_CONNECTION|curlCode|Could not connect|Connection refused",
    "refused": (r"ACCESS_DENIED|AccessDenied|INVALID_ACCESS_KEY|SIGNATURE_DOES_NOT_MATCH"
                r"|InvalidAccessKeyId|SignatureDoesNotMatch|HTTP status 403"),
}


def failure_kind(msg: str) -> str | None:
    """'missing' (no such bucket), 'unreachable', 'refused' (credentials), or None."""
    return next((kind for kind, pattern in FAILURES.items() if re.search(pattern, msg)), None)


def remote_failure(loc: Location, e: Exception, endpoint: str | None = None) -> DipddpmError:
    """The one-line error of a failed probe of remote storage: a missing bucket, credentials
    refused or missing, an endpoint that does not answer, or else the storage's own words."""
    msg, bucket = first_line(e), loc.path.split("/", 1)[0]
    where = endpoint or loc.endpoint or s3_settings().get("endpoint_url", "the default endpoint")
    kind = failure_kind(msg)
    if kind == "missing":
        why = (f"bucket {bucket!r} does not exist; create it (e.g. aws s3 mb s3://{bucket}) "
               f"or fix the URI")
    elif kind == "unreachable":
        why = (f"cannot reach the endpoint {where} ({msg.split('operation: ')[-1]}); check "
               f"AWS_ENDPOINT_URL or storage_options.endpoint_url and that the server runs")
    elif kind == "refused":
        why = ("the credentials were refused; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
               "(or AWS_PROFILE) and the bucket's permissions")
    elif loc.uri.startswith("s3://") and not has_credentials():
        why = ("no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
               f"AWS_PROFILE or ~/.aws/credentials ({type(e).__name__}: {msg})")
    else:
        why = (f"{type(e).__name__}: {msg}; check the bucket, the endpoint and the "
               f"credentials")
    return DipddpmError(f"storage {loc.uri} is not usable: {why}")


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

    def write_and_remove() -> None:
        probe.write_bytes(b"ok")
        loc.fs.delete_file(probe.path)

    try:
        bounded(write_and_remove, probe_timeout(), f"storage {loc.uri}")
    except NoAnswer:
        raise unreachable(loc.uri, loc.endpoint or "its endpoint") from None
    except Exception as e:
        raise remote_failure(loc, e) from None
