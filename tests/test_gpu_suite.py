"""benchmarks/gpu_suite.py and its time plan, on CPU: a real run without CUDA is refused in one
line; each part runs in its own process group under its own limit, killed whole at it; the
suite's JSON is rewritten after every part; PYTHONPATH is extended, never replaced; the dry run
is the GPU run shrunk; the CUDA-only lines its docstring lists hold what they name; the time
plan is current and fits the device time; benchmarks/README.md gives its device calls."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu_suite.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_suite  # noqa: E402
import time_plan  # noqa: E402

PY = sys.executable


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_and_without_dry_run_is_one_line_and_non_zero(tmp_path):
    p = subprocess.run([PY, str(SUITE), "--call", "A", "--out", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "needs a CUDA device" in p.stderr
    assert "--dry-run" in p.stderr and not list(tmp_path.iterdir())


def _part(name, code, estimate=1.0, **kw):
    return gpu_suite.Part(name, "A", estimate, [PY, "-c", code], "fp32", **kw)


def test_a_part_that_would_overrun_is_skipped_with_a_note(tmp_path):
    parts = [_part("quick", "print('hi')"), _part("long", "print('never')", 50)]
    rows = gpu_suite.run_suite(parts, 20, tmp_path)
    assert rows[0]["rc"] == 0 and rows[0]["tail"] == ["hi"]
    assert rows[1]["skipped"] and "needs about 50 s" in rows[1]["note"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_part_at_its_limit_is_killed_with_its_worker_processes(tmp_path):
    """The part starts a worker (as reproduce.py's pool does) and hangs; at min(time left,
    2 x estimate) = 2 s the whole group goes, the worker too."""
    pidfile = tmp_path / "worker.pid"
    code = ("import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(120)']); open(sys.argv[1], 'w').write(str(w.pid)); "
            "time.sleep(120)")
    part = gpu_suite.Part("hangs", "A", 1.0, [PY, "-c", code, str(pidfile)], "fp32")
    t0 = time.monotonic()
    rows = gpu_suite.run_suite([part], 60, tmp_path)
    assert time.monotonic() - t0 < 20
    assert rows[0]["rc"] is None and "stopped at its time limit after 2 s" in rows[0]["note"]
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)


def test_pythonpath_is_extended_never_replaced(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/tmp/site-of-carried-wheels")
    env = gpu_suite.part_env(_part("x", "", env={"DIPDDPM_TEST_DEVICE": "cpu"}))
    assert env["PYTHONPATH"] == f"{REPO}{os.pathsep}/tmp/site-of-carried-wheels"
    assert env["DIPDDPM_TEST_DEVICE"] == "cpu"
    monkeypatch.delenv("PYTHONPATH")
    assert gpu_suite.part_env(_part("x", ""))["PYTHONPATH"] == str(REPO)


def test_the_suite_json_is_rewritten_after_every_part(tmp_path):
    path = tmp_path / "gpu_suite.json"
    count = ("import json, sys; print(len(json.load(open(sys.argv[1]))['parts']))")
    parts = [_part("first", "print('one')"),
             gpu_suite.Part("second", "A", 1.0, [PY, "-c", count, str(path)], "fp32")]
    rows = gpu_suite.run_suite(parts, 60, tmp_path, lambda rows: path.write_text(
        json.dumps({"parts": rows})))
    assert rows[1]["rc"] == 0 and rows[1]["tail"] == ["1"]  # the first part was on disk
    assert len(json.loads(path.read_text())["parts"]) == 2


def test_a_reproduction_without_its_images_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPDDPM_BENCH_DATA", str(tmp_path / "none"))
    rows = gpu_suite.run_suite([_part("repro_x", "print(1)", needs_data=True)], 60, tmp_path)
    assert rows[0]["skipped"] and "no benchmark images at" in rows[0]["note"]
    assert "DIPDDPM_BENCH_DATA" in rows[0]["note"]


def test_the_dry_run_is_the_gpu_run_shrunk(tmp_path):
    gpu, dry = gpu_suite.gpu_argv(tmp_path), gpu_suite.dry_argv(tmp_path)
    assert list(gpu) == list(dry) == [r["part"] for r in time_plan.load()["parts"]]
    for name, argv in gpu.items():
        if name.startswith("repro_"):  # the _mini protocol, the same flags
            assert dry[name][2] == argv[2] + "_mini"
            assert {"--precision", "tf32"} <= set(dry[name]) and (
                "--fuse" in argv) == ("--fuse" in dry[name])
        else:  # overrides appended (later ones win), a --set key shrunk in place (set once)
            shrunk = [a if not a.startswith("iters=") else "iters=N" for a in dry[name]]
            assert shrunk[:len(argv)] == [
                a if not a.startswith("iters=") else "iters=N" for a in argv], name
    calls = {p.name: p.call for p in gpu_suite.parts(tmp_path, dry=False)}
    assert {n for n, c in calls.items() if c == "B"} == {
        "repro_staged_f16", "repro_cset9", "repro_guided_butterfly"}


def test_cuda_only_lines_listed_in_the_docstring_hold_what_they_name():
    listed = re.findall(r"((?:benchmarks|dipddpm)/[\w/]+\.py):(\d+)\s+(\S+)",
                        gpu_suite.__doc__, flags=re.M)
    assert len(listed) >= 12
    for path, line, token in listed:  # within NEAR lines: an edit above it shifts it a little
        lines = (REPO / path).read_text().splitlines()
        i = int(line) - 1
        near = lines[max(i - NEAR, 0):i + NEAR + 1]
        assert any(token in x for x in near), (
            f"{path}:{line} no longer holds {token!r} (nor do the {NEAR} lines either side): "
            f"{lines[i].strip() if i < len(lines) else '(past the end)'!r}")


NEAR = 10  # how far a listed call may drift from its line before the list must be updated


def test_the_time_plan_fits_the_device_time_and_each_call_its_command_limit():
    plan = time_plan.load()
    assert plan["fits"] and plan["both_at_limits_s"] <= plan["device_s"]
    for call in plan["calls"].values():
        assert call["estimate_s"] < call["suite_limit_s"] < call["timeout_s"] <= 600
        assert call["timeout_s"] >= call["suite_limit_s"] + 60


def test_benchmarks_readme_gives_the_two_device_calls():
    text = (REPO / "benchmarks" / "README.md").read_text()
    for call, c in time_plan.load()["calls"].items():
        assert (f'command="bash benchmarks/device_run.sh {call}", carry=[".device"], '
                f'timeout_s={c["timeout_s"]}') in text, call
    for r in time_plan.load()["parts"]:  # the plan's table, as time_plan.py prints it
        assert (f"| {r['call']} | {r['part']} | {r['tflop']:.1f} | {r['estimate_s']:.0f} | "
                f"{r['limit_s']:.0f} |") in text, r["part"]


@pytest.mark.slow
def test_the_committed_time_plan_is_current():
    fresh = json.loads(json.dumps(time_plan.pv.clean(time_plan.document())))
    assert fresh == time_plan.load(), "run: python benchmarks/time_plan.py --write"


def test_fusion_rows_keep_going_after_an_out_of_memory_error(tmp_path, monkeypatch):
    """An OOM at K = 4 becomes a note, K = 8 at that size is skipped, the rows before stay."""
    import fusion as bench

    def fake_fused_run(cfg, problem, K, dev):
        if K >= 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return {"trial_it_s": 10.0 * K, "peak_mib_per_member": 1.0,
                "estimate_mib_per_member": 1.0}

    monkeypatch.setattr(bench, "fused_run", fake_fused_run)
    args = argparse.Namespace(sizes=[64], ks=[1, 2, 4, 8], iters=4, precision="fp32",
                              packing=None)
    doc, saves = {"rows": [], "notes": []}, []
    bench.bench_net("small (width 16, depth 3)", bench.NETS["small (width 16, depth 3)"], args,
                    torch.device("cpu"), time.perf_counter() + 60, doc,
                    lambda: saves.append(len(doc["rows"])))
    assert [r["K"] for r in doc["rows"]] == [1, 2]
    assert any("K=4: out of memory" in n for n in doc["notes"])
    assert any("K=8: skipped: K=4 already ran out of memory" in n for n in doc["notes"])
    assert saves[:2] == [1, 2]  # written as each row was measured
