"""Can a trial run where the sweep runs? Checked before any trial starts, because Ray never
says no: a trial no node can hold waits PENDING, silently, forever (cluster/doctor.py).

At `sweep run`, once Ray is up (embedded or a cluster), `check_cluster`:
- each trial's CPUs and GPUs must fit on ONE alive node (the largest node's, not the total);
- its memory estimate (estimate.py: the base config, the trial's members) must fit in the
  memory Ray gives tasks on a node that holds the CPUs (`memory` of `ray.nodes()`), or with
  `resources.gpu > 0` in its share of a GPU: min(gpu, 1) x the GPU's memory (a fractional
  trial's memory is capped at that share, cluster/devices.py). A GPU's memory is read on its
  node (nvidia-smi; torch on this machine); a node that does not answer is not judged.
Either is one error naming the request, what the nodes have, and the fix. An autoscaling
cluster may start a node that holds the request only once it sees it: there set
DIPDDPM_ALLOW_PENDING=1 and these checks print a warning instead.

At `sweep validate`, without Ray, `check_this_machine` checks the memory estimate of a CPU
trial against this machine's RAM when the sweep would run here (no RAY_ADDRESS).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from dipddpm.errors import DipddpmError

ALLOW_PENDING = "DIPDDPM_ALLOW_PENDING"
GIB = 2**30


def _fmt(x: float) -> str:
    return f"{x:g}"


def _nodes() -> list[dict]:
    """Alive nodes of the connected Ray: ip, CPUs, GPUs, task memory (bytes)."""
    import ray

    out = []
    for d in ray.nodes():
        if not d.get("Alive"):
            continue
        res = d.get("Resources") or {}
        out.append({"ip": d["NodeManagerAddress"], "cpu": float(res.get("CPU", 0.0)),
                    "gpu": float(res.get("GPU", 0.0)), "memory": float(res.get("memory", 0))})
    return out


def resource_error(spec, nodes: list[dict]) -> str | None:
    """Why no alive node holds one trial's CPUs and GPUs (None: one does)."""
    cpu, gpu = float(spec.resources.cpu), float(spec.resources.gpu)
    if not nodes:
        return "no node of this Ray is alive; start the cluster, or omit --address"
    if any(n["cpu"] >= cpu and n["gpu"] >= gpu for n in nodes):
        return None
    most_cpu, most_gpu = max(n["cpu"] for n in nodes), max(n["gpu"] for n in nodes)
    if gpu > 0 and most_gpu == 0:
        return (f"resources.gpu: each trial asks for {_fmt(gpu)} GPU but no node of this Ray "
                f"has a GPU; set resources.gpu: 0 to run on CPU, or run on a cluster with "
                f"GPUs (--address)")
    if gpu > most_gpu:
        return (f"resources.gpu: each trial asks for {_fmt(gpu)} GPUs but the largest node has "
                f"{_fmt(most_gpu)}; a trial runs on one node: lower resources.gpu to <= "
                f"{_fmt(most_gpu)}")
    if cpu > most_cpu:
        return (f"resources.cpu: each trial asks for {_fmt(cpu)} CPUs but the largest node has "
                f"{_fmt(most_cpu)} (all nodes: {_fmt(sum(n['cpu'] for n in nodes))}); a trial "
                f"runs on one node: lower resources.cpu to <= {_fmt(most_cpu)}")
    return (f"resources: no single node has both {_fmt(cpu)} CPUs and {_fmt(gpu)} GPUs for one "
            f"trial (nodes: " + ", ".join(f"{n['ip']} {_fmt(n['cpu'])} CPU/{_fmt(n['gpu'])} GPU"
                                         for n in nodes) + "); lower resources.cpu or .gpu")


def _estimate_text(need: int) -> str:
    return f"about {need / GIB:.1f} GiB (sweep show's estimate at the base config)"


