"""GPU packing on a real GPU (skipped without CUDA; run on a GPU machine with `pytest -m gpu`):
Ray tasks asking for a fraction of a GPU get the GPU Ray assigned, as torch's current device,
with their memory capped at their share; two half-GPU tasks run on ONE GPU at the same time;
a sweep at 0.5 GPU per trial runs its two trials at once and records the GPU each used. No
test assumes the GPU is device 0: whatever Ray assigns is what is checked."""

from __future__ import annotations

import pytest
import torch
import yaml

pytestmark = [pytest.mark.gpu, pytest.mark.ray,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def needs_a_gpu(ray_local) -> float:
    gpus = ray_local.cluster_resources().get("GPU", 0)
    if gpus < 1:
        pytest.skip("the session's Ray sees no GPU")
    return gpus


def overlap(a: tuple, b: tuple) -> float:
    """Seconds the intervals (start, end) a and b have in common (<= 0: none)."""
    return min(a[1], b[1]) - max(a[0], b[0])


def test_fractional_gpu_tasks_use_the_assigned_device(ray_local):
    needs_a_gpu(ray_local)

    @ray_local.remote(num_gpus=0.25, num_cpus=0)
    def probe():
        import os

        import ray

        from dipddpm.cluster.devices import local_ordinal, trial_device
        from dipddpm.methods.device import pick_device

        dev = trial_device(0.25)
        x = torch.ones(4, device=pick_device())  # the methods' default device
        expected = local_ordinal(ray.get_gpu_ids()[0], os.environ.get("CUDA_VISIBLE_DEVICES"))
        total = torch.cuda.get_device_properties(dev).total_memory
        try:  # more than this trial's quarter of the GPU: refused by the cap
            torch.empty(int(0.3 * total), dtype=torch.uint8, device=dev)
            capped = False
        except torch.OutOfMemoryError:
            capped = True
        return dev.index, x.device.index, expected, capped

    for dev_index, used_index, expected, capped in ray_local.get(
            [probe.remote() for _ in range(4)]):
        assert dev_index == used_index == expected and capped


def test_two_half_gpu_tasks_compute_on_one_gpu_at_the_same_time(ray_local):
    """Packing, shown directly: each task works on its device for 3 s and reports which GPU
    (node, Ray's GPU id, the device's UUID) and when; both ran on the same GPU and overlapped."""
    needs_a_gpu(ray_local)

    @ray_local.remote(num_gpus=0.5, num_cpus=0)
    def busy(seconds: float):
        import time

        import ray

        from dipddpm.cluster.devices import trial_device

        dev = trial_device(0.5)
        a = torch.randn(512, 512, device=dev)
        torch.cuda.synchronize(dev)
        start = time.time()
        while time.time() - start < seconds:
            a = torch.tanh(a @ a)
            torch.cuda.synchronize(dev)
        gpu = (ray.get_runtime_context().get_node_id(), tuple(ray.get_gpu_ids()),
               str(torch.cuda.get_device_properties(dev).uuid))
        return gpu, (start, time.time())

    (gpu_a, span_a), (gpu_b, span_b) = ray_local.get([busy.remote(3.0), busy.remote(3.0)])
    assert gpu_a == gpu_b, (gpu_a, gpu_b)
    assert overlap(span_a, span_b) > 1.0, (span_a, span_b)


def test_half_gpu_sweep_runs_two_trials_at_once_and_records_their_gpu(ray_local, tmp_path):
    from dipddpm.sweep.runner import run_sweep

    gpus = needs_a_gpu(ray_local)
    spec = {"name": "half", "method": "dip", "metric": "psnr_best",
            "problem": {"image": "skimage:astronaut", "size": 64, "sigma": 25, "seed": 0},
            "fixed": {"iters": 400, "width": 16, "depth": 2, "input_depth": 4,
                      "report_every": 10},
            "search": {"lr": {"loguniform": [0.001, 0.01]}},
            "searcher": {"type": "optuna", "max_concurrent": 2}, "scheduler": {"type": "none"},
            "resources": {"cpu": 1, "gpu": 0.5}, "num_samples": 2}
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_sweep(path, storage=str(tmp_path / "store"))
    rows = out.rows
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    assert all(r["gpu"] in names for r in rows)  # a GPU of this machine, whichever it was
    a, b = ((r["started_at"].timestamp(), r["ended_at"].timestamp()) for r in rows)
    assert overlap(a, b) > 0, (a, b)  # both held their half GPU at the same time
    if gpus == 1:  # with one GPU in the session's Ray, both halves were that GPU
        assert rows[0]["node_id"] == rows[1]["node_id"] and rows[0]["gpu"] == rows[1]["gpu"]
