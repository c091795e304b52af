"""Every bundled spec's smoke block validates on a fresh clone, offline: the repository's
tracked files alone in a new folder, an empty data cache (no benchmark image fetched), no
checkpoint trained beforehand (dip_prior_ddpm's smoke block makes its own: recipe:tiny-ddpm)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(p.name for p in (REPO / "sweeps").glob("*.yaml"))
pytestmark = pytest.mark.slow  # 11 validations, one trains a tiny DDPM: about 30 s on 2 cores


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The tracked files of this checkout (as committed or edited), nothing else."""
    out = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / rel)
    return out


@pytest.mark.parametrize("name", SPECS)
def test_smoke_block_validates_on_a_fresh_clone_offline(name, clone, tmp_path, monkeypatch):
    monkeypatch.chdir(clone)
    monkeypatch.setenv("DIPDDPM_DATA", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DIPDDPM_DATA_MIRROR", str(tmp_path / "no-mirror"))  # never fetched
    r = CliRunner().invoke(app, ["sweep", "validate", f"sweeps/{name}", "--smoke",
                                 "--storage", str(tmp_path / "results")])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("ok: ")
    left = {p.name for p in (tmp_path / "empty-cache").glob("*")}
    assert left <= {"recipes"}  # no image came into the cache: none was needed
