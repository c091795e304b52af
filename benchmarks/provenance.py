"""Provenance of a benchmark result: hardware, date, git sha, the command, atomic JSON writes."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench_data() -> Path:
    """The benchmark images (cset9/, butterfly/): $DIPDDPM_BENCH_DATA, else the first
    `shared/data` folder holding cset9/ in a folder above the repository (a checkout's
    neighbour; a CI clone's, one level higher). Never needed by the product."""
    env = os.environ.get("DIPDDPM_BENCH_DATA")
    if env:
        return Path(env).expanduser().resolve()
    for parent in REPO.parents:
        if (parent / "shared" / "data" / "cset9").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device) -> dict:
    """What ran it: GPU name (CUDA) or CPU model, core count, torch version, TF32 flags."""
    import torch

    info = {"device": device.type, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        info["name"] = info["gpu"]
    else:
        info["name"] = f"{info['cpu']} ({os.cpu_count()} cores)"
    return info


def git_sha() -> dict:
    """The commit (env GIT_SHA wins: set it where the tree is a copy without .git, with
    GIT_DIRTY=1 or 0 where known, as benchmarks/device_run.sh does)."""
    if os.environ.get("GIT_SHA"):
        dirty = os.environ.get("GIT_DIRTY")
        return {"git_sha": os.environ["GIT_SHA"],
                "git_dirty": None if dirty not in ("0", "1") else dirty == "1"}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        return {"git_sha": sha, "git_dirty": bool(dirty.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": "unknown", "git_dirty": None}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command(script: str, args: list[str]) -> str:
    """The shell command that reproduces a result, relative to the repo root."""
    return " ".join(["python", script, *map(shlex.quote, args)])


def stamp(script: str, args: list[str] | None = None, device=None) -> dict:
    """What every benchmark JSON carries: git sha, hardware, the command that made it, the date
    and the machine's load average when it started (a shared machine measures neighbours)."""
    import torch

    dev = device if device is not None else torch.device("cpu")
    argv = sys.argv[1:] if args is None else args
    return {**git_sha(), "hardware": hardware(dev), "command": command(script, argv),
            "date": now(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def rel(path) -> str:
    """A path relative to the repo root when it lies inside the repo, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def row_run(row: dict, doc: dict) -> dict:
    """A row's own provenance (files from before per-row provenance: the file's)."""
    return row.get("run") or {k: doc.get(k) for k in ("hardware", "date", "git_sha",
                                                       "git_dirty", "command", "jobs")}


def clean(v):
    """JSON-safe: NaN/inf as null, tuples as lists."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean(x) for x in v]
    return v


def write_json(path: Path, obj: dict) -> None:
    """Write atomically (temporary name in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean(obj), indent=1) + "\n")
    os.replace(tmp, path)


def ensure_repo_on_path() -> None:
    """Let `python benchmarks/x.py` import dipddpm from the repo without an install."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
