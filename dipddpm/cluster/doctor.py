"""What a Ray cluster offers a sweep: nodes, CPUs and GPUs, how many trials fit at once, why
trials would stay PENDING, and whether every node reaches the sweep's storage.

    facts = cluster_facts()                       # needs ray.init (embedded or --address)
    fit = schedule(spec, facts)                   # per-trial request, trials at once, reasons
    check_storage_on_all_nodes("s3://bucket/x")  # raises DipddpmError naming bad nodes

Ray places a trial only on ONE node holding its whole request ({CPU: cpu, GPU: gpu}); a
request that no node up now can hold waits PENDING, with no error: until an autoscaler starts
a worker type that can hold it, or forever when the cluster has no such type. What `schedule`
sees is the nodes up now (Ray does not expose the autoscaler's node types to a driver), so it
says "does not fit the nodes up now", never "can never run". Fractional GPUs pack: `gpu: 0.25`
puts four trials on each GPU when the node also has the CPUs (trials per node =
min(node CPUs / cpu, node GPUs / gpu)).

The storage check runs before any trial on a multi-node cluster: the driver writes a marker
under the storage, a task pinned to every alive node (by its `node:<ip>` resource, 0 CPUs, so
busy nodes answer too) reads it back and writes its own marker, and the driver reads those.
Trials write checkpoints and PNGs from their node, and the driver writes Parquet, so both
directions must work. A local path passes only when it is shared (NFS, or one machine).
`cluster doctor` also checks that every node can read the spec's input image: trials open it
on their node, relative to the Ray worker's directory, not the driver's.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dipddpm.cluster.devices import RESOURCE_GRANULARITY
from dipddpm.errors import DipddpmError, first_line

MARKER = ".dipddpm-storage-check"
PIN = 0.001  # amount of the node:<ip> resource a pinned task asks for (every node has 1.0)


@dataclass(frozen=True)
class Node:
    node_id: str
    ip: str
    hostname: str
    alive: bool
    head: bool
    cpus: float
    gpus: float
    gpu_type: str | None  # Ray's accelerator_type resource, e.g. "A100"; None when unknown


@dataclass(frozen=True)
class ClusterFacts:
    nodes: tuple[Node, ...]

    @property
    def alive(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.alive)

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.alive)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.alive)


@dataclass(frozen=True)
class Schedule:
    request: dict[str, float]  # one trial's resources, e.g. {"CPU": 1.0, "GPU": 0.25}
    per_node: dict[str, int]  # node ip -> trials that fit on it at once
    fit: int  # trials that fit on the whole cluster at once
    concurrent: int  # trials that will actually run at once: min(fit, max_concurrent, samples)
    reasons: tuple[str, ...] = field(default=())  # why trials would wait PENDING

    @property
    def schedulable(self) -> bool:
        """At least one trial fits on the nodes up now (an autoscaler may add more later)."""
        return self.fit > 0


def node_from_ray(d: dict) -> Node:
    """A Node from one entry of `ray.nodes()`."""
    res = d.get("Resources") or {}
    acc = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
    return Node(node_id=d["NodeID"], ip=d["NodeManagerAddress"],
                hostname=d.get("NodeManagerHostname", ""), alive=bool(d["Alive"]),
                head="node:__internal_head__" in res, cpus=float(res.get("CPU", 0.0)),
                gpus=float(res.get("GPU", 0.0)), gpu_type=acc)


def cluster_facts() -> ClusterFacts:
    """The nodes of the Ray this process is connected to (head first, then by address)."""
    import ray

    nodes = [node_from_ray(d) for d in ray.nodes()]
    nodes.sort(key=lambda n: (not n.head, not n.alive, n.ip))
    return ClusterFacts(tuple(nodes))


def trial_request(spec) -> dict[str, float]:
    """The resources Ray reserves for each trial of the spec (what `tune.with_resources` gets)."""
    return {"CPU": float(spec.resources.cpu), "GPU": float(spec.resources.gpu)}


def fits_on(node: Node, request: dict[str, float]) -> int | None:
    """How many trials with `request` fit on `node` at once; None when unbounded (asks 0)."""
    have = {"CPU": node.cpus, "GPU": node.gpus}
    counts = [math.floor(have[k] / v + 1e-9) for k, v in request.items() if v > 0]
    return min(counts) if counts else None


def _fmt(x: float) -> str:
    return f"{x:g}"


# what doctor cannot see from the nodes up now, said wherever a request does not fit them
AUTOSCALE = ("if this cluster autoscales (ray up with cluster/aws.yaml or gcp.yaml, KubeRay), "
             "trials wait PENDING until it starts a worker that holds the request, which needs "
             "such a worker type in its config (gpu_1x / gpu_8x; the KubeRay GPU group); with "
             "no such type, or no autoscaler, they stay PENDING forever")


def schedule(spec, facts: ClusterFacts) -> Schedule:
    """Trials of `spec` that fit at once on the nodes of `facts` that are up now, and every
    reason trials would wait PENDING."""
    req = trial_request(spec)
    alive = facts.alive
    per = {n.ip: fits_on(n, req) for n in alive}
    unbounded = any(v is None for v in per.values())
    fit = spec.num_samples if unbounded else sum(per.values())
    cap = min(spec.searcher.max_concurrent, spec.num_samples)
    concurrent = min(fit, cap)
    reasons: list[str] = []
    if not alive:
        reasons.append("no node of the cluster is alive; start the cluster (ray up / "
                       "cluster/local-cluster.sh up) and run doctor again")
    elif fit == 0:
        for key, label, sec in (("GPU", "GPU", "gpu"), ("CPU", "CPUs", "cpu")):
            want = req[key]
            if want <= 0:
                continue
            total = facts.gpus if key == "GPU" else facts.cpus
            largest = max((n.gpus if key == "GPU" else n.cpus) for n in alive)
            if total == 0:
                reasons.append(f"each trial asks for {_fmt(want)} {label} (resources.{sec}: "
                               f"{_fmt(want)}) but no node up now has any {label}; "
                               f"{AUTOSCALE}"
                               + ("; set resources.gpu: 0 to run on CPU" if key == "GPU"
                                  else ""))
            elif largest < want:
                reasons.append(f"each trial asks for {_fmt(want)} {label} but the largest "
                               f"node up now has {_fmt(largest)} (cluster total {_fmt(total)}); "
                               f"a trial must fit on ONE node: lower resources.{sec} to "
                               f"<= {_fmt(largest)}; {AUTOSCALE}")
        if not reasons:
            reasons.append(f"no single node up now has both {_fmt(req['CPU'])} CPUs and "
                           f"{_fmt(req['GPU'])} GPU for one trial (nodes: "
                           + ", ".join(f"{n.ip} {_fmt(n.cpus)} CPU/{_fmt(n.gpus)} GPU"
                                       for n in alive) + f"); {AUTOSCALE}")
    elif fit < cap:
        reasons.append(f"only {fit} trial(s) fit at once on the nodes up now but "
                       f"searcher.max_concurrent is {spec.searcher.max_concurrent}: {cap - fit} "
                       f"wait PENDING for a free slot (normal; an autoscaler may add nodes, or "
                       f"lower resources to run more at once)")
    gpu = req["GPU"]
    if RESOURCE_GRANULARITY <= gpu < 1 and not math.isclose(1 / gpu, round(1 / gpu)):
        per_gpu = math.floor(1 / gpu + 1e-9)
        reasons.append(f"resources.gpu {_fmt(gpu)} does not divide a GPU: {per_gpu} trials per "
                       f"GPU leave {_fmt(1 - per_gpu * gpu)} of each GPU idle; use 1/k (0.5, "
                       f"0.25, ...)")
    return Schedule(request=req, per_node={k: (spec.num_samples if v is None else v)
                                           for k, v in per.items()},
                    fit=fit, concurrent=concurrent, reasons=tuple(reasons))


# --- checks run on every node: input files, shared storage ---------------------------------
def _identity(uri: str, ip: str) -> str:
    return uri


def _files_probe(ip: str, paths: list[str]) -> dict:
    """Runs ON a node: which of `paths` it cannot read."""
    import os

    missing = [p for p in paths if not os.access(p, os.R_OK)]
    return {"ip": ip, "ok": not missing, "why": ", ".join(missing)}


def input_files(spec) -> list[str]:
    """Files a trial reads on its node: the problem image, as the spec names it (relative
    paths resolve against the trial's working directory, not the driver's)."""
    image = str(spec.problem.get("image", "") or "")
    return [image] if image and ":" not in image.split("/", 1)[0] else []


def check_inputs_on_all_nodes(spec, timeout_s: float = 60.0) -> dict[str, str]:
    """Nodes that cannot read the spec's input files: {ip: the missing paths}."""
    paths = input_files(spec)
    if not paths:
        return {}
    answers = on_every_node(_files_probe, cluster_facts().alive, timeout_s, paths)
    return {ip: a["why"] for ip, a in answers.items() if not a["ok"]}


