#!/usr/bin/env bash
# Prepares, here, everything the GPU machine's run needs, in one folder git ignores (.device/),
# and prints the two device calls.
#
#   benchmarks/device_prepare.sh [--repack-wheels] [--dir DIR] [--allow-missing-data]
#
# Lays out in DIR (default .device, which travels as the call's `carry`):
#   data/     the benchmark images (cset9/, butterfly/), from $DIPDDPM_BENCH_DATA or the
#             shared/data beside the checkout: the GPU machine gets no folder beside the repo;
#   git_sha, git_dirty   the commit (the copy that travels has no .git);
#   wheels/   the packages of benchmarks/device_carry.txt, which the machine's image lacks, as
#             cp312 manylinux x86_64 wheels (downloaded once, kept; --repack-wheels rebuilds
#             them from this environment's installed copies instead: the offline rehearsal,
#             for this interpreter only).
# --allow-missing-data: lay out the rest where the images are absent (the suite then skips
# the reproductions, saying why; the rehearsal in CI, which has no benchmark images).
# Then it measures what travels (tracked and untracked-not-ignored files plus DIR; the limit
# is 64 MiB), and prints the carry list and the exact device calls with their timeouts
# (benchmarks/time_plan.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEV=.device
MODE=download
NODATA=0
die() { echo "error: device_prepare.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --repack-wheels) MODE=repack; shift;;
    --dir) [ $# -ge 2 ] || die "--dir needs a folder"; DEV=$2; shift 2;;
    --allow-missing-data) NODATA=1; shift;;
    *) die "unknown option '$1'; usage: device_prepare.sh [--repack-wheels] [--dir DIR]" \
      "[--allow-missing-data]";;
  esac
done
mkdir -p "$DEV"

data=$("$PY" -c 'import sys; sys.path.insert(0, "benchmarks"); import provenance as p
print(p.bench_data())')
rm -rf "$DEV/data" && mkdir -p "$DEV/data"
if [ -d "$data/cset9" ] && [ -d "$data/butterfly" ]; then
  cp -R "$data/cset9" "$data/butterfly" "$DEV/data/"
  chmod -R u+w "$DEV/data"
elif [ "$NODATA" = 1 ]; then
  echo "note: no benchmark images at $data: the reproductions will be skipped"
else
  die "no benchmark images at $data (cset9/, butterfly/); set DIPDDPM_BENCH_DATA"
fi

if git rev-parse HEAD > "$DEV/git_sha" 2>/dev/null; then
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then echo 1; else echo 0; fi \
    > "$DEV/git_dirty"
else
  echo "${GIT_SHA:-unknown}" > "$DEV/git_sha"; rm -f "$DEV/git_dirty"
fi

"$PY" benchmarks/device_wheels.py "$MODE" "$DEV/wheels" \
  || die "the carried wheels could not be laid out ($MODE)"

"$PY" - "$DEV" <<'EOF'
import json, os, subprocess, sys
from pathlib import Path
dev = Path(sys.argv[1])
files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                       capture_output=True, check=True).stdout.decode().split("\0")
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f))
prep = sum(p.stat().st_size for p in dev.rglob("*") if p.is_file())
limit = 64 * 2**20
print(f"travels: {(tree + prep) / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB "
      f"(tree {tree / 2**20:.1f} MiB, {dev} {prep / 2**20:.1f} MiB)")
if tree + prep > limit:
    sys.exit(f"error: device_prepare.sh: {(tree + prep) / 2**20:.1f} MiB would travel, over "
             f"the 64 MiB limit; ignore or remove large files")
calls = json.loads(Path("benchmarks/time_plan.json").read_text())["calls"]
carry = [".device"]  # where the device run reads it, in the copy that travels
print(f"carry: {json.dumps(carry)}")
for call, c in calls.items():
    print(f"call {call}: run(command={json.dumps(f'bash benchmarks/device_run.sh {call}')}, "
          f"carry={json.dumps(carry)}, timeout_s={c['timeout_s']})  "
          f"# suite limit {c['suite_limit_s']} s, about {c['estimate_s']:.0f} s")
print("then, here: python benchmarks/device_unpack.py /work/.device/<call's files>/suite.tgz")
EOF
