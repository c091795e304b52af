"""Three hosts in network namespaces (tests/netns_cluster.py), token auth on, and a real network
fault: mid-sweep a worker's link is cut at the switch, not its processes killed.

(a) the sweep completes: the trial that was on the cut worker is retried from its checkpoint on
    another host; every trial appears once and every report exactly once;
(b) a driver without the cluster's token is refused in one line that says how to give it;
(c) when the link comes back the cut worker either rejoins or, marked dead by the GCS, exits
    and a fresh node started on that host joins in its place: the test records which.

What it measured (detection time, retried trials, rejoin or replace) is printed and written to
the fixture's folder as partition.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns_cluster import BIN, HOSTS, NetnsCluster, unavailable
from test_cluster_multinode import later_checkpoints, read, write_spec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
BUDGET, SAMPLES, EVERY = 600, 3, 30
W1 = HOSTS["worker1"][1]


@pytest.fixture(scope="module")
def cluster():
    why = unavailable()
    if why:
        pytest.skip(why)
    c = NetnsCluster(Path(tempfile.mkdtemp(prefix="dpn", dir="/tmp")))
    try:
        yield c.up()
    finally:
        c.down()
        shutil.rmtree(c.dir, ignore_errors=True)
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert c.prefix not in leftover.stdout, leftover.stdout  # every namespace removed


@dataclass
class Partition:
    rc: int
    log: str
    sweep: Path
    cut_at: float
    detected_s: float | None


def nodes_alive(c: NetnsCluster) -> dict[str, bool]:
    """Node address -> whether a live node has it, as the head's GCS sees it (a Ray state
    query from the head's namespace; a replaced node leaves its dead entry beside the new)."""
    code = ("import json, ray; ray.init(address='auto', log_to_driver=False); alive = {}\n"
            "for n in ray.nodes():\n"
            "    a = n['NodeManagerAddress']; alive[a] = alive.get(a, False) or n['Alive']\n"
            "print(json.dumps(alive))")
    res = subprocess.run(["ip", "netns", "exec", c.ns("head"), str(BIN / "python"), "-c", code],
                         env={**c.env(), "RAY_ADDRESS": c.address}, capture_output=True,
                         text=True, timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def wait_for(pred, timeout: float, step: float = 1.0) -> float | None:
    """Seconds until `pred()` held, or None after `timeout`."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return time.time() - t0
        time.sleep(step)
    return None


@pytest.fixture(scope="module")
def partition(cluster, tmp_path_factory) -> Partition:
    """Three one-CPU trials on three one-CPU hosts (one each); once every trial holds a later
    checkpoint, worker1's link is cut; the test waits for the GCS to mark it dead."""
    from dipddpm.sweep.spec import load_spec

    tmp = tmp_path_factory.mktemp("partition")
    spec = write_spec(tmp / "s.yaml", "part", 2000, 64, 16, 6,
                      smoke={"num_samples": SAMPLES, "problem": {"size": 32},
                             "fixed": {"iters": BUDGET, "width": 8},
                             "checkpoint_every": EVERY})
    sweep = tmp / "store" / load_spec(spec, smoke=True).name
    cmd = cluster.driver("sweep", "run", str(spec), "--smoke", "--address", cluster.address,
                         "--storage", str(tmp / "store"))
    with open(tmp / "driver.log", "w") as log:
        driver = subprocess.Popen(cmd, env=cluster.env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = wait_for(lambda: driver.poll() is not None
                             or len(later_checkpoints(sweep)) >= SAMPLES, 300, 0.2)
            finished = list((sweep / "trials").glob("*.parquet"))
            assert ready is not None and not finished and driver.poll() is None, (
                "the three trials were not all running with a checkpoint at once; "
                + (tmp / "driver.log").read_text()[-3000:])
            cluster.cut("worker1")
            cut_at = time.time()
            detected = wait_for(lambda: nodes_alive(cluster).get(W1) is False, 180, 0.5)
            rc = driver.wait(timeout=600)
        finally:
            if driver.poll() is None:
                driver.kill()
    return Partition(rc, (tmp / "driver.log").read_text(), sweep, cut_at, detected)


def test_cut_link_trial_retried_from_checkpoint_elsewhere(partition):
    p = partition
    assert p.rc == 0, p.log[-4000:]
    assert p.detected_s is not None, "the GCS never marked the cut worker dead"
    trials = read(p.sweep, "trials")
    assert len(trials) == SAMPLES and trials["trial_id"].is_unique  # nothing lost or doubled
    assert set(trials["status"]) == {"COMPLETED"}, trials[["trial_id", "status", "error"]]
    assert set(trials["iters_done"]) == {BUDGET}
    cols = ["trial_id", "node_ip", "retries", "resumed_from_iter"]
    moved = trials[trials["retries"] >= 1]
    assert len(moved) == 1, trials[cols]  # the cut worker's trial, and only it
    (resumed,) = moved["resumed_from_iter"]
    assert resumed > 0 and resumed % EVERY == 0, trials[cols]  # from a checkpoint
    assert W1 not in set(moved["node_ip"])  # finished on a host that can be reached
    assert set(trials[trials["retries"] == 0]["resumed_from_iter"]) == {0}, trials[cols]
    metrics = read(p.sweep, "metrics")
    assert not metrics.duplicated(["trial_id", "iter", "metric"]).any()
    every_report = list(range(10, BUDGET + 1, 10))
    for tid in trials["trial_id"]:
        mine = metrics[metrics.trial_id == tid]
        assert sorted(mine[mine.metric == "psnr_gt"].iter) == every_report, tid
    (p.sweep.parent / "partition.json").write_text(json.dumps(
        {"detected_s": p.detected_s, "retried_trials": len(moved),
         "resumed_from_iter": int(resumed)}))
    print(f"\npartition detected after {p.detected_s:.1f} s; {len(moved)} trial retried "
          f"from iteration {resumed}")


def test_client_without_token_refused_in_one_line(cluster):
    res = subprocess.run(cluster.driver("cluster", "doctor", "--address", cluster.address),
                         env=cluster.env(token=False), capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "requires its authentication token" in lines[0], res.stderr


def test_healed_worker_rejoins_or_is_replaced(cluster, partition):
    cluster.heal("worker1")
    # Ray's GCS never takes back a node it marked dead: its raylet, reconnecting, is told so
    # and exits (the `ray start --block` with it). Either outcome is recorded.
    rejoined = wait_for(lambda: nodes_alive(cluster).get(W1) is True, 30)
    outcome = "rejoined"
    if rejoined is None:
        gone = wait_for(lambda: not cluster.alive("worker1"), 120)
        assert gone is not None, "the cut worker neither rejoined nor exited"
        cluster.start("worker1")  # a fresh node on the same host
        replaced = wait_for(lambda: nodes_alive(cluster).get(W1) is True, 120)
        assert replaced is not None, "a fresh node on the healed host did not join"
        outcome = "replaced"
    print(f"\nhealed worker: {outcome}")
    assert outcome in ("rejoined", "replaced")
