"""Nothing a user reads points at what the user does not have: no tracked file cites our internal
notes or a folder outside the repository, and every relative Markdown link resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# written in pieces, so this file does not match itself
CITES = [re.escape(p) for p in ("SPEC" + " §", "SPEC" + ".md", "DESIGN" + ".md",
                                "PARQUET" + ".md", ".." + "/shared")] + ["SPEC" + r" C\d"]
PATTERN = re.compile("|".join(CITES))
HISTORY = ("benchmarks/results/", "benchmarks/RESULTS.md")  # recorded runs, and their ledger
PENDING: set[str] = set()  # files still citing internal notes, their owner's to clean
# the docs site's hook drops such citations from the history it shows (RESULTS.md), and its
# test checks the built site holds none: both name the citations to find them
SCRUBBERS = ("docs/hooks.py", "tests/test_docs.py")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f and (REPO / f).is_file()]


def text(rel: str) -> str:
    return (REPO / rel).read_bytes()[:2_000_000].decode("utf-8", errors="ignore")


def test_no_file_cites_internal_notes_or_outside_folders():
    found = {}
    for rel in tracked():
        if rel.startswith(HISTORY) or rel in PENDING or rel in SCRUBBERS:
            continue
        hits = [f"{i}: {line.strip()[:90]}" for i, line in enumerate(text(rel).splitlines(), 1)
                if PATTERN.search(line)]
        if hits:
            found[rel] = hits
    assert not found, "\n".join(f"{f}:{h}" for f, hs in found.items() for h in hs)


def test_the_pending_list_is_not_stale():
    clean = [rel for rel in sorted(PENDING) if not PATTERN.search(text(rel))]
    assert not clean, f"no citation left in {clean}: remove them from PENDING"


def test_every_relative_markdown_link_resolves():
    broken = []
    for rel in tracked():
        if not rel.endswith(".md"):
            continue
        for target in LINK.findall(text(rel)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            path = target.split("#", 1)[0]
            if not (REPO / rel).parent.joinpath(path).exists():
                broken.append(f"{rel}: {target}")
    assert not broken, "\n".join(broken)
