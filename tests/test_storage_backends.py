"""Storage backends: schemes checked against the registry (case aside), an empty storage refused,
and remote storage probed within a bounded wait that names the endpoint.

S3 against moto's S3 server on loopback; GCS without any network: its backend is pointed at a
loopback port that accepts connections and never answers (a listening socket nobody reads),
or at one where nothing listens, and the probe must give up within DIPDDPM_STORAGE_TIMEOUT."""

from __future__ import annotations

import socket
import time

import pytest
import s3_server

from dipddpm.dataset import storage_backends
from dipddpm.dataset.storage import is_remote, resolve
from dipddpm.dataset.storage_backends import STORAGE_BACKENDS, backend_for, check_options
from dipddpm.errors import ConfigError, DipddpmError

BUCKET = "probe-bkt"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = s3_server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    server.make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def aws_env(s3, monkeypatch, tmp_path):
    for k, v in {**s3.env(), "HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()  # the abandoned probe's connection is reset, its thread ends


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_registry_holds_local_s3_and_gs_with_their_options():
    assert set(STORAGE_BACKENDS.names()) >= {"local", "s3", "gs"}
    assert not backend_for("results").remote and not backend_for("/abs/x").remote
    assert backend_for("s3://b/x") is STORAGE_BACKENDS.get("s3")
    assert backend_for("GCS://b/x") is STORAGE_BACKENDS.get("gs")
    with pytest.raises(ConfigError, match=r"storage_options.region does not apply to gs://b/x "
                                          r"\(it takes endpoint_url, anonymous, project_id\)"):
        check_options("gs://b/x", {"region": "eu"})
    with pytest.raises(ConfigError, match="does not apply to results"):
        check_options("results", {"endpoint_url": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="anonymous must be 'true' or 'false'"):
        check_options("gs://b/x", {"anonymous": "yes"})


@pytest.mark.parametrize("uri, words", [
    ("ftp://host/x", ["ftp://host/x", "unknown scheme 'ftp://'", "s3://", "gs://"]),
    ("s4://b/x", ["did you mean 's3://'?"]),
    ("", ["storage is empty", "unset shell variable"]),
    ("   ", ["storage is empty"]),
])
def test_unknown_scheme_or_empty_storage_is_refused(uri, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        resolve(uri)
    for w in words:
        assert w in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no folder named 'ftp:' or anything else
    with pytest.raises(ConfigError):
        is_remote(uri)


def test_s3_scheme_in_upper_case_is_s3(aws_env):
    loc = resolve(f"S3://{BUCKET}/sweeps")
    assert loc.uri == f"s3://{BUCKET}/sweeps" and not loc.local
    loc.child("x.txt").write_text("hi")
    assert resolve(f"s3://{BUCKET}/sweeps").child("x.txt").read_text() == "hi"


def test_s3_missing_bucket_is_one_line_at_resolve(aws_env):
    with pytest.raises(DipddpmError, match="bucket 'no-such-bkt' does not exist"):
        resolve("s3://no-such-bkt/sweeps")


def test_s3_endpoint_that_does_not_answer_fails_within_the_wait(aws_env, silent_port,
                                                                 monkeypatch):
    monkeypatch.setenv("DIPDDPM_STORAGE_TIMEOUT", "1.5")
    down = f"http://127.0.0.1:{silent_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)
    t = time.monotonic()
    with pytest.raises(DipddpmError) as e:
        resolve(f"s3://{BUCKET}/silent")
    assert time.monotonic() - t < 4
    assert f"cannot reach the endpoint {down}" in str(e.value)
    assert "DIPDDPM_STORAGE_TIMEOUT" in str(e.value)


@pytest.mark.parametrize("port_kind", ["silent", "closed"])
def test_gs_unreachable_endpoint_fails_within_the_wait(port_kind, silent_port, monkeypatch):
    """No Google: the gs backend is pointed at loopback, anonymous (no credential lookup)."""
    monkeypatch.setenv("DIPDDPM_STORAGE_TIMEOUT", "1")
    port = silent_port if port_kind == "silent" else closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    t = time.monotonic()
    with pytest.raises(DipddpmError) as e:
        resolve("gs://bkt/sweeps", {"endpoint_url": endpoint, "anonymous": "true"})
    assert time.monotonic() - t < 3
    assert str(e.value).startswith("storage gs://bkt/sweeps")
    assert endpoint in str(e.value) and len(str(e.value).splitlines()) == 1


def test_the_wait_is_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("DIPDDPM_STORAGE_TIMEOUT", "2.5")
    assert storage_backends.probe_timeout() == 2.5
    for bad in ("abc", "0", "-1", "inf", "nan"):
        monkeypatch.setenv("DIPDDPM_STORAGE_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="DIPDDPM_STORAGE_TIMEOUT must be a number"):
            storage_backends.probe_timeout()
    monkeypatch.delenv("DIPDDPM_STORAGE_TIMEOUT")
    assert storage_backends.probe_timeout() == storage_backends.DEFAULT_TIMEOUT_S


@pytest.mark.parametrize("name", STORAGE_BACKENDS.names())
def test_every_backend_owns_its_schemes_and_options(name):
    """The storage contract, over every registered entry: each of its schemes (any case) finds
    it, a storage_options key it does not take is one line listing the ones it does, and a
    key it takes passes its own check (a remote backend's; a local path takes none)."""
    entry = STORAGE_BACKENDS.get(name)
    assert entry.help
    uris = [f"{s.upper()}://bkt/x" for s in entry.schemes] or ["results"]
    for uri in uris:
        assert backend_for(uri) is entry and is_remote(uri) is entry.remote
        with pytest.raises(ConfigError, match=r"storage_options.no_such_key does not apply"):
            check_options(uri, {"no_such_key": "1"})
    for key in entry.options:
        value = "false" if key == "anonymous" else "http://127.0.0.1:1"
        assert check_options(uris[0], {key: value}) == {key: value}
