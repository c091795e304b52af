"""One driver per sweep directory: the lock `sweep run` and `sweep resume` hold while they work.

    with SweepLock(sweep, options) as lock:   # a live driver holds it: one-line DipddpmError
        ...

The lock is a small JSON record, `<sweep dir>/driver.lock`: the holder's host, pid (and the
pid's start time, against pid reuse), the sweep directory it locks, when it took the lock and
its last heartbeat, and a random token. It is created only where none exists; the holder
rewrites its heartbeat every HEARTBEAT_S seconds and deletes the record when it stops.

A record is stale, and the next driver takes it over, when its holder is gone:
- same host: no process with that pid (and start time) is alive;
- another host: its heartbeat is older than LEASE_S (the hosts' clocks must agree to well
  within LEASE_S, as NTP keeps them); a driver paused longer than that loses its lock;
- a record naming another directory: the sweep was copied with its lock; the copy is free.

POSIX storage (local disk, NFS): the record is written to a temporary file and `link`ed to
`driver.lock`, which fails when the name exists. An exclusive create is decided by the file
server, on any mount options, so it holds across the hosts of an NFS share. `flock`/`fcntl`
locks would be released by the kernel when the holder dies, but on NFS they rely on the lock
manager, and a mount with `nolock` or `local_lock=all` makes them local to each host: two
hosts would both hold the sweep, silently. Taking over a stale record renames it aside first
(only one driver's rename of a given file succeeds), checks that the record moved is the one
judged stale, then creates anew.

S3: PutObject with `If-None-Match: *` creates the record only where none exists; heartbeats
and takeovers are PutObject with `If-Match: <ETag>` (compare-and-swap), release is a
DeleteObject with `If-Match`. pyarrow's S3 filesystem cannot send these headers, so the lock
alone goes through boto3. An S3 API that ignores the conditions cannot lock. Other object
stores (gs://, ...) get no lock: one line says so, and one driver at a time is the user's care.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

from dipddpm.dataset.storage import Location, backend_for
from dipddpm.errors import DipddpmError

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 15.0  # how often the holder rewrites its heartbeat
LEASE_S = 120.0  # a heartbeat older than this (another host's holder) is stale


def _now() -> datetime:
    return datetime.now(timezone.utc)


def pid_start(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot, /proc/PID/stat field 22),
    None when unknown (no /proc, or no such process)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # fields after the command name, from 3


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` runs on this host (and, when known, is the one started then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    now = pid_start(pid)
    return started is None or now is None or now == started


@dataclass(frozen=True)
class Holder:
    """The record of the driver holding a sweep."""

    host: str
    pid: int
    path: str  # the sweep directory it locks
    started_at: str  # ISO 8601, UTC
    heartbeat_at: str
    token: str
    pid_start: str | None = None

    @classmethod
    def me(cls, path: str) -> Holder:
        now = _now().isoformat(timespec="seconds")
        return cls(socket.gethostname(), os.getpid(), path, now, now, uuid.uuid4().hex,
                   pid_start(os.getpid()))

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The record in `data`, None when it is not one (cut off, or another file)."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def dump(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def beat(self) -> Holder:
        return replace(self, heartbeat_at=_now().isoformat(timespec="seconds"))

    def stale(self, path: str) -> str | None:
        """Why the holder is gone, or None while it may still be working on `path`."""
        if self.path != path:
            return f"a lock copied with the sweep from {self.path}"
        if self.host == socket.gethostname():
            alive = pid_alive(self.pid, self.pid_start)
            return None if alive else f"pid {self.pid} is not running on {self.host}"
        try:
            age = (_now() - datetime.fromisoformat(self.heartbeat_at)).total_seconds()
        except ValueError:
            return "its heartbeat time is unreadable"
        if age > LEASE_S:
            return f"no heartbeat from {self.host} for {age:.0f} s (lease {LEASE_S:.0f} s)"
        return None

    def describe(self) -> str:
        return f"driver pid {self.pid} on {self.host}, since {self.started_at}"


class PosixStore:
    """The record as a file on a POSIX filesystem (local disk, NFS); see the module docstring.
    A version is the record's token."""

    def __init__(self, loc: Location, options: Mapping[str, str] | None = None) -> None:
        self.path = loc.child(LOCK_FILE).path

    def _tmp(self) -> str:
        return f"{os.path.dirname(self.path)}/.{LOCK_FILE}.{uuid.uuid4().hex[:8]}.tmp"

    def _write_tmp(self, rec: Holder) -> str:
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as f:
                f.write(rec.dump())
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            _unlink(tmp)
            raise
        return tmp

    def read(self) -> tuple[Holder | None, str | None] | None:
        """(record or None when unreadable, version), or None when there is no lock."""
        try:
            with open(self.path, "rb") as f:
                rec = Holder.parse(f.read())
        except FileNotFoundError:
            return None
        return rec, rec.token if rec else None

    def create(self, rec: Holder) -> str | None:
        """Write the record where none exists; its version, or None when one exists."""
        tmp = self._write_tmp(rec)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return None
        except OSError:  # NFS: a retried link may report failure although it succeeded
            if os.stat(tmp).st_nlink != 2:
                raise
        finally:
            _unlink(tmp)
        return rec.token

    def replace(self, rec: Holder, version: str | None) -> str | None:
        """Rewrite the record if it is still `version`; its new version, or None if not."""
        now = self.read()
        if now is None or now[1] != version:
            return None
        os.replace(self._write_tmp(rec), self.path)
        return rec.token

    def take_over(self, version: str | None, rec: Holder) -> str | None:
        """Replace the stale record `version` by `rec`; its version, or None when the record
        changed meanwhile (another driver took it)."""
        aside = f"{self.path}.stale-{rec.token[:8]}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return None  # another driver moved it first
        with open(aside, "rb") as f:
            moved = Holder.parse(f.read())
        if (moved.token if moved else None) != version:  # a fresh lock: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            _unlink(aside)
            return None
        _unlink(aside)
        return self.create(rec)

    def delete(self, version: str | None) -> None:
        now = self.read()
        if now is not None and now[1] == version:
            _unlink(self.path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class S3Store:
    """The record as an S3 object written with conditional requests (boto3); a version is the
    object's ETag."""

    def __init__(self, loc: Location, options: Mapping[str, str] | None = None) -> None:
        from dipddpm.dataset.storage import s3_settings

        try:
            import boto3
        except ImportError:
            raise DipddpmError("s3:// storage needs the boto3 package for its driver lock "
                               "(conditional PUTs): pip install boto3") from None
        st = s3_settings(options)
        self.client = boto3.client("s3", endpoint_url=st.get("endpoint_url"),
                                   region_name=st.get("region"))
        self.bucket, _, prefix = loc.path.partition("/")
        self.key = f"{prefix.rstrip('/')}/{LOCK_FILE}".lstrip("/")

    @staticmethod
    def _code(e: Exception) -> str:
        return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))

    def _put(self, rec: Holder, **cond) -> str | None:
        from botocore.exceptions import ClientError

        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=rec.dump(),
                                         **cond)
        except ClientError as e:
            if self._code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict",
                                 "NoSuchKey", "404"):
                return None
            raise
        return out["ETag"]

    def read(self) -> tuple[Holder | None, str | None] | None:
        from botocore.exceptions import ClientError

        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                return None
            raise
        return Holder.parse(out["Body"].read()), out["ETag"]

    def create(self, rec: Holder) -> str | None:
        return self._put(rec, IfNoneMatch="*")

    def replace(self, rec: Holder, version: str | None) -> str | None:
        return self._put(rec, IfMatch=version) if version else None

    def take_over(self, version: str | None, rec: Holder) -> str | None:
        return self.replace(rec, version)

    def delete(self, version: str | None) -> None:
        from botocore.exceptions import ClientError, ParamValidationError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=version)
            return
        except ParamValidationError:  # a boto3 without conditional deletes
            pass
        except ClientError as e:
            if self._code(e) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                return
            if self._code(e) not in ("NotImplemented", "InvalidArgument", "501"):
                raise
        found = self.read()  # an S3 API without conditional deletes: ours, then delete
        if found is not None and found[1] == version:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


