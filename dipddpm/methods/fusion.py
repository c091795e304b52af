"""Running K members of a trial (replicates: seeds of one image problem; later image sets):
fused or one after the other, the memory a fused run needs, and the choice between the two.

Policy: fused on CUDA (one launch feeds K fits). On CPU, whichever measured faster for the
net and size: `CPU_FUSED_FASTER` copies the verdicts of benchmarks/results/fusion-cpu.json
(`python benchmarks/fusion.py --device cpu`; a test checks the two agree).

Memory of a fused run: K times one member's, each member holding
    weights, gradients and Adam's two moments (+ the backtracking copy, + its two moments
    in 'clean' mode): 4 (to 7) x params x 4 bytes;
    the activations autograd keeps for backward (measured once on a small image with
    saved-tensor hooks; every one scales with H*W), times BACKWARD_FACTOR for the
    gradients that exist beside them during backward;
    the loop's own images (y, x, targets, outputs, smoothed output, metric buffers, z).
Measured CPU peaks are 0.9-1.4 x the estimate for the skip nets and up to 2.3 x for a small
U-Net (transient buffers are not modelled); tests/test_fusion_memory.py checks a factor 2.5.

Memory a fused run may use (`GpuMemory`): the device's free memory, except under a per-process
cap (a fractional GPU, cluster/devices.py), where it is the process's own share, the cap less its
CUDA context. Where the estimate does not fit, auto mode runs the members one after the other
(a study: chunked, methods/study_run.py); an explicit fused mode is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dipddpm.errors import DipddpmError
from dipddpm.methods.base import Result
from dipddpm.methods.device import pick_device
from dipddpm.methods.fitting import Member, MembersReport, fit, fit_members
from dipddpm.nn import build_net, min_size, n_params
from dipddpm.nn.fused import check_fusable

# (net kind, image side) -> fused beat serial at K = 4 by CPU_MARGIN on the committed CPU
# measurement (benchmarks/results/fusion-cpu.json; 1 torch thread on a shared 2-core machine)
CPU_FUSED_FASTER: dict[tuple[str, int], bool] = {
    ("small", 64): True, ("small", 128): True, ("small", 256): False,
    ("reference", 128): False, ("reference", 256): False}
CPU_MARGIN = 1.1  # fused must be this much faster: a few timed iterations are noisy
SMALL_NET_PARAMS = 200_000  # a "small" net for the policy: fewer parameters than this
GPU_MEMORY_MARGIN = 0.9  # a fused run may plan on this share of its memory budget
# the saved activations plus the gradients flowing back through them while backward runs
# (measured peaks on CPU: 1.4-1.7 x the saved activations alone for the skip nets)
BACKWARD_FACTOR = 1.6


def _activation_bytes_per_pixel(cfg, channels: int) -> float:
    """Bytes autograd saves for backward, per image pixel, for one member (one forward on
    the net's smallest legal image, scaled: every activation is proportional to H*W)."""
    net = build_net(cfg.net, cfg.input_depth, channels, cfg.width, cfg.depth, cfg.net_sigmoid)
    s = min_size(net)
    seen: dict[int, int] = {}  # storage -> bytes (in-place ops save one storage twice)
    weights = {p.untyped_storage().data_ptr() for p in net.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if t.ndim == 4 and ptr not in weights:  # not weights, nor BN's per-channel means
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    z = torch.rand(1, cfg.input_depth, s, s)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(z)
    total = sum(seen.values()) + out.numel() * out.element_size()
    return total / (s * s)


def member_bytes(cfg, channels: int, H: int, W: int) -> int:
    """The estimated memory of one member of a fused fit (see the module docstring)."""
    net = build_net(cfg.net, cfg.input_depth, channels, cfg.width, cfg.depth, cfg.net_sigmoid)
    copies = 4 + (1 if cfg.backtracking else 0) + (
        2 if cfg.backtracking and cfg.backtrack_mode == "clean" else 0)
    weights = copies * n_params(net) * 4
    loop_images = (12 * channels + 3 * cfg.input_depth) * H * W * 4
    activations = BACKWARD_FACTOR * _activation_bytes_per_pixel(cfg, channels) * H * W
    return int(weights + loop_images + activations)


def estimate_bytes(cfg, channels: int, H: int, W: int, members: int) -> int:
    """The estimated memory of a fused fit of `members` members."""
    return members * member_bytes(cfg, channels, H, W)


# the memory a CUDA context (with cuDNN and cuBLAS loaded) holds outside the caching
# allocator: about 0.3-0.6 GiB on current drivers; benchmarks/device_preflight.py measures it
CUDA_CONTEXT_BYTES = 512 * 2**20


@dataclass(frozen=True)
class GpuMemory:
    """What a fused run may plan on, as plain numbers (bytes; fraction in (0, 1]).

    free: the device's free memory now (every process on the device sees the same number);
    total: the device's memory; fraction: this process's cap, fraction x total, set by
    `torch.cuda.set_per_process_memory_fraction` for a fractional GPU (cluster/devices.py:
    a trial asking `resources.gpu: 0.25` shares the device with three others);
    context: the CUDA context, which lives outside the cap but takes the device's memory;
    allocated: what this process's allocator already holds.
    """

    total: int
    free: int
    fraction: float = 1.0
    context: int = CUDA_CONTEXT_BYTES
    allocated: int = 0

    @property
    def budget(self) -> int:
        """Bytes this process may plan on: the free memory, and under a cap (fraction < 1)
        at most its own share, fraction x total less its context and what it holds. Trials
        that start together all see the same free memory, so only the cap tells one of them
        what is its own."""
        if self.fraction >= 1:
            return max(0, self.free)
        own = int(self.fraction * self.total) - self.context - self.allocated
        return max(0, min(self.free, own))

    def describe(self) -> str:
        if self.fraction >= 1:
            return f"{self.free / 2**30:.2f} GiB of GPU memory is free"
        return (f"this process may use {self.budget / 2**30:.2f} GiB of GPU memory (its cap "
                f"{self.fraction:g} x {self.total / 2**30:.1f} GiB less its CUDA context and "
                f"what it holds; {self.free / 2**30:.2f} GiB free on the device)")


def gpu_memory(dev: torch.device) -> GpuMemory | None:
    """The numbers of `GpuMemory` for CUDA device `dev`, read from torch (None on CPU)."""
    if dev.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(dev)
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch>=2.7
    fraction = float(get_fraction(dev)) if get_fraction is not None else 1.0
    return GpuMemory(total=total, free=free, fraction=fraction,
                     allocated=torch.cuda.memory_allocated(dev))


def largest_fitting(cfg, channels: int, H: int, W: int, free: int | GpuMemory) -> int:
    """The most members whose fused fit is estimated to fit in `free` (bytes, or the
    budget of a `GpuMemory`)."""
    budget = free.budget if isinstance(free, GpuMemory) else free
    return int(budget * GPU_MEMORY_MARGIN) // member_bytes(cfg, channels, H, W)


def fused_fits(estimate: int, mem: GpuMemory) -> bool:
    """The decision, on numbers only: a fused run estimated at `estimate` bytes fits."""
    return estimate <= mem.budget * GPU_MEMORY_MARGIN


def too_big(cfg, channels: int, H: int, W: int, members: int,
            free: int | GpuMemory) -> DipddpmError:
    fits = min(largest_fitting(cfg, channels, H, W, free), members - 1)
    need = estimate_bytes(cfg, channels, H, W, members)
    have = free.describe() if isinstance(free, GpuMemory) else (
        f"{free / 2**30:.2f} GiB of GPU memory is free")
    return DipddpmError(
        f"{members} fused members of net {cfg.net!r} at {H}x{W} need about "
        f"{need / 2**30:.2f} GiB but {have}: the largest K that fits is {fits}; use at most "
        f"{fits} members (replicates)")


def check_memory(cfg, channels: int, H: int, W: int, members: int, dev: torch.device,
                 free: int | GpuMemory | None = None) -> None:
    """On CUDA (or with `free` given): refuse, in one line naming the largest K that fits, a
    fused run that would not fit in the memory this process may use (`GpuMemory.budget`:
    under a fractional GPU's cap, its own share, not the device's free memory)."""
    if free is None:
        free = gpu_memory(dev)
        if free is None:
            return
    mem = free if isinstance(free, GpuMemory) else GpuMemory(total=free, free=free)
    if not fused_fits(estimate_bytes(cfg, channels, H, W, members), mem):
        raise too_big(cfg, channels, H, W, members, mem)


def net_kind(cfg, channels: int) -> str:
    net = build_net(cfg.net, cfg.input_depth, channels, cfg.width, cfg.depth, cfg.net_sigmoid)
    return "small" if n_params(net) < SMALL_NET_PARAMS else "reference"


def cpu_verdicts(rows: list[dict]) -> dict[tuple[str, int], bool]:
    """The policy table from fusion benchmark rows: per (net kind, size), fused K = 4's
    trial-iterations/s at least CPU_MARGIN times one fit's."""
    return {("small" if r["net"].startswith("small") else "reference", int(r["size"])):
            r["speedup"] >= CPU_MARGIN for r in rows if r["K"] == 4}


def fused_is_faster(cfg, channels: int, H: int, dev: torch.device) -> bool:
    """The policy: fused on CUDA; on CPU the committed measurement of the nearest size."""
    if dev.type == "cuda":
        return True
    kind = net_kind(cfg, channels)
    sizes = sorted(s for k, s in CPU_FUSED_FASTER if k == kind)
    if not sizes:
        return False
    nearest = min(sizes, key=lambda s: abs(s - H))
    return CPU_FUSED_FASTER[(kind, nearest)]


MODES = ("auto", "fused", "serial")  # --fusion, resolve_mode


def resolve_mode(cfg, members: list[Member], dev: torch.device, mode: str = "auto") -> str:
    """'fused' or 'serial' for these members: auto follows the policy (one member: serial,
    the plain fit). Fused needs a net that can be fused (one line naming it otherwise)."""
    if mode not in MODES:
        raise DipddpmError(f"fusion mode must be auto, fused or serial, got {mode!r}")
    C, H, _ = members[0].problem.observed.shape
    if mode == "auto":
        mode = "fused" if len(members) > 1 and fused_is_faster(cfg, C, H, dev) else "serial"
    if mode == "fused":
        net = build_net(cfg.net, cfg.input_depth, C, cfg.width, cfg.depth, cfg.net_sigmoid)
        check_fusable(net, cfg.net)
    return mode


def fusion_mode(cfg, members: list[Member], dev: torch.device, mode: str = "auto",
                resuming: bool = False) -> str:
    """The one decision whether members run fused: 'fused' or 'serial'. The policy
    (`resolve_mode`: auto follows `fused_is_faster`; fused needs a net that can be fused),
    then the memory (`check_memory`): where a fused run would not fit in this process's GPU
    memory, auto runs one after the other, while an explicit fused mode, or the resume of a
    fused run (its state is one fused net's: it resumes fused or not at all), is refused in
    one line naming the largest K that fits. Every caller asks here: `run_members`, a study
    trial (methods/study_run.py), `dipddpm fit --replicates`."""
    chosen = resolve_mode(cfg, members, dev, "fused" if resuming else mode)
    if chosen != "fused":
        return chosen
    C, H, W = members[0].problem.observed.shape
    try:
        check_memory(cfg, C, H, W, len(members), dev)
    except DipddpmError:
        if mode == "fused" or resuming:
            raise
        return "serial"
    return chosen


def run_fused(cfg, members: list[Member], report: MembersReport | None = None,
              device=None, resume: dict | None = None) -> list[Result]:
    """The members as one fused net (`fit_members`), from the fused loop state `resume` when
    given; a CUDA out-of-memory error becomes the one-line rule. The fused run of
    `run_members` and of a study trial (methods/study_run.py)."""
    dev = pick_device(device)
    C, H, W = members[0].problem.observed.shape
    return _oom_as_rule(lambda: fit_members(cfg, members, report, resume=resume, device=dev),
                        cfg, C, H, W, len(members), dev)


def run_members(cfg, members: list[Member], report: MembersReport | None = None,
                device=None, mode: str = "auto", resume: dict | None = None) -> list[Result]:
    """Run the members fused or one after the other, as `fusion_mode` decides (mode auto,
    fused or serial). A serial run reports member i's metrics at index i of the list (the
    others empty). `resume`: a fused run's loop state (the `state()` its report gave), from
    which the run goes on fused (or is refused in one line where it no longer fits)."""
    dev = pick_device(device)
    if fusion_mode(cfg, members, dev, mode, resuming=resume is not None) == "fused":
        return run_fused(cfg, members, report, dev, resume)
    out = []
    for i, m in enumerate(members):
        def one(it, metrics, state, i=i):
            if report is not None:
                report(it, [metrics if k == i else {} for k in range(len(members))], state)

        out.append(fit(cfg, m.problem, m.plan, one, seed=m.seed, device=dev))
    return out


def _oom_as_rule(run: Callable[[], list[Result]], cfg, C, H, W, K, dev) -> list[Result]:
    """A CUDA out-of-memory error of a fused run becomes the one-line rule error."""
    try:
        return run()
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise too_big(cfg, C, H, W, K, gpu_memory(dev)) from None