def _node_probe(ip: str, uri: str, token: str, view: Callable[[str, str], str],
                options=None) -> dict:
    """Runs ON a node: read the driver's marker, write this node's own. Never raises."""
    from dipddpm.dataset.storage import resolve

    seen = view(uri, ip)
    try:
        loc = resolve(seen, options)
        got = loc.child(f"{MARKER}-{token}").read_text()
        if got != token:
            return {"ip": ip, "ok": False, "why": f"{seen}: the marker holds other content"}
        loc.child(f"{MARKER}-{token}-{ip}").write_text(token)
        return {"ip": ip, "ok": True, "why": ""}
    except Exception as e:  # FileNotFoundError, permissions, credentials, network
        first = (str(e).strip().splitlines() or [""])[0]
        return {"ip": ip, "ok": False, "why": f"{seen}: {type(e).__name__}: {first}"}


def on_every_node(fn: Callable, nodes, timeout_s: float, *args) -> dict[str, dict]:
    """Run `fn(ip, *args)` once on each node (pinned by its node:<ip> resource, 0 CPUs, so a
    busy node answers too); answers by ip. A node whose task fails or does not answer in
    `timeout_s` gets {"ok": False, "why": ...}."""
    import ray

    task = ray.remote(num_cpus=0, max_retries=0)(fn)
    refs = {task.options(resources={f"node:{n.ip}": PIN}).remote(n.ip, *args):
            n.ip for n in nodes}
    done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    answers = {}
    for ref in done:
        try:
            answers[refs[ref]] = ray.get(ref)
        except Exception as e:  # the node died, or the task could not run there
            answers[refs[ref]] = {"ip": refs[ref], "ok": False,
                                  "why": f"task failed: {type(e).__name__}"}
    for ref in pending:
        ray.cancel(ref, force=True)
        answers[refs[ref]] = {"ip": refs[ref], "ok": False,
                              "why": f"no answer in {timeout_s:g} s"}
    return answers


