"""Regenerate the committed results from what a device call brought back.

    python benchmarks/device_unpack.py SUITE_TGZ [--results benchmarks/results]
        [--ledger benchmarks/RESULTS.md]

SUITE_TGZ is the `suite.tgz` benchmarks/device_run.sh packed into $OUT (the device tool puts
a call's files under /work/.device/...). Its result JSONs go into --results: the parts' own
files as they are (dip_modes-cuda.json, fusion-cuda.json, <protocol>.json), the suite's
record as gpu_suite-<call>.json and the preflight as device_preflight-<call>.json, so calls A
and B sit side by side; logs and images stay in the tarball. Then the ledger (RESULTS.md) is
rendered from --results. A dry run's tarball (CPU, shrunk) is refused for the committed
results folder: pass another --results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ledger  # noqa: E402
import provenance as pv  # noqa: E402

RESULTS = HERE / "results"


class Refused(Exception):
    """A tarball that cannot be unpacked here (one line, exit 2)."""


def read_json(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    fh = tar.extractfile(member)
    return json.loads(fh.read()) if fh is not None else {}


def renamed(name: str, call: str) -> str:
    """The name a tarball's JSON takes in the results folder."""
    stem = {"gpu_suite.json": "gpu_suite", "preflight.json": "device_preflight"}.get(name)
    return f"{stem}-{call}.json" if stem else name


def unpack(tgz: Path, results: Path, allow_dry: bool) -> list[Path]:
    with tarfile.open(tgz) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        suite = members.get("results/gpu_suite.json")
        if suite is None:
            raise Refused(f"{tgz} holds no results/gpu_suite.json: the suite did not start; "
                          f"see suite.log beside it")
        head = read_json(tar, suite)
        if head.get("dry_run") and not allow_dry:
            raise Refused(f"{tgz} is a dry run (CPU, shrunk): its numbers do not belong in "
                          f"{results}; pass --results ANOTHER_FOLDER")
        call = head.get("call", "all")
        written = []
        for name, m in sorted(members.items()):
            if not name.endswith(".json") or name.count("/") > 1:
                continue
            if not (name.startswith("results/") or name == "preflight.json"):
                continue
            out = results / renamed(Path(name).name, call)
            pv.write_json(out, read_json(tar, m))
            written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tgz", type=Path, help="suite.tgz from a device call")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--ledger", type=Path, default=None,
                    help="RESULTS.md to render (default: benchmarks/RESULTS.md for the "
                         "committed results, else RESULTS.md inside --results)")
    args = ap.parse_args(argv)
    if not args.tgz.is_file():
        print(f"error: {args.tgz} not found; give the suite.tgz a device call brought back",
              file=sys.stderr)
        return 2
    committed = args.results.resolve() == RESULTS.resolve()
    try:
        written = unpack(args.tgz, args.results, allow_dry=not committed)
    except (Refused, tarfile.TarError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {pv.rel(path)}")
    led = args.ledger or (HERE / "RESULTS.md" if committed else args.results / "RESULTS.md")
    return ledger.main(["--results", str(args.results), "--out", str(led)])


if __name__ == "__main__":
    sys.exit(main())
