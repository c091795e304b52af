"""Outputs at the CLI boundary: check_output refuses what cannot be written before a command
works; an OSError under a command is one line naming the path; atomic writes leave no
temporary file. The full-disk cases write on a small tmpfs this test mounts (root only)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.errors import DipddpmError
from dipddpm.outputs import check_output, os_error_line


def test_check_output_refuses_what_cannot_be_written_and_creates_nothing(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dir.png").mkdir()
    before = sorted(tmp_path.rglob("*"))
    cases = [
        (tmp_path / "afile" / "x.png", "file", "afile is a file, not a folder"),
        (tmp_path / "afile" / "deeper" / "x.png", "file", "afile is a file, not a folder"),
        (tmp_path / "dir.png", "file", "dir.png is a folder; give a file name, e.g. "),
        (tmp_path / "afile", "folder", "afile is a file, not a folder"),
        ("", "file", "--out is empty"),
    ]
    for path, kind, words in cases:
        with pytest.raises(DipddpmError, match=words):
            check_output(path, "--out", kind=kind)
    with pytest.raises(DipddpmError, match=r"--out must end in \.png, got .*x\.gif"):
        check_output(tmp_path / "x.gif", "--out", suffixes=(".png",))
    assert check_output(tmp_path / "new" / "deep" / "x.png", "--out") == \
        tmp_path / "new" / "deep" / "x.png"
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, no probe left


def test_a_read_only_folder_is_refused_even_for_root(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
        pytest.skip("root ignores mode bits, and chattr +i does not work here")
    try:
        with pytest.raises(DipddpmError, match=r"--plot .*: cannot create files in .*ro "
                                               r"\((Permission denied|Operation not permitted)"):
            check_output(ro / "x.png", "--plot")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ro)])
        else:
            ro.chmod(0o755)


def test_os_error_line_names_the_path_and_the_fix():
    e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.png")
    assert os_error_line(e) == ("/data/out.png: No space left on device; free some space, "
                                "or write elsewhere")
    e = OSError(errno.EEXIST, os.strerror(errno.EEXIST), "/a", None, "/b")
    assert os_error_line(e).startswith("/a -> /b: File exists; remove it")
    assert os_error_line(OSError("pyarrow said no\nmore")) == "OSError: pyarrow said no"


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs with about 2 KiB free, unmounted afterwards (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    try:
        with open(disk / "fill", "wb") as f:
            try:
                f.write(b"\0" * (256 * 1024 - 2048))
            except OSError:
                pass
        yield disk
    finally:
        import gc

        gc.collect()  # a writer's file object left open by its failure (imageio's plugin)
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def one_line_error(r, *words: str) -> None:
    """Exit 2, no traceback, and the error as the last stderr line (after the progress bar)."""
    shown = f"exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.exit_code == 2 and "Traceback" not in r.stderr, shown
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and r.stderr.count("error") == 1, shown
    for w in words:
        assert w in last, shown


def test_a_full_disk_under_fit_is_one_line_and_leaves_no_temporary_file(full_disk):
    out = full_disk / "out.png"
    r = CliRunner().invoke(app, ["fit", "dip", "--preset", "tiny", "--image",
                                 "skimage:astronaut", "--size", "128", "--iters", "2",
                                 "--save", str(out)])
    one_line_error(r, f"error: {out}: No space left on device; free some space")
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]


def test_a_full_disk_under_a_checkpoint_save_is_one_line(full_disk):
    """torch.save straight to a full disk raises a RuntimeError ('unexpected pos'): the
    checkpoint is serialised in memory and written as bytes, so it is the OSError it is."""
    from dipddpm.checkpoint import save_checkpoint

    path = full_disk / "ddpm.pt"
    with pytest.raises(OSError) as e:
        save_checkpoint(path, {"x": 1}, {"net": {"w": torch.zeros(4096)}})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]


def test_a_full_disk_under_storage_write_leaves_no_temporary_file(full_disk):
    from dipddpm.dataset.storage import resolve

    loc = resolve(str(full_disk)).child("trials", "part-x.parquet")
    with pytest.raises(OSError) as e:
        loc.write_bytes(b"\1" * 8192)
    assert e.value.errno == errno.ENOSPC and e.value.filename == loc.path
    assert [p.name for p in full_disk.rglob("*") if p.is_file()] == ["fill"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from dipddpm.atomic import atomic_bytes, atomic_write

    path = atomic_bytes(tmp_path / "a.txt", "old")

    def half(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
