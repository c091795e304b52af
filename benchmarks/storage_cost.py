"""Storage cost: a smoke sweep on local disk vs on S3 (moto's S3 server on loopback).

Each run is `dipddpm sweep run sweeps/quick.yaml --smoke --num-samples N` in its own process
(embedded local Ray), timed from start to exit. For S3 runs, moto's request log (one line per
HTTP request) is split by what the request was for:

    tune_state        Tune's experiment state (trial list, searcher, tuner) under tune/
    tune_checkpoints  trial checkpoints (tune/<trial>/checkpoint_*) and their deletion
    tune_other        anything else under tune/ (trial folders, result files)
    parquet           our trials/ and metrics/ part files
    artifacts         output PNGs (artifacts/)
    optuna_db         the published study (optuna.db)
    dir_markers       folder marker objects (HEAD bucket, PUT "key/"): pyarrow's create_dir,
                      which Tune calls before its uploads (ours are plain PUTs)
    setup             the storage probe, spec.resolved.yaml, listings of the sweep folder

and reported per trial and per minute of sweep. Runs: local N; S3 N with Tune's clock-driven
state saves every 2 s (the period used before for every storage); S3 N and S3 2N with the
remote period (dipddpm.cluster.local_ray.STATE_PERIOD_S). Requests that grow with trials, not
with wall time, show as a steady per-trial count from N to 2N.

    python benchmarks/storage_cost.py [--trials 3] [--out benchmarks/results/storage_cost.json]
    python benchmarks/storage_cost.py --smoke --trials 1     # two runs: the test's size
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import provenance  # noqa: E402

HOST = "127.0.0.2"
BUCKET = "bench"
LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP')


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    endpoint = f"http://{HOST}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1").create_bucket(
        Bucket=BUCKET)
    return proc, endpoint


def kind(method: str, target: str) -> str:
    """What a request was for, from its path (or, for a bucket listing, its prefix)."""
    path, _, query = target.partition("?")
    m = re.search(r"(?:^|&)prefix=([^&]*)", query)
    key = path.split("/", 2)[2] if path.count("/") >= 2 else (m.group(1) if m else "")
    if (method == "PUT" and key.endswith("/")) or (method == "HEAD" and not key):
        return "dir_markers"  # pyarrow's create_dir on S3: HEAD bucket + a marker per level
    if "/tune/" in f"/{key}" or key.startswith("tune"):
        rest = key.split("tune/", 1)[-1]
        if "checkpoint_" in rest:
            return "tune_checkpoints"
        if rest.startswith(("experiment_state", "searcher-state", "tuner.pkl", "trainable.pkl",
                            "basic-variant-state", ".validate_storage")) or "/" not in rest:
            return "tune_state"
        return "tune_other"
    if "/trials/" in f"/{key}" or "/metrics/" in f"/{key}":
        return "parquet"
    if "/artifacts/" in f"/{key}":
        return "artifacts"
    if key.endswith("optuna.db"):
        return "optuna_db"
    return "setup"


def requests(log: Path, start: int) -> tuple[int, dict, dict]:
    lines = log.read_text().splitlines()[start:]
    kinds: Counter = Counter()
    methods: Counter = Counter()
    for ln in lines:
        m = LINE.search(ln)
        if m:
            kinds[kind(*m.groups())] += 1
            methods[m.group(1)] += 1
    return sum(kinds.values()), dict(kinds), dict(methods)


def run_sweep(storage: str, n: int, env: dict) -> float:
    cmd = [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
           str(provenance.REPO / "sweeps" / "quick.yaml"), "--smoke", "--num-samples", str(n),
           "--storage", storage, "--json"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"sweep failed ({storage}): {r.stderr[-2000:]}")
    return wall


def one(name: str, storage: str, n: int, env: dict, log: Path | None) -> dict:
    start = len(log.read_text().splitlines()) if log else 0
    wall = run_sweep(storage, n, env)
    row = {"run": name, "storage": "s3" if storage.startswith("s3://") else "local",
           "trials": n, "state_period_s": env.get("TUNE_GLOBAL_CHECKPOINT_S"),
           "wall_s": round(wall, 2)}
    if log is not None:
        total, kinds, methods = requests(log, start)
        row.update(requests=total, requests_per_trial=round(total / n, 1),
                   requests_per_minute=round(total / (wall / 60), 1), by_kind=kinds,
                   by_kind_per_trial={k: round(v / n, 1) for k, v in kinds.items()},
                   by_method=methods)
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3, help="N: trials of the smaller sweeps")
    ap.add_argument("--out", default=str(HERE / "results" / "storage_cost.json"))
    ap.add_argument("--smoke", action="store_true",
                    help="two runs only (local and s3, N trials each): the test's size")
    args = ap.parse_args()
    from dipddpm.cluster.local_ray import STATE_PERIOD_S

    tmp = Path(tempfile.mkdtemp(prefix="dipddpm-storage-cost-"))
    log = tmp / "moto.log"
    proc, endpoint = start_moto(log)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in ("TUNE_GLOBAL_CHECKPOINT_S", "RAY_ADDRESS")}
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    n = args.trials
    plan = [("local", str(tmp / "local"), n, base, None),
            ("s3, state every 2 s", f"s3://{BUCKET}/a", n,
             {**base, **aws, "TUNE_GLOBAL_CHECKPOINT_S": "2"}, log),
            ("s3", f"s3://{BUCKET}/b", n, {**base, **aws}, log),
            ("s3, twice the trials", f"s3://{BUCKET}/c", 2 * n, {**base, **aws}, log)]
    if args.smoke:
        plan = [p for p in plan if p[0] in ("local", "s3")]
    try:
        runs = [one(*p) for p in plan]
    finally:
        proc.terminate()
    local, s3 = (next(r for r in runs if r["run"] == name) for name in ("local", "s3"))
    doc = {"benchmark": "storage_cost", "date": provenance.now(), **provenance.git_sha(),
           "hardware": provenance.hardware(__import__("torch").device("cpu")),
           "command": provenance.command("benchmarks/storage_cost.py", sys.argv[1:]),
           "spec": "sweeps/quick.yaml --smoke (32x32, 20 or 30 iterations, ASHA)",
           "remote_state_period_s": STATE_PERIOD_S[True],
           "s3_server": "moto (standalone server, loopback)", "runs": runs,
           "s3_over_local_wall": round(s3["wall_s"] / local["wall_s"], 2),
           **({"smoke": True} if args.smoke else {})}
    provenance.write_json(Path(args.out), doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
