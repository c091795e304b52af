"""The precision a benchmark runs in, set explicitly and recorded with every row.

PyTorch's defaults are not "fp32": on CUDA, cuDNN convolutions may use TF32 tensor cores
(`torch.backends.cudnn.allow_tf32` is true by default) while matrix products do not. So every
GPU number here names its mode, and the mode sets both flags:

    fp32  TF32 off for convolutions and matrix products (true float32 arithmetic)
    tf32  TF32 on for both
    bf16  TF32 off; the caller runs its forward under bf16 autocast

`flags(dev)` is what a row records: both TF32 flags, cuDNN's benchmark and deterministic flags,
and a note where the flags cannot matter (on CPU they change nothing).

    python benchmarks/precision.py MODE [--benchmark] -- DIPDDPM-ARGS ...

runs the `dipddpm` command in-process with the mode set (the GPU suite's DDPM parts) and
prints the flags first, as one JSON line starting with `precision:`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODES = ("fp32", "tf32", "bf16")


def set_precision(mode: str, benchmark: bool | None = None) -> None:
    """Set the TF32 flags for `mode` (and cuDNN's benchmark flag when given)."""
    import torch

    if mode not in MODES:
        raise ValueError(f"precision must be one of {', '.join(MODES)}, got {mode!r}")
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if benchmark is not None:
        torch.backends.cudnn.benchmark = benchmark


def flags(dev=None, mode: str | None = None, autocast: str | None = None) -> dict:
    """What a row records about the arithmetic it ran in."""
    import torch

    out = {"precision": mode, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
           "tf32_cudnn": torch.backends.cudnn.allow_tf32,
           "cudnn_benchmark": torch.backends.cudnn.benchmark,
           "cudnn_deterministic": torch.backends.cudnn.deterministic,
           "autocast": autocast}
    if dev is not None and getattr(dev, "type", dev) == "cpu":
        out["note"] = "CPU: the TF32 and cuDNN flags change nothing"
    return out


def main(argv: list[str]) -> None:
    if "--" not in argv or not argv or argv[0] not in MODES:
        sys.exit(f"usage: precision.py {{{','.join(MODES)}}} [--benchmark] -- DIPDDPM-ARGS")
    split = argv.index("--")
    set_precision(argv[0], benchmark="--benchmark" in argv[1:split] or None)
    print("precision: " + json.dumps(flags(mode=argv[0])), flush=True)
    sys.argv = ["dipddpm", *argv[split + 1:]]
    from dipddpm.cli import main as cli

    cli()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's dipddpm
    main(sys.argv[1:])
