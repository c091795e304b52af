"""A Ray cluster of three hosts on this machine, each in its own network namespace.

    switch namespace  <PREFIX>sw : bridge br0, one port per host (<PREFIX><host>p)
    host namespaces   <PREFIX>hd, <PREFIX>w1, <PREFIX>w2 : eth0 on 10.213.47.{1,2,3}/24, lo

Every address lives inside namespaces this module creates: the namespaces have no link to the
machine's own network (no veth into the root namespace, no route out), so no packet of the
cluster can reach anything else. A link is cut at the switch (`cut`), as a pulled cable or a
cloud partition would: the host and its processes live on, unreachable. `down` stops the Ray
processes it started (by process group, each `ray start --block` runs under its own setsid)
and deletes every namespace, which removes the veth pairs and the bridge with them.

Nodes share one filesystem (one mount namespace), so a storage folder is reachable from every
host, as NFS would be. Drivers run inside the head's namespace (`driver`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.213.47"
HOSTS = {"head": ("hd", f"{SUBNET}.1"), "worker1": ("w1", f"{SUBNET}.2"),
         "worker2": ("w2", f"{SUBNET}.3")}
GCS_PORT = 6379  # free in a fresh namespace: each host has its own ports
BIN = Path(sys.executable).parent
# fast failure detection, set on every node (Ray's defaults take about a minute): the GCS
# checks each raylet every second and marks it dead after 5 missed 1-second checks
HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
          "RAY_health_check_failure_threshold": "5", "RAY_health_check_initial_delay_ms": "1000"}


def unavailable() -> str | None:
    """Why this machine cannot make the namespaces, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("setsid") is None:
        return "needs the ip (iproute2) and setsid commands"
    if not (BIN / "ray").exists():
        return "needs the ray command beside this Python"
    probe = f"dpnprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")


@dataclass
class NetnsCluster:
    dir: Path
    prefix: str = field(default_factory=lambda: f"dpn{os.getpid() % 10000}")
    pids: dict = field(default_factory=dict)  # host -> pid of its `ray start --block`
    made: list = field(default_factory=list)  # namespaces created, to delete

    def ns(self, host: str) -> str:
        return self.prefix + HOSTS[host][0]

    @property
    def address(self) -> str:
        return f"{HOSTS['head'][1]}:{GCS_PORT}"

    def env(self, token: bool = True) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_") or k == "RAY_DEDUP_LOGS"}
        env.update(HEALTH, PATH=f"{BIN}:{env.get('PATH', '')}")
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.dir / "auth_token"))
        return env

    def network(self) -> None:
        sw = self.prefix + "sw"
        ip("netns", "add", sw)
        self.made.append(sw)
        ip("link", "add", "br0", "type", "bridge", ns=sw)
        ip("link", "set", "br0", "up", ns=sw)
        for host, (short, addr) in HOSTS.items():
            ns, port = self.ns(host), self.prefix + short + "p"
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
               "netns", sw)
            ip("link", "set", port, "master", "br0", ns=sw)
            ip("link", "set", port, "up", ns=sw)
            ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            ip("link", "set", "eth0", "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)

    def start(self, host: str, *extra: str) -> None:
        _, addr = HOSTS[host]
        node_dir = self.dir / host
        node_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / f"{host}.log", "w")  # noqa: SIM115 (the node's whole life)
        role = (["--head", "--port", str(GCS_PORT), "--include-dashboard", "false"]
                if host == "head" else ["--address", self.address])
        cmd = ["ip", "netns", "exec", self.ns(host), "setsid", str(BIN / "ray"), "start",
               "--block", "--node-ip-address", addr, "--num-cpus", "1", "--num-gpus", "0",
               "--temp-dir", str(node_dir), "--object-store-memory", "100000000",
               "--disable-usage-stats", *role, *extra]
        proc = subprocess.Popen(cmd, cwd=node_dir, env=self.env(), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pids[host] = proc.pid
        self._wait_started(host, proc)

    def _wait_started(self, host: str, proc: subprocess.Popen, timeout: float = 180) -> None:
        log = self.dir / f"{host}.log"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                raise RuntimeError(f"{host} exited while starting: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"{host} did not start in {timeout:.0f} s: {log.read_text()[-2000:]}")

    def up(self) -> NetnsCluster:
        self.dir.mkdir(parents=True, exist_ok=True)
        token = self.dir / "auth_token"
        token.write_text(os.urandom(32).hex() + "\n")
        token.chmod(0o600)
        self.network()
        for host in HOSTS:
            self.start(host)
        return self

    def cut(self, host: str) -> None:
        """Pull the host's cable at the switch: it and its processes live on, unreachable."""
        ip("link", "set", self.prefix + HOSTS[host][0] + "p", "down", ns=self.prefix + "sw")

    def heal(self, host: str) -> None:
        ip("link", "set", self.prefix + HOSTS[host][0] + "p", "up", ns=self.prefix + "sw")

    def driver(self, *args: str) -> list[str]:
        """A `dipddpm` command line run inside the head's namespace."""
        return ["ip", "netns", "exec", self.ns("head"), str(BIN / "dipddpm"), *args]

    def alive(self, host: str) -> bool:
        """Whether the host's `ray start --block` still runs (it exits with its raylet)."""
        pid = self.pids.get(host)
        return pid is not None and _group_alive(pid)

    def down(self) -> None:
        """Stop our Ray process groups (TERM, then KILL what is left), delete the namespaces."""
        for pid in self.pids.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.time() + 30
        while time.time() < deadline and any(_group_alive(p) for p in self.pids.values()):
            time.sleep(0.5)
        for pid in self.pids.values():
            _signal_group(pid, signal.SIGKILL)
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_group(pgid: int, sig: int) -> None:
    """Signal the process group our setsid made (its leader is the `ray start` we started)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
