"""`dipddpm data fetch` against a real HTTP server on loopback (http.server in a thread on
127.0.0.1, serving small images this test writes), never the internet: a test data set is
registered with its URLs and pins, fetched into a temporary cache, refused when the server
serves other bytes (nothing left in the cache), and fetched offline from a folder or URL mirror.
Then the catalog's own pins against the benchmark images, where this machine has them."""

from __future__ import annotations

import functools
import hashlib
import io
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.data.catalog import DATA, DataImage, DataSet, pixel_digest
from dipddpm.errors import DipddpmError

RNG = np.random.default_rng(0)
A = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # served as a PNG file
B = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)  # served as an .npz array


def png(arr) -> bytes:
    return iio.imwrite("<bytes>", arr, extension=".png")


def npz(arr) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, arr_0=arr)
    return buf.getvalue()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:
        QuietHandler.requests.append(self.path)


@pytest.fixture
def testset(server, tmp_path, monkeypatch):
    """Data set `testset` (folder tset): image a as a PNG, b as an .npz, served by `server`."""
    root, base = server
    (root / "src").mkdir()
    (root / "src" / "a.png").write_bytes(png(A))
    (root / "src" / "b_clean.npz").write_bytes(npz(B))
    a = DataImage("a", "a.png", f"{base}/src/a.png",
                  hashlib.sha256(png(A)).hexdigest(), "file")
    b = DataImage("b", "b.png", f"{base}/src/b_clean.npz",
                  hashlib.sha256(npz(B)).hexdigest(), "npz", pixel_digest(B))
    DATA.register("testset")(DataSet("tset", (a, b), "a test set", "this test"))
    monkeypatch.setenv("DIPDDPM_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("DIPDDPM_DATA_MIRROR", raising=False)
    QuietHandler.requests.clear()
    yield root
    DATA.unregister("testset")


def fetch_cli(*args: str):
    r = CliRunner().invoke(app, ["data", "fetch", *args])
    return r.exit_code, r.stdout, r.stderr


def test_fetch_from_the_source_checks_and_keeps_the_images(testset, tmp_path):
    from dipddpm.data.images import load_image

    code, out, err = fetch_cli("testset")
    assert code == 0, err
    assert "fetched a, b" in out
    cache = tmp_path / "cache" / "tset"
    assert sorted(p.name for p in cache.iterdir()) == ["a.png", "b.png"]
    assert (cache / "a.png").read_bytes() == png(A)  # a file: its served bytes
    assert np.array_equal(iio.imread(cache / "b.png"), B)  # an array: a lossless PNG
    assert sorted(QuietHandler.requests) == ["/src/a.png", "/src/b_clean.npz"]
    img = load_image("data:testset/b")
    assert img.shape == (3, 6, 6) and abs(float(img[0, 0, 0]) - B[0, 0, 0] / 255) < 1e-6
    QuietHandler.requests.clear()
    code, out, _ = fetch_cli("testset")  # already there and checked: no request
    assert code == 0 and "already there: a, b" in out and QuietHandler.requests == []


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(testset, tmp_path):
    (testset / "src" / "b_clean.npz").write_bytes(npz(B[::-1]))  # other bytes at the URL
    code, out, err = fetch_cli("testset")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "data testset:" in err and "b_clean.npz does not match its pinned SHA-256" in err
    assert "Traceback" not in err
    assert not (tmp_path / "cache").exists()  # not a.png either: all or nothing


def test_a_mirror_folder_works_offline_with_served_or_cached_files(testset, tmp_path):
    mirror = tmp_path / "mirror" / "tset"
    mirror.mkdir(parents=True)
    (mirror / "a.png").write_bytes(png(A))
    (mirror / "b.png").write_bytes(png(B))  # the cache's form: checked by its pixels
    code, out, err = fetch_cli("testset", "--mirror", str(tmp_path / "mirror"))
    assert code == 0, err
    assert QuietHandler.requests == []  # the source was not contacted
    assert np.array_equal(iio.imread(tmp_path / "cache" / "tset" / "b.png"), B)
    (tmp_path / "cache" / "tset" / "b.png").unlink()
    (mirror / "b.png").unlink()
    (mirror / "b_clean.npz").write_bytes(npz(B))  # the source's form
    code, out, err = fetch_cli("testset", "--mirror", str(tmp_path / "mirror"))
    assert code == 0 and "fetched b" in out and "already there: a" in out, err


def test_a_mirror_url_and_a_bad_mirror(testset, tmp_path, monkeypatch):
    root = testset
    (root / "m" / "tset").mkdir(parents=True)
    (root / "m" / "tset" / "a.png").write_bytes(png(A))
    (root / "m" / "tset" / "b_clean.npz").write_bytes(npz(B))
    base = next(i.url for i in DATA.get("testset").images).split("/src/")[0]
    monkeypatch.setenv("DIPDDPM_DATA_MIRROR", f"{base}/m")
    code, _, err = fetch_cli("testset")
    assert code == 0, err
    assert all(r.startswith("/m/") for r in QuietHandler.requests)
    (tmp_path / "cache" / "tset" / "a.png").unlink()
    (root / "m" / "tset" / "a.png").write_bytes(png(A[:4]))  # a different image
    code, _, err = fetch_cli("testset")
    assert code == 2 and "does not match its pinned SHA-256" in err
    assert sorted(p.name for p in (tmp_path / "cache" / "tset").iterdir()) == ["b.png"]
    code, _, err = fetch_cli("testset", "--mirror", str(tmp_path / "empty"))
    assert code == 2 and f"the mirror {tmp_path / 'empty'} has no tset/a.png;" in err


def test_names_and_a_missing_image_are_one_line_errors(testset):
    from dipddpm.data.images import load_image

    with pytest.raises(DipddpmError, match=r"run `dipddpm data fetch testset`"):
        load_image("data:testset/a")
    with pytest.raises(DipddpmError, match=r"unknown data set 'testsett' \(did you mean "
                                           r"'testset'\?\)"):
        load_image("data:testsett/a")
    with pytest.raises(DipddpmError, match=r"no image 'c' in data set testset"):
        load_image("data:testset/c")
    code, _, err = fetch_cli("nosuchset")
    assert code == 2 and "unknown data set 'nosuchset'" in err


def test_a_study_names_a_whole_set():
    from dipddpm.data.image_sets import expand_images

    assert expand_images(["data:f16"]) == ["data:f16/F16"]
    assert len(expand_images("data:cset9")) == 9


def test_the_pins_match_the_benchmark_images_where_present():
    """The catalog's pins were taken from the public sources; the benchmark folder holds the
    same images (pixels equal, the JPEG byte for byte): checked where this machine has it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from provenance import bench_data

    root = bench_data()
    if not (root / "cset9").is_dir():
        pytest.skip("no benchmark images on this machine")
    for _, ds in DATA.items():
        for img in ds.images:
            path = root / ds.folder / img.file
            if img.served == "file":
                assert hashlib.sha256(path.read_bytes()).hexdigest() == img.sha256, path
            else:
                assert pixel_digest(iio.imread(path)) == img.pixels, path
