"""The rehearsal of the GPU run, in CI: the device's environment as closely as a CPU machine
allows, so the first GPU call does not find a missing package, file or folder.

1. a virtual environment holding only packages the GPU machine's image has
   (benchmarks/device_venv.py links them from this environment: no download, and no copy of
   torch's gigabytes; this interpreter's Python and versions, where the device has 3.12);
2. `benchmarks/device_prepare.sh --repack-wheels --dir COPY/.device`: the carried wheels
   rebuilt from this environment's installed copies (offline), the images where they exist;
3. a copy of the repository as the device receives it: tracked and untracked-not-ignored
   files, no .git, nothing beside it, plus the prepared .device/;
4. `bash benchmarks/device_run.sh --dry-run` there, with only the venv on PATH, no
   PYTHONPATH, and $OUT set; then at most 8 files came back, no more than 2 folders deep,
   every part is ok or skipped with its reason, and device_unpack.py renders them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import device_venv  # noqa: E402

NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _copy_as_the_device_gets_it(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def _returned(out: Path) -> list[Path]:
    got = [p for p in out.rglob("*") if p.is_file()]
    for p in got:
        rel = p.relative_to(out)
        assert len(rel.parts) <= 3, f"{rel}: more than 2 folders below $OUT"
        assert all(NAME.match(part) for part in rel.parts), rel
        assert p.stat().st_size <= 16 * 2**20, rel
    return got


@pytest.mark.slow
def test_the_device_run_rehearsed_in_its_environment(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("the rehearsal copies the repository as git lists it")
    t0 = time.monotonic()
    venv, copy, out = tmp_path / "venv", tmp_path / "repo", tmp_path / "out"
    linked = device_venv.make(venv)
    assert "torch" in linked and not {"ray", "optuna", "plotly", "bm3d", "pydantic"} & set(
        linked)
    copy.mkdir()
    _copy_as_the_device_gets_it(copy)
    assert not (copy / ".git").exists()
    prep = subprocess.run(["bash", str(REPO / "benchmarks" / "device_prepare.sh"),
                           "--repack-wheels", "--allow-missing-data", "--dir",
                           str(copy / ".device")], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert prep.returncode == 0, prep.stdout + prep.stderr
    assert "travels:" in prep.stdout and 'carry: [".device"]' in prep.stdout
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OUT": str(out),
           "TMPDIR": str(tmp_path), "LANG": "C.UTF-8"}
    run = subprocess.run(["bash", "benchmarks/device_run.sh", "--dry-run"], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - t0
    print(f"rehearsal: {took:.0f} s; prepare: {prep.stdout.splitlines()[0]}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    got = _returned(out)
    assert 1 <= len(got) <= 8 and (out / "suite.tgz").is_file(), got
    assert (out / "status.txt").read_text().startswith("exit 0")
    suite = json.loads((out / "gpu_suite.json").read_text())
    assert suite["dry_run"] and suite["git_sha"] not in (None, "unknown")
    for part in suite["parts"]:
        ok = part["rc"] == 0 and not part.get("note")
        assert ok or (part.get("skipped") and part.get("note")), part
    assert len(suite["parts"]) == 9
    res = tmp_path / "results"
    unpack = subprocess.run([sys.executable, str(REPO / "benchmarks" / "device_unpack.py"),
                             str(out / "suite.tgz"), "--results", str(res)],
                            capture_output=True, text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stderr
    assert (res / "RESULTS.md").is_file() and (res / "gpu_suite-all.json").is_file()
    from test_benchmark_provenance import missing  # what the committed results must carry

    for path in res.glob("*.json"):
        assert missing(json.loads(path.read_text())) == [], path.name
