"""The device run's preflight: is everything there before any GPU time goes to the suite?

    python benchmarks/device_preflight.py --call A|B|all [--dry-run] --out preflight.json

Checks, in order, and stops at the first that fails with one line (`error: preflight: ...`,
exit 2): every module the parts import (the benchmark scripts, the `dipddpm` command, pytest),
the benchmark images the call's reproductions read ($DIPDDPM_BENCH_DATA; a dry run without
them only notes it: its reproductions are skipped), the time plan, and
(not in a dry run) CUDA: the device, the CUDA and cuDNN versions, total and free GPU memory and
the CUDA context's own memory (measured: used minus what the allocator holds, after one
convolution), which methods/fusion.py's memory rule subtracts for a fractional GPU.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import provenance as pv  # noqa: E402

pv.ensure_repo_on_path()

# what the parts run: the benchmark scripts (each imports its own needs at the top), the
# command-line interface, and the test runner
MODULES = ("gpu_suite", "time_plan", "precision", "dip_modes", "fusion", "packing",
           "reproduce", "protocols", "dipddpm.cli", "dipddpm.methods",
           "dipddpm.methods.fusion", "pytest")


class Failed(Exception):
    pass


def check_imports() -> dict:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:
            raise Failed(f"cannot import {name}: {type(e).__name__}: {e} (a missing package "
                          f"travels as a wheel: benchmarks/device_carry.txt)") from None
    import torch

    return {"modules": list(MODULES), "torch": torch.__version__,
            "python": sys.version.split()[0]}


def check_data(call: str, dry: bool) -> dict:
    import gpu_suite
    import protocols

    data = pv.bench_data()
    wanted = () if call == "A" else protocols.MINI if dry else protocols.FULL
    images = sorted({r.image for n in wanted for r in protocols.PROTOCOLS[n].rows})
    missing = [i for i in images if not (data / i).is_file()]
    if missing and dry:
        return {"data": str(data), "images": len(images) - len(missing),
                "note": f"{len(missing)} benchmark images missing: the dry run's reproductions "
                        f"are skipped"}
    if missing:
        raise Failed(f"benchmark image {data / missing[0]} not found ({len(missing)} of "
                     f"{len(images)} missing): run benchmarks/device_prepare.sh, which copies "
                     f"them into .device/data")
    if not gpu_suite.time_plan.PLAN_JSON.is_file():
        raise Failed(f"{gpu_suite.time_plan.PLAN_JSON} is missing: python "
                     f"benchmarks/time_plan.py --write")
    return {"data": str(data), "images": len(images)}


def check_cuda() -> dict:
    import torch

    if not torch.cuda.is_available():
        raise Failed("torch sees no CUDA device (torch.cuda.is_available() is false)")
    dev = torch.device("cuda", torch.cuda.current_device())
    x = torch.randn(1, 8, 64, 64, device=dev)
    torch.nn.functional.conv2d(x, torch.randn(8, 8, 3, 3, device=dev)).sum().item()
    free, total = torch.cuda.mem_get_info(dev)
    context = total - free - torch.cuda.memory_reserved(dev)  # alone on the device
    props = torch.cuda.get_device_properties(dev)
    return {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "total_gib": total / 2**30,
            "free_gib": free / 2**30, "context_mib": context / 2**20,
            "memory_fraction": torch.cuda.get_per_process_memory_fraction(dev)
            if hasattr(torch.cuda, "get_per_process_memory_fraction") else None}


def run_checks(args, argv) -> dict:
    """The checks in order; raises Failed at the first that fails (doc so far in e.doc)."""
    doc = {"benchmark": "device_preflight", "call": args.call, "dry_run": args.dry_run}
    try:
        imports = check_imports()
        import torch

        dev = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run
                           else "cpu")
        doc.update(pv.stamp("benchmarks/device_preflight.py", sys.argv[1:] if argv is None
                            else argv, dev))
        doc["imports"] = imports
        doc["data"] = check_data(args.call, args.dry_run)
        doc["cuda"] = None if args.dry_run else check_cuda()
    except Failed as e:
        e.doc = {**pv.git_sha(), **doc, "error": str(e)}
        raise
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--call", choices=("A", "B", "all"), default="all")
    ap.add_argument("--dry-run", action="store_true", help="CPU: no CUDA checks")
    ap.add_argument("--out", required=True, help="preflight.json")
    args = ap.parse_args(argv)
    try:
        doc = run_checks(args, argv)
    except Failed as e:
        pv.write_json(Path(args.out), e.doc)
        print(f"error: preflight: {e}", file=sys.stderr)
        return 2
    pv.write_json(Path(args.out), doc)
    cuda = doc["cuda"]
    print("preflight ok: " + (f"{cuda['gpu']}, CUDA {cuda['cuda']}, cuDNN {cuda['cudnn']}, "
                              f"{cuda['free_gib']:.1f} of {cuda['total_gib']:.1f} GiB free, "
                              f"context {cuda['context_mib']:.0f} MiB" if cuda else
                              "dry run (CPU)") + f"; torch {doc['imports']['torch']}; "
          f"{doc['data']['images']} benchmark images", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
