"""Every result in benchmarks/results/ says where it came from: the git sha of the code, the
hardware and the command that made it (the file's, or each row's own where rows were merged
from several runs), so no number stands without its provenance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
KEYS = ("git_sha", "hardware", "command")


def missing(doc: dict) -> list[str]:
    """The provenance keys a result lacks (a key is there when the file or every row has it)."""
    rows = [r for r in doc.get("rows") or [] if isinstance(r, dict)]
    per_row = rows and all(isinstance(r.get("run"), dict) for r in rows)
    return [k for k in KEYS if not doc.get(k)
            and not (per_row and all(r["run"].get(k) for r in rows))]


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_result_carries_its_provenance(path):
    assert missing(json.loads(path.read_text())) == [], path.name


def test_the_stamp_has_every_key():
    sys.path.insert(0, str(RESULTS.parent))
    try:
        from provenance import stamp
    finally:
        sys.path.remove(str(RESULTS.parent))
    s = stamp("benchmarks/x.py", ["--n", "2"])
    assert missing(s) == [] and s["command"] == "python benchmarks/x.py --n 2"
    assert s["hardware"]["device"] == "cpu" and "loadavg_1m" in s