def check_storage_on_all_nodes(storage: str, timeout_s: float = 60.0,
                               view: Callable[[str, str], str] | None = None,
                               options=None) -> list[str]:
    """Check that the driver and every alive node of the connected Ray cluster read and write
    `storage` (a local/NFS path or s3://, gs://, ... URI). Returns the node addresses checked;
    raises DipddpmError naming every node that cannot.

    `view(uri, node_ip) -> uri` is how a node sees the storage (default: as the driver does);
    tests pass one that gives one node its own directory to simulate an unshared path;
    `options`: the spec's storage_options (an s3:// endpoint and region).
    """
    from dipddpm.dataset.storage import resolve

    view = view or _identity
    loc = resolve(storage, options)
    token = uuid.uuid4().hex
    marker = loc.child(f"{MARKER}-{token}")
    made = _first_missing(loc)  # a directory the marker creates; removed again afterwards
    try:
        marker.write_text(token)
    except Exception as e:
        raise DipddpmError(f"storage {loc.uri}: the driver cannot write to it ({type(e).__name__}"
                           f": {first_line(e)}); pass --storage with a "
                           f"writable shared path or s3:// / gs:// URI") from None
    nodes = list(cluster_facts().alive)
    try:
        answers = on_every_node(_node_probe, nodes, timeout_s, loc.uri, token, view,
                                options)
        bad = []
        for n in nodes:
            a = answers[n.ip]
            if a["ok"] and not _read_back(loc, token, n.ip):
                a = {**a, "ok": False,
                     "why": "the driver cannot see the marker this node wrote"}
            if not a["ok"]:
                bad.append(f"{n.ip} ({a['why']})")
    finally:
        _cleanup(loc, token, [n.ip for n in nodes], made)
    if bad:
        raise DipddpmError(
            f"storage {loc.uri} is not shared by every node: {len(bad)} of {len(nodes)} "
            f"node(s) cannot use it: {'; '.join(bad)}. Trials checkpoint and write images from "
            f"their node: use a path mounted on every node (NFS) or s3:// / gs:// storage "
            f"(--storage), see cluster/README.md")
    return [n.ip for n in nodes]


