"""The README's main job: its cost as benchmarks/main_job.py measured it (README.md and
sweeps/quick.yaml quote the measurement once there is one), and its last lines saying what one
image and one seed can and cannot conclude, pointing at a study that exists."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "main_job.json"


def _main_job():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import main_job
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return main_job


def _flat(text: str) -> str:
    """Prose as one line of single spaces, without YAML comment marks."""
    return " ".join(" ".join(re.sub(r"^\s*#", "", ln) for ln in text.splitlines()).split())


def test_the_quoted_line_says_what_the_measurement_says():
    doc = {"wall_s": 201.4, "hardware": {"cpu_count": 2}, "loadavg_start": [0.12, 0, 0],
           "by_status": {"COMPLETED": 11, "PRUNED": 9}}
    line = _main_job().quoted_line(doc)
    assert line.startswith("measured 3.4 min (201 s) on 2 CPU cores")
    assert "load 0.1 at start: 11 trials completed, 9 stopped by ASHA" in line


@pytest.mark.parametrize("where", ["README.md", "sweeps/quick.yaml"])
def test_readme_and_quick_yaml_quote_the_main_job_measurement(where):
    text = (REPO / where).read_text()
    assert "benchmarks/main_job.py" in text and "under 5 minutes" in text
    assert "about 10 minutes" not in text
    if RESULT.exists():  # once measured, the sentence carries its numbers
        doc = json.loads(RESULT.read_text())
        assert doc["goal_met"] and not doc["smoke"]
        assert _flat(_main_job().quoted_line(doc)) in _flat(text)


def test_the_last_lines_say_what_one_image_and_seed_can_conclude():
    from dipddpm.sweep.console import ONE_OBSERVATION_NOTE
    from dipddpm.sweep.runner import one_image_problem
    from dipddpm.sweep.spec import load_spec

    quick = load_spec(REPO / "sweeps" / "quick.yaml", load_problem=False)
    study = load_spec(REPO / "sweeps" / "study_guided_vs_dip.yaml", load_problem=False)
    assert one_image_problem(quick) and not one_image_problem(study)
    pointed = re.search(r"sweep run (\S+\.yaml)", ONE_OBSERVATION_NOTE).group(1)
    assert (REPO / pointed).exists()
    assert "cannot" in ONE_OBSERVATION_NOTE
