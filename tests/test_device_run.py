"""The device run's pieces, here: every package the device parts import is on the GPU
machine's image list or carried as a wheel; nothing they import at import time is Ray, Optuna,
plotly, bm3d or cmaes (absent there); the carried pins are this environment's versions and
bring their own needs; a repacked wheel installs; the scripts refuse bad input in one line.
tests/test_device_rehearsal.py runs the whole thing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))
import device_preflight  # noqa: E402
import device_wheels  # noqa: E402

ABSENT_THERE = ("ray", "optuna", "plotly", "bm3d", "cmaes")
# what the device parts import at the top: the preflight's list, and the GPU tests' file
ENTRY = (*device_preflight.MODULES, "tests.test_gpu")

IMPORT_ALL = f"""
import json, sys
sys.path[:0] = [{str(REPO)!r}, {str(BENCH)!r}]
for name in {list(ENTRY)!r}:
    __import__(name)
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""

BLOCKED = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {absent!r}:
            raise ImportError(f'{{name}} is not on the GPU machine')
sys.meta_path.insert(0, Absent())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_every_import_of_the_device_parts_is_on_the_image_or_carried():
    from importlib.metadata import packages_distributions

    p = _run(IMPORT_ALL)
    assert p.returncode == 0, p.stderr[-2000:]
    top = set(json.loads(p.stdout.splitlines()[-1]))
    assert not top & set(ABSENT_THERE), top & set(ABSENT_THERE)
    ours = {"dipddpm", "tests", *(f.stem for f in BENCH.glob("*.py"))}
    dists = packages_distributions()
    there = device_wheels.image() | set(device_wheels.pins())
    missing = {m: dists[m] for m in top - ours - set(sys.stdlib_module_names)
               if m in dists and not {device_wheels.norm(d) for d in dists[m]} & there}
    assert not missing, f"carry these (benchmarks/device_carry.txt): {missing}"


def test_the_device_parts_import_with_the_cluster_packages_absent():
    code = BLOCKED.format(absent=ABSENT_THERE) + IMPORT_ALL + """
import gpu_suite, tempfile
from pathlib import Path
gpu_suite.parts(Path(tempfile.mkdtemp()), dry=True)
from dipddpm.cli import main
sys.argv = ['dipddpm', 'fit', 'ddpm', '--help']
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
"""
    p = _run(code)
    assert p.returncode == 0, p.stderr[-2000:]


def test_carried_pins_are_this_environment_s_and_bring_their_needs():
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    pins, there = device_wheels.pins(), device_wheels.image()
    assert "ray" not in pins and pins, pins
    for name, version in pins.items():
        dist = distribution(name)
        assert dist.version == version, f"{name}: {dist.version} here, {version} pinned"
        for req in map(Requirement, dist.requires or []):
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            need = device_wheels.norm(req.name)
            assert need in pins or need in there, f"{name} needs {need}: carry it"
            if need in pins:
                assert req.specifier.contains(pins[need]), (name, str(req))


def test_a_repacked_wheel_installs_and_imports(tmp_path):
    wheel = device_wheels.repack_one("annotated-types", device_wheels.pins()["annotated-types"],
                                     tmp_path)
    site = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                        "--no-deps", "--target", str(site), str(wheel)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-c", "import annotated_types as a; print(a.__file__)"],
                       env={"PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert p.stdout.startswith(str(site))


def _one_line_exit_2(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, p.stdout + p.stderr
    err = p.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_device_run_refuses_a_bad_call_and_a_missing_out(tmp_path):
    run = ["bash", str(BENCH / "device_run.sh")]
    _one_line_exit_2(subprocess.run([*run, "C"], capture_output=True, text=True,
                                    env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path)}),
                     "A, B or all", "'C'")
    _one_line_exit_2(subprocess.run([*run, "A"], capture_output=True, text=True,
                                    env={"PATH": "/usr/bin:/bin"}), "$OUT is not set")
    assert not list(tmp_path.iterdir())


def test_preflight_names_a_missing_image_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, str(BENCH / "device_preflight.py"), "--call", "B",
                        "--out", str(tmp_path / "preflight.json")], capture_output=True,
                       text=True, timeout=300, cwd=REPO,
                       env={"PATH": "/usr/bin:/bin", "DIPDDPM_BENCH_DATA": str(tmp_path)})
    _one_line_exit_2(p, "preflight", "not found", "device_prepare.sh")
    assert json.loads((tmp_path / "preflight.json").read_text())["error"]


def _tgz(path: Path, files: dict[str, dict]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, doc in files.items():
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("case", ["dry", "no_suite", "missing"])
def test_unpack_refuses_in_one_line(tmp_path, case):
    tgz = {"dry": lambda: _tgz(tmp_path / "s.tgz", {"results/gpu_suite.json":
                                                    {"dry_run": True, "call": "A"}}),
           "no_suite": lambda: _tgz(tmp_path / "s.tgz", {"results/x.json": {}}),
           "missing": lambda: tmp_path / "nope.tgz"}[case]()
    p = subprocess.run([sys.executable, str(BENCH / "device_unpack.py"), str(tgz)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    _one_line_exit_2(p, {"dry": "dry run", "no_suite": "did not start",
                         "missing": "not found"}[case])


def test_unpack_names_each_call_s_record_apart(tmp_path):
    tgz = _tgz(tmp_path / "s.tgz", {
        "results/gpu_suite.json": {"dry_run": False, "call": "B", "parts": []},
        "results/dip_cset9.json": {"protocol": "dip_cset9"}, "preflight.json": {"ok": 1},
        "results/ddpm_amp/ddpm.json": {"nested": "stays in the tarball"}})
    sys.path.insert(0, str(BENCH))
    import device_unpack

    out = tmp_path / "results"
    names = sorted(p.name for p in device_unpack.unpack(tgz, out, allow_dry=False))
    assert names == ["device_preflight-B.json", "dip_cset9.json", "gpu_suite-B.json"]
