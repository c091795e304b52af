"""Cluster facts for a sweep: how many trials fit, why they would wait PENDING, the storage
check, `dipddpm cluster doctor`, and the GPU a trial uses (fractions pack, never device 0)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from dipddpm.cli import app
from dipddpm.cluster.devices import local_ordinal, trial_device
from dipddpm.cluster.doctor import ClusterFacts, Node, check_storage_on_all_nodes, schedule
from dipddpm.errors import DipddpmError
from dipddpm.sweep.spec import parse_spec

runner = CliRunner()


def spec_dict(cpu=1.0, gpu=0.0, max_concurrent=4, num_samples=8, storage="results") -> dict:
    return {"name": "doc", "method": "dip", "metric": "psnr_best",
            "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
            "fixed": {"iters": 20, "width": 8, "depth": 2, "input_depth": 4},
            "search": {"lr": {"loguniform": [0.001, 0.01]}},
            "searcher": {"type": "optuna", "max_concurrent": max_concurrent},
            "scheduler": {"type": "none"}, "resources": {"cpu": cpu, "gpu": gpu},
            "num_samples": num_samples, "storage": storage}


def node(ip, cpus, gpus, head=False, alive=True) -> Node:
    return Node(node_id=ip, ip=ip, hostname="h", alive=alive, head=head, cpus=cpus, gpus=gpus,
                gpu_type="A10G" if gpus else None)


CPU_ONLY = ClusterFacts((node("10.0.0.1", 4, 0, head=True), node("10.0.0.2", 4, 0)))
TWO_GPU_NODES = ClusterFacts((node("10.0.0.1", 0, 0, head=True), node("10.0.0.2", 8, 1),
                              node("10.0.0.3", 8, 1), node("10.0.0.4", 8, 1, alive=False)))


def test_one_gpu_per_trial_does_not_fit_a_cpu_cluster_and_says_what_autoscaling_needs():
    s = schedule(parse_spec(spec_dict(gpu=1)), CPU_ONLY)
    assert s.fit == 0 and s.concurrent == 0 and not s.schedulable
    assert s.request == {"CPU": 1.0, "GPU": 1.0}
    (why,) = s.reasons
    # judged on the nodes up now: an autoscaler may still add a GPU worker type
    assert "no node up now has any GPU" in why and "resources.gpu: 0" in why
    assert "if this cluster autoscales" in why and "worker type" in why


def test_gpu_below_rays_smallest_amount_is_a_spec_error():
    from dipddpm.errors import ConfigError

    with pytest.raises(ConfigError, match="below Ray's granularity"):  # Ray would reject it,
        parse_spec(spec_dict(cpu=1, gpu=0.00005))  # not pack 20000 trials on a GPU
    assert schedule(parse_spec(spec_dict(cpu=1, gpu=0.0001)), TWO_GPU_NODES).fit == 16


def test_fractional_gpus_pack_on_alive_nodes_only():
    spec = parse_spec(spec_dict(cpu=2, gpu=0.25, max_concurrent=16, num_samples=16))
    s = schedule(spec, TWO_GPU_NODES)
    assert s.per_node == {"10.0.0.1": 0, "10.0.0.2": 4, "10.0.0.3": 4}  # 4 per GPU; dead excluded
    assert s.fit == 8 and s.concurrent == 8
    assert any("8 trial(s) fit at once" in r for r in s.reasons)  # max_concurrent 16 > 8


def test_cpus_limit_packing_before_gpus_do():
    s = schedule(parse_spec(spec_dict(cpu=4, gpu=0.25)), TWO_GPU_NODES)
    assert s.per_node["10.0.0.2"] == 2 and s.fit == 4


def test_a_trial_larger_than_any_node_names_the_largest_node():
    s = schedule(parse_spec(spec_dict(cpu=6)), CPU_ONLY)
    assert s.fit == 0
    assert "largest node up now has 4" in s.reasons[0] and "ONE node" in s.reasons[0]


def test_gpu_fraction_that_does_not_divide_a_gpu_is_flagged():
    s = schedule(parse_spec(spec_dict(cpu=1, gpu=0.3)), TWO_GPU_NODES)
    assert s.per_node["10.0.0.2"] == 3 and s.schedulable
    assert any("does not divide a GPU" in r for r in s.reasons)


def test_cpu_only_trials_fit_by_cpu_count():
    s = schedule(parse_spec(spec_dict(cpu=1, max_concurrent=2, num_samples=3)), CPU_ONLY)
    assert s.fit == 8 and s.concurrent == 2 and s.reasons == ()


def test_local_ordinal_follows_cuda_visible_devices_not_device_zero():
    assert local_ordinal(3, None) == 3  # every GPU visible: the id is the ordinal
    assert local_ordinal(3, "") == 3
    assert local_ordinal(3, "3") == 0  # Ray's default: only the assigned GPU is visible
    assert local_ordinal("5", "4,5,6") == 1
    assert local_ordinal("GPU-ab", "GPU-cd,GPU-ab") == 1
    with pytest.raises(RuntimeError, match="hides it"):
        local_ordinal(2, "0,1")


def test_trial_device_is_cpu_without_a_gpu_request():
    assert trial_device(0.0).type == "cpu"


@pytest.mark.ray
def test_doctor_explains_why_a_gpu_spec_would_stay_pending(ray_local, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(spec_dict(gpu=1, storage=str(tmp_path / "store"))))
    res = runner.invoke(app, ["cluster", "doctor", str(path)])
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())  # rich wraps long lines
    assert "127.0.0.2 (head)" in out
    assert "each trial asks for 1 CPU, 1 GPU; 0 fit at once" in out
    assert "does not fit the nodes up now" in out and "no node up now has any GPU" in out
    assert "reachable from the driver and every node (127.0.0.2)" in out
    assert not (tmp_path / "store").exists()  # the check wrote nothing lasting

    res = runner.invoke(app, ["cluster", "doctor", str(path), "--smoke"])
    assert res.exit_code == 2 and "smoke:" in res.output  # no smoke: block: a user error
    res = runner.invoke(app, ["cluster", "doctor", str(path), "--json"])
    report = json.loads(res.stdout)
    assert report["ok"] is False and report["gpus"] == 0
    assert report["spec"]["fit"] == 0 and report["spec"]["schedulable"] is False
    assert report["storage"]["ok"] is True and report["storage"]["nodes"] == ["127.0.0.2"]


@pytest.mark.ray
def test_doctor_passes_a_cpu_spec(ray_local, tmp_path):
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(spec_dict(cpu=1, max_concurrent=2,
                                             storage=str(tmp_path / "store"))))
    report = json.loads(runner.invoke(app, ["cluster", "doctor", str(path), "--json"]).stdout)
    assert report["ok"] is True
    assert report["spec"]["fit"] == ray_local.cluster_resources()["CPU"]
    assert report["spec"]["concurrent"] == 2


@pytest.mark.ray
def test_storage_unreachable_from_a_node_is_named(ray_local, tmp_path):
    shared = tmp_path / "shared"

    def per_node_view(uri: str, ip: str) -> str:  # this node sees its own, empty directory
        return uri.replace("/shared", f"/only-{ip}")

    with pytest.raises(DipddpmError) as e:
        check_storage_on_all_nodes(str(shared / "sweep"), view=per_node_view, timeout_s=60)
    msg = str(e.value)
    assert "1 of 1 node(s) cannot use it" in msg and "127.0.0.2 (" in msg
    assert "FileNotFoundError" in msg and "only-127.0.0.2" in msg
    assert not shared.exists()  # nothing half-written: the marker's directories are gone
    shared.mkdir()
    assert check_storage_on_all_nodes(str(shared)) == ["127.0.0.2"]
    assert list(shared.iterdir()) == []  # markers cleaned up after a pass