def _read_back(loc, token: str, ip: str) -> bool:
    try:
        return loc.child(f"{MARKER}-{token}-{ip}").read_text() == token
    except Exception:
        return False


def _first_missing(loc) -> str | None:
    """The highest missing directory of a local `loc` (None if it exists or is remote)."""
    if not loc.local:
        return None
    p, missing = Path(loc.path), None
    while not p.exists():
        p, missing = p.parent, p
    return None if missing is None else str(missing)


def _cleanup(loc, token: str, ips: list[str], made: str | None) -> None:
    """Delete the markers, and the directories the check created if they are empty again."""
    for name in [f"{MARKER}-{token}", *(f"{MARKER}-{token}-{ip}" for ip in ips)]:
        try:
            loc.fs.delete_file(loc.child(name).path)
        except Exception:
            pass  # never written (that node failed) or already gone
    if made is not None:
        p = Path(loc.path)
        while True:
            try:
                p.rmdir()  # only succeeds on an empty directory
            except OSError:
                break
            if str(p) == made:
                break
            p = p.parent


# --- doctor -------------------------------------------------------------------------------
def doctor(spec=None, storage: str | None = None, timeout_s: float = 60.0) -> dict:
    """Everything `dipddpm cluster doctor` reports, as one JSON-ready dict (Ray connected)."""
    from dataclasses import asdict

    facts = cluster_facts()
    out: dict = {"nodes": [asdict(n) for n in facts.nodes],
                 "alive": len(facts.alive), "cpus": facts.cpus, "gpus": facts.gpus,
                 "ok": bool(facts.alive)}
    if spec is not None:
        s = schedule(spec, facts)
        out["spec"] = {"name": spec.name, "request": s.request, "per_node": s.per_node,
                       "fit": s.fit, "concurrent": s.concurrent,
                       "max_concurrent": spec.searcher.max_concurrent,
                       "num_samples": spec.num_samples, "schedulable": s.schedulable,
                       "pending_reasons": list(s.reasons)}
        missing = check_inputs_on_all_nodes(spec, timeout_s=timeout_s)
        out["inputs"] = {"files": input_files(spec), "missing": missing}
        out["ok"] = out["ok"] and s.schedulable and not missing
    if storage is not None:
        try:
            nodes = check_storage_on_all_nodes(storage, timeout_s=timeout_s)
            out["storage"] = {"uri": storage, "ok": True, "nodes": nodes, "error": None}
        except DipddpmError as e:
            out["storage"] = {"uri": storage, "ok": False, "nodes": [], "error": str(e)}
            out["ok"] = False
    return out