def lock_store(loc: Location, options: Mapping[str, str] | None = None):
    """The store of a sweep directory's lock: its storage backend's `lock` field
    (storage_backends.py); None where the backend has no driver lock."""
    make = backend_for(loc.uri).lock
    return None if make is None else make(loc, options)


def scheme(loc: Location) -> str:
    return "file" if loc.local else loc.uri.split("://", 1)[0].lower()


class SweepLock:
    """The lock of one sweep directory (see the module docstring). `acquire` refuses a live
    holder with a one-line DipddpmError; `notes` says what it did (a stale lock taken over,
    or no lock on this storage). `on_lost` is called if another driver takes the lock over."""

    def __init__(self, sweep: Location, options: Mapping[str, str] | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.sweep, self.options, self.on_lost = sweep, options, on_lost
        self.store = None
        self.held: Holder | None = None
        self.version: str | None = None
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _open(self):
        store = lock_store(self.sweep, self.options)
        if store is None:
            self.notes.append(f"note: {scheme(self.sweep)}:// storage has no driver lock; run "
                              f"one driver at a time on {self.sweep.uri}")
        return store

    def acquire(self) -> SweepLock:
        if self.held is not None:
            return self
        self.store = self.store or self._open()
        if self.store is None:
            return self
        try:
            return self._acquire(Holder.me(self.sweep.uri))
        except DipddpmError:
            raise
        except Exception as e:  # OSError (POSIX), botocore's errors (S3)
            raise DipddpmError(f"{self.sweep.uri}: cannot write its driver lock {LOCK_FILE} "
                               f"({lock_failure(e)})") from None

    def _acquire(self, me: Holder) -> SweepLock:
        for _ in range(5):  # each pass: another driver changed the record meanwhile
            version = self.store.create(me)
            if version is not None:
                return self._hold(me, version)
            found = self.store.read()
            if found is None:
                continue  # released meanwhile
            rec, old = found
            why = rec.stale(self.sweep.uri) if rec else "its record is unreadable"
            if why is None:
                raise DipddpmError(
                    f"{self.sweep.uri} is held by {rec.describe()} (last heartbeat "
                    f"{rec.heartbeat_at}); wait for it to end, or stop it and then run "
                    f"`dipddpm sweep resume {self.sweep.uri}`")
            if rec is None and not self._old_unreadable():
                raise DipddpmError(f"{self.sweep.uri}/{LOCK_FILE} is being written by "
                                   f"another driver; try again in a few seconds")
            version = self.store.take_over(old, me)
            if version is not None:
                self.notes.append(f"took over the lock of {self.sweep.uri} from "
                                  f"{rec.describe() if rec else 'an unreadable record'}: "
                                  f"{why}")
                return self._hold(me, version)
        raise DipddpmError(f"{self.sweep.uri}: could not take its driver lock "
                           f"({LOCK_FILE} kept changing); try again")

    def _old_unreadable(self) -> bool:
        """An unreadable record is stale once it is older than LEASE_S (POSIX: its mtime)."""
        import time

        try:
            return time.time() - os.stat(self.store.path).st_mtime > LEASE_S
        except (AttributeError, OSError):
            return True

    def _hold(self, me: Holder, version: str) -> SweepLock:
        self.held, self.version = me, version
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="dipddpm-lock",
                                      daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            rec = self.held.beat()
            try:
                version = self.store.replace(rec, self.version)
            except Exception:  # storage briefly unreachable, or full: the lease allows
                continue  # a few missed beats
            if version is None:
                if self.on_lost is not None:
                    self.on_lost(f"{self.sweep.uri}: another driver took over this sweep's "
                                 f"lock (no heartbeat for {LEASE_S:.0f} s)")
                return
            self.held, self.version = rec, version

    def release(self) -> None:
        if self.held is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_S)
        try:
            self.store.delete(self.version)
        except Exception:  # storage gone meanwhile: the record goes stale with this process
            pass
        finally:
            self.held = self.version = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_failure(e: Exception) -> str:
    """What the storage said, with the words a user searches for (no space)."""
    import errno

    from dipddpm.errors import first_line

    if isinstance(e, OSError):
        return "no space left on the device" if e.errno == errno.ENOSPC else (
            e.strerror or first_line(e))
    return f"{type(e).__name__}: {first_line(e)}"


def read_lock(sweep: Location, options: Mapping[str, str] | None = None
              ) -> tuple[Holder | None, str | None] | None:
    """(the record or None when unreadable, why it is stale or None while live) of `sweep`'s
    lock; None when there is none or the storage has no lock (`sweep status`, `driver_state`)."""
    try:
        store = lock_store(sweep, options)
        found = None if store is None else store.read()
    except Exception:  # unreachable storage: say nothing about a lock
        return None
    if found is None:
        return None
    rec = found[0]
    return rec, (rec.stale(sweep.uri) if rec else "its record is unreadable")
