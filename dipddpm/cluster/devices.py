"""The CUDA device of a trial: the GPU Ray assigned to it, never blindly device 0.

Ray gives a trial asking `resources.gpu: g` a GPU id (fractions pack: g = 0.25 puts four
trials on one GPU, all sharing its memory and compute) and, by default, sets
CUDA_VISIBLE_DEVICES to the ids it assigned, so torch sees that GPU as ordinal 0. With
RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES=1, or a CUDA_VISIBLE_DEVICES that lists several
GPUs, ordinal 0 is someone else's GPU: the ordinal is the position of Ray's id in
CUDA_VISIBLE_DEVICES (or the id itself when every GPU is visible).

`trial_device(g)` makes that device torch's current device, so the methods' `pick_device()`
(the current CUDA device) lands on it, and with a fraction caps the trial's share of the GPU's
memory at g, so one greedy trial fails alone instead of starving its neighbours. A fused
trial plans its memory on that cap, not on the device's free memory, which every trial started
at the same time sees whole (methods/fusion.py, `GpuMemory`): one that would not fit under its
cap runs its members one after the other instead of failing out of memory.
"""

from __future__ import annotations

import os

RESOURCE_GRANULARITY = 0.0001  # the smallest fraction of a CPU or GPU Ray schedules


def local_ordinal(gpu_id: str | int, visible: str | None) -> int:
    """torch's ordinal of Ray GPU `gpu_id`, given CUDA_VISIBLE_DEVICES (None: all visible)."""
    if visible is None or not visible.strip():
        return int(gpu_id)
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    try:
        return ids.index(str(gpu_id))
    except ValueError:
        raise RuntimeError(f"Ray assigned GPU {gpu_id} but CUDA_VISIBLE_DEVICES={visible!r} "
                           f"hides it; unset CUDA_VISIBLE_DEVICES before starting the Ray "
                           f"node") from None


def trial_device(gpu: float, cap_memory: bool = True):
    """The torch device for a trial with `resources.gpu: gpu` (CPU when 0 or no CUDA)."""
    import torch

    if gpu <= 0 or not torch.cuda.is_available():
        return torch.device("cpu")
    try:
        import ray

        ids = ray.get_gpu_ids() if ray.is_initialized() else []
    except ImportError:
        ids = []
    if ids:
        ordinal = local_ordinal(ids[0], os.environ.get("CUDA_VISIBLE_DEVICES"))
    else:  # outside Ray: whatever device the caller made current
        ordinal = torch.cuda.current_device()
    torch.cuda.set_device(ordinal)
    if cap_memory and gpu < 1:
        torch.cuda.set_per_process_memory_fraction(gpu, ordinal)
    return torch.device("cuda", ordinal)
