"""The free-space reserve of a sweep (dipddpm/sweep/disk_space.py), without a disk to fill:
a full disk is recognised however the error arrives, the reserve grows with what the sweep
writes between two looks, and the temporaries a cut-off write leaves are removed (not Tune's)."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from dipddpm.dataset.storage import resolve
from dipddpm.errors import DipddpmError
from dipddpm.sweep import disk_space
from dipddpm.sweep.disk_space import MIB, SpaceWatch, min_free_bytes, no_space, remove_cut_off


def raised_from(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as e:
        return e


def test_a_full_disk_is_recognised_however_it_arrives():
    from optuna.exceptions import StorageInternalError

    assert no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert no_space(raised_from(sqlite_full, StorageInternalError("An exception is raised")))
    assert no_space(RuntimeError("IOError: [Errno 28] No space left on device"))  # pyarrow's
    assert not no_space(OSError(errno.EACCES, "Permission denied"))
    assert not no_space(raised_from(ValueError("x"), RuntimeError("y")))


def test_the_reserve_is_the_floor_or_twice_the_largest_write_between_looks(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("DIPDDPM_MIN_FREE_MIB", "1")
    free = iter([100 * MIB, 90 * MIB, 85 * MIB, 70 * MIB, 20 * MIB])
    monkeypatch.setattr(disk_space, "free_bytes", lambda path: next(free))
    monkeypatch.setattr(disk_space, "CHECK_EVERY_S", 0.0)
    watch = SpaceWatch(resolve(tmp_path))
    assert watch.low() is None and watch.reserve() == 1 * MIB  # 100 free
    assert watch.low() is None and watch.reserve() == 20 * MIB  # 90: 10 written
    assert watch.low() is None and watch.reserve() == 20 * MIB  # 85: 5 written
    assert watch.low() is None and watch.reserve() == 30 * MIB  # 70: 15 written
    line = watch.low()  # 20: below the reserve
    assert line.startswith(f"no space left for the sweep in {tmp_path}: 20.00 MiB free")
    assert f"`dipddpm sweep resume {tmp_path}`" in line


def test_the_reserve_can_be_set_or_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("DIPDDPM_MIN_FREE_MIB", "0")
    assert min_free_bytes() == 0 and SpaceWatch(resolve(tmp_path)).low() is None
    monkeypatch.setenv("DIPDDPM_MIN_FREE_MIB", "-1")
    with pytest.raises(DipddpmError, match="must be a number of MiB >= 0"):
        min_free_bytes()
    monkeypatch.delenv("DIPDDPM_MIN_FREE_MIB")
    assert min_free_bytes() == disk_space.MIN_FREE_MIB * MIB


def test_cut_off_temporaries_are_removed_but_not_tunes(tmp_path):
    (tmp_path / "trials").mkdir()
    (tmp_path / "tune").mkdir()
    cut = tmp_path / "trials" / ".part-a.parquet.0123abcd.tmp"
    for p in (cut, tmp_path / "trials" / "part-b.parquet",
              tmp_path / "tune" / ".state.0123abcd.tmp", tmp_path / ".hidden"):
        p.write_bytes(b"x")
    assert remove_cut_off(resolve(tmp_path)) == [str(cut)]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        ".hidden", ".state.0123abcd.tmp", "part-b.parquet"]
