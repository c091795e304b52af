"""Storage backends by URI scheme: a local or NFS path (no scheme), s3:// and gs:// (gcs://).

An entry owns its schemes, the `storage_options` keys it takes and their validation, how it
opens a pyarrow filesystem, the endpoint its errors name and the store of its sweeps' driver
lock (dataset/lock.py). Schemes are matched without
regard to case (RFC 3986: `S3://b/x` is `s3://b/x`); any other `NAME://` is refused naming
the registered schemes, never taken for a local folder called `NAME:`. An empty storage (an
unset shell variable) is refused too.

Remote storage is probed once per process and bucket with a bounded wait (DIPDDPM_STORAGE_TIMEOUT
seconds, default 5): pyarrow's own clients can wait minutes (GCS waits on a silent endpoint
without end), so the probe runs in a daemon thread that is given up after the wait, and the
error names the endpoint. A probe only reads (the bucket's metadata).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dipddpm.errors import ConfigError, DipddpmError, closest
from dipddpm.registry import Registry

TIMEOUT_ENV = "DIPDDPM_STORAGE_TIMEOUT"
DEFAULT_TIMEOUT_S = 5.0
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Backend:
    """One kind of storage: `open(uri, options) -> (pyarrow filesystem, path)`. A remote store
    is written as an object store is: a file is written at its path with no folder created
    first (a backend over a filesystem with folders creates them as it writes, e.g. fsspec's
    `auto_mkdir`). tests/test_contract_storage.py runs every entry, and a toy, end to end."""

    schemes: tuple[str, ...]  # lower case, without "://"; () for a local path
    open: Callable[[str, Mapping[str, str]], tuple[Any, str]]
    help: str
    options: tuple[str, ...] = ()  # the storage_options keys it takes
    check_option: Callable[[str, str], None] | None = None  # (key, value): raise if bad
    endpoint: Callable[[Mapping[str, str]], str] = lambda options: "the default endpoint"
    # (sweep Location, options) -> the store of its driver lock (dataset/lock.py: a record
    # written only if absent, or only over the version read); None: no driver lock there
    lock: Callable[[Any, Mapping[str, str] | None], Any] | None = None

    @property
    def remote(self) -> bool:
        return bool(self.schemes)


STORAGE_BACKENDS: Registry[Backend] = Registry("storage backend")


def scheme_of(uri: str) -> str | None:
    """The scheme of `NAME://...` in lower case, or None for a plain path."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else None


def normalize(uri: str) -> str:
    """The URI with its scheme in lower case (the rest is kept: bucket names are exact)."""
    scheme = scheme_of(uri)
    return uri if scheme is None else scheme + uri[uri.index("://"):]


def registered_schemes() -> list[str]:
    return [f"{s}://" for _, b in STORAGE_BACKENDS.items() for s in b.schemes]


def backend_for(uri: str, what: str = "storage") -> Backend:
    """The backend of `uri`; an empty value or an unregistered scheme is a one-line error."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"{what} is empty ({uri!r}); give a folder or an s3:// / gs:// URI, "
                          f"e.g. --storage results (an unset shell variable gives '')")
    scheme = scheme_of(uri.strip())
    if scheme is None:
        return STORAGE_BACKENDS.get("local")
    for _, backend in STORAGE_BACKENDS.items():
        if scheme in backend.schemes:
            return backend
    valid = registered_schemes()
    hint = closest(f"{scheme}://", valid)
    raise ConfigError(f"{what} {uri}: unknown scheme {scheme + '://'!r}{hint}; registered: "
                      f"{', '.join(valid)} or a local path (a folder named "
                      f"'{scheme}:' would need ./{scheme}:/...)")


def check_storage(value: Any) -> str:
    """A spec's `storage:` (after --storage): absent (None) is the default `results`; an
    empty value or an unknown scheme is an error."""
    if value is None:
        return "results"
    if not isinstance(value, str):
        raise ConfigError(f"storage must be a folder or an s3:// / gs:// URI, got {value!r}")
    backend_for(value)
    return value


def check_options(uri: str, options: Mapping[str, Any] | None,
                  backend: Backend | None = None) -> dict[str, str]:
    """The spec's storage_options, checked against the backend of `uri` (or `backend`)."""
    backend = backend or backend_for(uri)
    options = dict(options or {})
    for key, value in options.items():
        if key not in backend.options:
            takes = (f"it takes {', '.join(backend.options)}" if backend.options
                     else "it takes none")
            raise ConfigError(f"storage_options.{key} does not apply to {uri} ({takes}); "
                              f"remove it or use another storage")
        if backend.check_option is not None:
            backend.check_option(key, value)
    return options