def memory_error(spec, nodes: list[dict], need: int | None,
                 gpu_memory: Callable[[list[dict]], dict[str, int]]) -> str | None:
    """Why no node holds one trial's estimated memory (None: one does, or not judged)."""
    cpu, gpu = float(spec.resources.cpu), float(spec.resources.gpu)
    hosts = [n for n in nodes if n["cpu"] >= cpu and n["gpu"] >= gpu]
    if need is None or not hosts:
        return None
    if gpu <= 0:
        most = max(n["memory"] for n in hosts)
        if most <= 0 or need <= most:
            return None
        return (f"memory: a trial needs {_estimate_text(need)} but the largest node gives "
                f"tasks {most / GIB:.1f} GiB; lower problem.size or the net's width, or run "
                f"on nodes with more memory")
    sizes = gpu_memory([n for n in hosts if n["gpu"] > 0])
    if not sizes:
        return None
    share = min(gpu, 1.0)
    most = max(sizes.values()) * share
    if need <= most:
        return None
    return (f"memory: a trial needs {_estimate_text(need)} but resources.gpu {_fmt(gpu)} gives "
            f"it {most / GIB:.1f} GiB of the largest GPU ({max(sizes.values()) / GIB:.0f} GiB)"
            + ("; raise resources.gpu (sweep show lists the fraction per GPU size)"
               if gpu < 1 else "; lower problem.size or the net's width"))


def _nvidia_smi(ip: str) -> dict:
    """Runs ON a node: its largest GPU's memory in bytes (0 when unknown)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10).stdout
        mib = [int(x) for x in out.split() if x.strip().isdigit()]
    except (OSError, subprocess.SubprocessError):
        mib = []
    return {"ip": ip, "ok": bool(mib), "bytes": max(mib, default=0) * 2**20}


def gpu_memory(nodes: list[dict]) -> dict[str, int]:
    """ip -> the largest GPU's memory of each node that answers within 20 s."""
    from dipddpm.cluster.doctor import cluster_facts, on_every_node

    ips = {n["ip"] for n in nodes}
    alive = [n for n in cluster_facts().alive if n.ip in ips]
    answers = on_every_node(_nvidia_smi, alive, 20.0)
    return {ip: a["bytes"] for ip, a in answers.items() if a.get("ok") and a.get("bytes")}


def check_cluster(spec, console=None) -> None:
    """At `sweep run`, with Ray up: one error before any trial starts when no node can hold
    a trial (module docstring); a warning instead under DIPDDPM_ALLOW_PENDING=1."""
    from dipddpm.sweep.spec.estimate import trial_memory_bytes

    nodes = _nodes()
    why = resource_error(spec, nodes)
    if why is None:
        why = memory_error(spec, nodes, trial_memory_bytes(spec), gpu_memory)
    if why is None:
        return
    if os.environ.get(ALLOW_PENDING) == "1":
        if console is not None:
            console.line(f"[yellow]warning[/]: {why} ({ALLOW_PENDING}=1: trials wait PENDING "
                         f"until a node that holds them joins)")
        return
    raise DipddpmError(f"{why} (trials would wait PENDING forever; on an autoscaling cluster "
                       f"set {ALLOW_PENDING}=1)")


def ram_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_this_machine(spec) -> None:
    """At `sweep validate`: a CPU trial's memory estimate against this machine's RAM, when
    the sweep would run here (no RAY_ADDRESS: `sweep run` starts the embedded Ray)."""
    from dipddpm.sweep.spec.estimate import trial_memory_bytes

    if os.environ.get("RAY_ADDRESS") or spec.resources.gpu > 0:
        return
    need = trial_memory_bytes(spec)
    ram = ram_bytes()
    if need is not None and need > ram:
        raise DipddpmError(f"memory: a trial needs {_estimate_text(need)} but this machine has "
                           f"{ram / GIB:.1f} GiB of RAM; lower problem.size or the net's width, "
                           f"or run on a cluster (sweep run --address) whose nodes hold it")
