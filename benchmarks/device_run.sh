#!/usr/bin/env bash
# The device command: runs on the GPU machine, in the copy of the repository it receives.
#
#   bash benchmarks/device_run.sh [--dry-run] [A|B|all] [PART ...]
#
# 1. installs the project (--no-deps --no-build-isolation: there is no network there) and the
#    wheels benchmarks/device_prepare.sh laid out in .device/wheels into one target folder,
#    put first on PYTHONPATH (an existing PYTHONPATH is kept behind it);
# 2. preflight (benchmarks/device_preflight.py): imports, the benchmark images, the CUDA and
#    cuDNN versions, free GPU memory; stops with one line if anything is missing;
# 3. the suite (benchmarks/gpu_suite.py --call A|B), or only the PARTs named;
# 4. always, on failure too (trap on EXIT): packs everything into $OUT as at most 5 files, no
#    folders: suite.tgz (results, logs, preflight), suite.log, gpu_suite.json, preflight.json,
#    status.txt. Here, `python benchmarks/device_unpack.py .../suite.tgz` regenerates the
#    committed results from the tarball.
# --dry-run: the same on CPU, shrunk (the rehearsal, tests/test_device_rehearsal.py).
# The interpreter is `python3` (the GPU machine's, which holds torch), or $PYTHON.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
PY=${PYTHON:-python3}
DRY=()
if [ "${1:-}" = "--dry-run" ]; then DRY=(--dry-run); shift; fi
CALL=${1:-all}
[ $# -gt 0 ] && shift
case "$CALL" in A|B|all) ;; *) echo "error: device_run.sh: the call must be A, B or all, got" \
  "'$CALL'; usage: device_run.sh [--dry-run] [A|B|all] [PART ...]" >&2; exit 2;; esac
if [ -z "${OUT:-}" ]; then
  echo "error: device_run.sh: \$OUT is not set (the folder whose files come back)" >&2; exit 2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dipddpm-device.XXXXXX")
RES=$WORK/results
mkdir -p "$RES" "$OUT"
START=$(date +%s)

pack() {
  local rc=$?
  set +e
  echo "exit $rc after $(( $(date +%s) - START )) s (call $CALL${DRY:+ dry run})" > "$WORK/status.txt"
  cp "$WORK/suite.log" "$OUT/suite.log" 2>/dev/null
  cp "$WORK/preflight.json" "$OUT/preflight.json" 2>/dev/null
  cp "$RES/gpu_suite.json" "$OUT/gpu_suite.json" 2>/dev/null
  cp "$WORK/status.txt" "$OUT/status.txt"
  tar -C "$WORK" --exclude='*.pt' -czf "$OUT/suite.tgz" results status.txt \
    $(cd "$WORK" && ls preflight.json install.log suite.log 2>/dev/null)
  echo "packed into $OUT: $(ls "$OUT" | tr '\n' ' ')"
  exit $rc
}
trap pack EXIT
trap 'exit 143' TERM INT

install() {
  local site=$WORK/site
  local wheels=()
  [ -d .device/wheels ] && wheels=(.device/wheels/*.whl)
  [ -e "${wheels[0]:-}" ] || wheels=()
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --no-cache-dir --target "$site" "${wheels[@]}" "$REPO" > "$WORK/install.log" 2>&1 || {
    echo "error: device_run.sh: installing the project and ${#wheels[@]} wheel(s) failed:" \
      "$(tail -1 "$WORK/install.log")" >&2; return 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed the project and ${#wheels[@]} carried wheel(s) into $site"
}

body() {
  install || return 2
  export DIPDDPM_BENCH_DATA=${DIPDDPM_BENCH_DATA:-$REPO/.device/data}
  [ -f .device/git_sha ] && export GIT_SHA=${GIT_SHA:-$(cat .device/git_sha)}
  [ -f .device/git_dirty ] && export GIT_DIRTY=${GIT_DIRTY:-$(cat .device/git_dirty)}
  export PYTHONUNBUFFERED=1
  "$PY" benchmarks/device_preflight.py --call "$CALL" "${DRY[@]}" \
    --out "$WORK/preflight.json" || return 2
  local only=()
  [ $# -gt 0 ] && only=(--only "$@")
  "$PY" benchmarks/gpu_suite.py --call "$CALL" "${DRY[@]}" --out "$RES" "${only[@]}"
}

body "$@" 2>&1 | tee "$WORK/suite.log"
exit "${PIPESTATUS[0]}"