def probe_timeout() -> float:
    """Seconds a remote storage may take to answer its probe ($DIPDDPM_STORAGE_TIMEOUT)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}; e.g. "
                          f"{TIMEOUT_ENV}=10")
    return value


class NoAnswer(DipddpmError):
    """A remote call that did not return within its wait."""


def bounded(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """fn() in a daemon thread; its result or exception, or NoAnswer after `timeout_s` (the
    thread is left to finish on its own: a blocked network read cannot be interrupted)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name=f"dipddpm-probe {what}")
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise NoAnswer(f"{what}: no answer in {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- the registered backends ------------------------------------------------------------------
def _open_local(uri: str, options: Mapping[str, str]):
    import pyarrow.fs as pafs

    from dipddpm.dataset.storage import local_path

    return pafs.LocalFileSystem(), local_path(uri)


def _open_s3(uri: str, options: Mapping[str, str]):
    from dipddpm.dataset.storage import s3_filesystem, split_uri

    _, path = split_uri(uri)
    return s3_filesystem(path.split("/", 1)[0], options), path


def _s3_endpoint(options: Mapping[str, str]) -> str:
    from dipddpm.dataset.storage import s3_settings

    return s3_settings(options).get("endpoint_url", "s3.amazonaws.com")


GS_TRUE_FALSE = ("true", "false")


def _check_gs_option(key: str, value: str) -> None:
    if key == "anonymous" and str(value).lower() not in GS_TRUE_FALSE:
        raise ConfigError(f"storage_options.anonymous must be 'true' or 'false', got "
                          f"{value!r}")
    if key == "endpoint_url" and not re.match(r"^https?://[^/]+/?$", str(value)):
        raise ConfigError(f"storage_options.endpoint_url must be http(s)://HOST:PORT, got "
                          f"{value!r}; e.g. http://127.0.0.1:4443")


def _open_gs(uri: str, options: Mapping[str, str]):
    """GCS through pyarrow: Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS, a
    VM's service account), or anonymous; endpoint_url for an emulator or a private endpoint."""
    import pyarrow.fs as pafs

    from dipddpm.dataset.storage import split_uri

    _, path = split_uri(uri)
    kw: dict[str, Any] = {}
    if options.get("endpoint_url"):
        scheme, _, host = options["endpoint_url"].rstrip("/").partition("://")
        kw.update(scheme=scheme, endpoint_override=host)
    if str(options.get("anonymous", "false")).lower() == "true":
        kw["anonymous"] = True
    if options.get("project_id"):
        kw["project_id"] = options["project_id"]
    return pafs.GcsFileSystem(**kw), path


def _posix_lock(sweep: Any, options: Mapping[str, str] | None):
    from dipddpm.dataset.lock import PosixStore

    return PosixStore(sweep, options)


def _s3_lock(sweep: Any, options: Mapping[str, str] | None):
    from dipddpm.dataset.lock import S3Store

    return S3Store(sweep, options)


STORAGE_BACKENDS.register("local")(Backend(
    (), _open_local, "a local or NFS folder (relative to the working folder)",
    lock=_posix_lock))
STORAGE_BACKENDS.register("s3")(Backend(
    ("s3",), _open_s3, "S3 or an S3 API (MinIO, Ceph): AWS_* variables, or storage_options",
    options=("endpoint_url", "region"), endpoint=_s3_endpoint, lock=_s3_lock))
STORAGE_BACKENDS.register("gs")(Backend(
    ("gs", "gcs"), _open_gs, "Google Cloud Storage: Google's default credentials",
    options=("endpoint_url", "anonymous", "project_id"), check_option=_check_gs_option,
    endpoint=lambda o: o.get("endpoint_url", "storage.googleapis.com")))


def all_options() -> tuple[str, ...]:
    """Every backend's storage_options keys (a spec is checked against these first)."""
    keys: list[str] = []
    for _, backend in STORAGE_BACKENDS.items():
        keys += [k for k in backend.options if k not in keys]
    return tuple(keys)
