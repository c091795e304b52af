"""benchmarks/gpu_suite.py: its --dry-run (the whole pipeline shrunk on CPU) works, and
without CUDA a real run is refused in one line. CI runs this file, so the GPU command is
known to work before a GPU is seen."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu_suite.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_and_without_dry_run_is_one_line_and_non_zero(tmp_path):
    p = subprocess.run([sys.executable, str(SUITE), "--out", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "needs a CUDA device" in p.stderr
    assert "--dry-run" in p.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_dry_run_runs_every_part(tmp_path):
    # the suite's own limit is 110 s on an idle 2-core machine; a loaded test machine gets
    # more, so the test checks that every part works, not the machine's speed
    p = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--out", str(tmp_path),
                        "--limit-s", "900"], cwd=REPO, capture_output=True, text=True,
                       timeout=1000)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert doc["dry_run"] and doc["git_sha"] and doc["hardware"]["device"] == "cpu"
    parts = {r["part"]: r for r in doc["parts"]}
    for name in ("cuda_tests", "dip_modes", "fusion", "ddpm_amp", "ddpm_sample", "ledger"):
        assert parts[name]["rc"] == 0 and not parts[name].get("skipped"), parts[name]
    fusion = json.loads((tmp_path / "fusion-cpu.json").read_text())
    assert [r["K"] for r in fusion["rows"]] == [1, 2]
    assert any("packing not run" in n for n in fusion["notes"])
    modes = json.loads((tmp_path / "dip_modes-cpu.json").read_text())
    assert {r["mode"] for r in modes["rows"]} == {"fp32", "bf16_channels_last"}
    assert (tmp_path / "RESULTS.md").is_file()


def test_a_part_that_would_overrun_is_skipped_with_a_note(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_suite

    parts = [gpu_suite.Part("quick", 1, [sys.executable, "-c", "print('hi')"]),
             gpu_suite.Part("long", 50, [sys.executable, "-c", "print('never')"])]
    rows = gpu_suite.run_suite(parts, 20, tmp_path)
    assert rows[0]["rc"] == 0 and rows[0]["tail"] == ["hi"]
    assert rows[1]["skipped"] and "needs about 50 s" in rows[1]["note"]
