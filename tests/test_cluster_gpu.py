"""GPU packing on a real GPU (skipped without CUDA; run on a GPU machine with `pytest -m gpu`):
Ray tasks asking for a fraction of a GPU get the GPU Ray assigned, as torch's current device,
with their memory capped at their share; a sweep at 0.5 GPU per trial runs two trials per
GPU and records the GPU in Parquet."""

from __future__ import annotations

import pytest
import torch
import yaml

pytestmark = [pytest.mark.gpu, pytest.mark.ray,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_fractional_gpu_tasks_use_the_assigned_device(ray_local):
    if ray_local.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("the session's Ray sees no GPU")

    @ray_local.remote(num_gpus=0.25, num_cpus=0)
    def probe():
        import os

        import ray

        from dipddpm.methods.fitting import pick_device
        from dipddpm.sweep.devices import local_ordinal, trial_device

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


def test_half_gpu_sweep_records_the_gpu(ray_local, tmp_path):
    from dipddpm.sweep.runner import run_sweep

    if ray_local.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("the session's Ray sees no GPU")
    spec = {"name": "half", "method": "dip", "metric": "psnr_best",
            "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
            "fixed": {"iters": 40, "width": 8, "depth": 2, "input_depth": 4,
                      "report_every": 10},
            "search": {"lr": {"loguniform": [0.001, 0.01]}},
            "searcher": {"type": "optuna", "max_concurrent": 2}, "scheduler": {"type": "none"},
            "resources": {"cpu": 1, "gpu": 0.5}, "num_samples": 2}
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_sweep(path, storage=str(tmp_path / "store"))
    assert [r["status"] for r in out.rows] == ["COMPLETED", "COMPLETED"]
    assert all(r["gpu"] == torch.cuda.get_device_name(0) for r in out.rows)
