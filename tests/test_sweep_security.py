"""The embedded local Ray of `dipddpm sweep run` listens on loopback only (no dashboard)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_embedded_ray_binds_loopback_only(tmp_path):
    psutil = pytest.importorskip("psutil")
    env_cmd = [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
               str(SWEEPS / "quick.yaml"), "--smoke", "--num-samples", "2",
               "--storage", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(env_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    driver = psutil.Process(proc.pid)
    seen: dict[tuple[str, int], str] = {}
    ray_procs: set[str] = set()
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        try:
            family = [driver, *driver.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in family:
            try:
                name = p.name()
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        seen[(c.laddr.ip, c.laddr.port)] = name
                ray_procs.add(name)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.5)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output[-3000:]
    assert "winner" in output and "results:" in output
    assert any("gcs_server" in n for n in ray_procs), ray_procs  # we did watch a Ray start
    assert seen, "no listening socket observed"
    public = {k: v for k, v in seen.items() if not _loopback(k[0])}
    assert not public, f"listening beyond loopback: {public}"
    assert 8265 not in {port for _, port in seen}, "the dashboard is on"
    assert "Started a local Ray instance" not in output  # Ray's own chatter is silenced


def test_embedded_ray_ignores_a_stale_ray_start_record(tmp_path):
    """A `ray start` not stopped cleanly leaves ray_current_cluster naming a dead cluster; a
    plain ray.init() would try to join it (and hang). The embedded sweep starts its own."""
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.9:6399")  # nothing there
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(ray_tmp)  # where Ray looks for that record
    res = subprocess.run([sys.executable, "-c", "from dipddpm.cli import main; main()",
                          "sweep", "run", str(SWEEPS / "quick.yaml"), "--smoke",
                          "--num-samples", "1", "--storage", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
