#!/usr/bin/env bash
# A real multi-node Ray cluster on THIS machine, over loopback only.
#
#   cluster/local-cluster.sh up [--workers N] [--head-cpus C] [--worker-cpus C[,C...]]
#                               [--dashboard]
#   cluster/local-cluster.sh status
#   cluster/local-cluster.sh down
#
# One `ray start --head` and N `ray start --address`, each node on its own loopback address
# (127.0.0.11 for the head, 127.0.0.12, 127.0.0.13, ... for the workers) so each node carries
# its own `node:<ip>` resource and trials can be told apart by node. Why not 127.0.0.1: Ray
# rewrites 127.0.0.1/localhost to the machine's network address; other loopback addresses are
# kept. Every port is chosen free, so the cluster can sit beside other Ray instances.
#
# Authentication: `ray start` enables token auth, so every process of the cluster (nodes and
# drivers) must share RAY_AUTH_MODE=token and the same token. `up` writes a fresh token and an
# env file; source it before driving the cluster:
#
#   source "$(cluster/local-cluster.sh env)"     # RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
#   dipddpm sweep run sweeps/<spec>.yaml --smoke --address auto
#
# Each node runs as `setsid ray start --block`: its processes (raylet, GCS, agents, workers)
# form one process group led by the recorded PID. `up` records each PID with its start time
# (/proc/PID/stat) and `down` acts on a PID only while it is still that process (same start
# time, a `ray start` with this node's --temp-dir): it sends SIGTERM (Ray drains and stops the
# node), then SIGKILLs what is left of that process group. A PID that now belongs to another
# process is skipped (Linux keeps a PID number reserved while any member of its process group
# lives, so a reused PID means our group is already empty). It never runs `ray stop` (which
# would stop every Ray on the machine) and never touches other processes.
#
# Ports: every fixed port of a node is picked free, and workers bind random free ports
# (--min-worker-port 0 --max-worker-port 0), so nodes on one host never collide. Measured with
# Ray 2.60 (`ss -ltnp`): the GCS and each raylet listen on all interfaces even though every
# node's address is 127.0.0.N, and `ray start` has no option to narrow them; token
# authentication is what guards them (cluster/README.md, "A multi-node cluster on one machine").
#
# Each node runs in its own directory ($DIR/<node>), as separate machines would: a relative
# path, or one through /proc/self/cwd, names a different directory on each node (the tests use
# that for storage only one node reaches).
#
# Environment: LOCAL_CLUSTER_DIR (state: node list, token, env file, logs; default
# /tmp/dipddpm-cluster-$UID; keep it short, Ray's socket paths live under it),
# LOCAL_CLUSTER_IP_BASE (last byte of the head's address, default 11), RAY (the ray command).
set -euo pipefail

DIR="$(realpath -m "${LOCAL_CLUSTER_DIR:-/tmp/dipddpm-cluster-$(id -u)}")"
IP_BASE="${LOCAL_CLUSTER_IP_BASE:-11}"
RAY="${RAY:-$(command -v ray || true)}"
NODES="$DIR/nodes"  # one line per node: name ip cpus pid start-time
UP_DONE=0

die() { echo "local-cluster: $*" >&2; exit 2; }
need_ray() {
  [[ -n "$RAY" && -x "$RAY" ]] || die "the ray command is not on PATH; activate the venv or set RAY=/path/to/ray"
  PY="$(dirname "$RAY")/python"
  [[ -x "$PY" ]] || PY="$(command -v python3)"
}

alive() { kill -0 "$1" 2>/dev/null; }

# Start time of process $1 in clock ticks since boot (field 22 of /proc/PID/stat; the fields
# after the command name, which may hold spaces, start at field 3); empty if it is gone.
start_time() {
  local stat rest f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  echo "${f[19]}"
}

# Whether PID $1 is still the `ray start` this script started for node $2 at start time $3.
ours() {
  local pid=$1 name=$2 start=$3 cmd
  [[ -n "$start" && "$(start_time "$pid")" == "$start" ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *" start "*"--temp-dir $DIR/$name "* ]]
}

# N ports free on every interface (bound on 0.0.0.0, then released).
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Wait until node $1 (pid $2, log $3) prints Ray's start banner; fail if it died.
wait_started() {
  local name=$1 pid=$2 log=$3 i
  for i in $(seq 1 240); do
    grep -q "Ray runtime started" "$log" 2>/dev/null && return 0
    if ! alive "$pid"; then
      tail -n 5 "$log" >&2
      echo "local-cluster: node $name exited while starting (log: $log)" >&2; return 1
    fi
    sleep 0.5
  done
  echo "local-cluster: node $name did not start in 120 s (log: $log)" >&2; return 1
}

# Start one node in its own session; prints its pid. Runs in a subshell ($(start_node ...)).
start_node() {
  local name=$1 ip=$2 cpus=$3; shift 3
  local p; read -r -a p <<<"$(free_ports 6)"
  mkdir -p "$DIR/$name"
  cd "$DIR/$name"  # the node's own working directory (see the header)
  setsid "$RAY" start --block --node-ip-address "$ip" --num-cpus "$cpus" --num-gpus 0 \
    --temp-dir "$DIR/$name" --object-store-memory 100000000 --disable-usage-stats \
    --node-manager-port "${p[0]}" --object-manager-port "${p[1]}" \
    --dashboard-agent-listen-port "${p[2]}" --dashboard-agent-grpc-port "${p[3]}" \
    --runtime-env-agent-port "${p[4]}" --metrics-export-port "${p[5]}" \
    --min-worker-port 0 --max-worker-port 0 \
    "$@" >"$DIR/$name.log" 2>&1 </dev/null &
  echo $!
}

# Record node $1 (ip $2, cpus $3, pid $4) with the pid's start time.
record() {
  local start; start=$(start_time "$4")
  [[ -n "$start" ]] || { echo "local-cluster: node $1 exited at once (log: $DIR/$1.log)" >&2; return 1; }
  echo "$1 $2 $3 $4 $start" >>"$NODES"
}

cmd_up() {
  local workers=2 head_cpus=1 worker_cpus=1 dashboard=false
  while [[ $# -gt 0 ]]; do
    case $1 in
      --workers) workers=$2; shift 2 ;;
      --head-cpus) head_cpus=$2; shift 2 ;;
      --worker-cpus) worker_cpus=$2; shift 2 ;;
      --dashboard) dashboard=true; shift ;;
      *) die "unknown option for up: $1 (valid: --workers N --head-cpus C --worker-cpus C[,C...] --dashboard)" ;;
    esac
  done
  [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers takes a whole number, got $workers"
  need_ray
  # a driver's leftovers must not leak into the nodes (each node gets its address explicitly)
  unset RAY_ADDRESS RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
  if [[ -f "$NODES" ]]; then
    die "a cluster is already recorded in $DIR; run '$0 down' first (or set LOCAL_CLUSTER_DIR)"
  fi
  local -a wcpus; IFS=, read -r -a wcpus <<<"$worker_cpus"
  mkdir -p "$DIR"
  "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$DIR/auth_token"
  chmod 600 "$DIR/auth_token"
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
  # whatever makes `up` stop half-way (a node that does not start, set -e), stop what it started
  trap 'if [[ $UP_DONE != 1 ]]; then
          echo "local-cluster: up failed; stopping the nodes it started" >&2; cmd_down >&2
        fi' EXIT

  local head_ip="127.0.0.$IP_BASE" gcs dash client pid
  read -r gcs dash client <<<"$(free_ports 3)"
  local -a extra=()
  # with ray[client] installed the head also serves Ray Client, on 10001 unless told otherwise
  "$PY" -c 'import grpc' 2>/dev/null && extra=(--ray-client-server-port "$client")
  : >"$NODES"
  pid=$(start_node head "$head_ip" "$head_cpus" --head --port "$gcs" \
        --include-dashboard "$dashboard" --dashboard-host "$head_ip" --dashboard-port "$dash" \
        ${extra[@]+"${extra[@]}"})
  record head "$head_ip" "$head_cpus" "$pid" || exit 1
  wait_started head "$pid" "$DIR/head.log" || exit 1
  cat >"$DIR/env" <<EOF
export RAY_ADDRESS=$head_ip:$gcs
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$DIR/auth_token
EOF
  [[ "$dashboard" == true ]] && echo "export RAY_DASHBOARD_ADDRESS=http://$head_ip:$dash" >>"$DIR/env"

  local i ip cpus
  for ((i = 1; i <= workers; i++)); do
    ip="127.0.0.$((IP_BASE + i))"
    cpus=${wcpus[$(( i - 1 < ${#wcpus[@]} ? i - 1 : ${#wcpus[@]} - 1 ))]}
    pid=$(start_node "worker$i" "$ip" "$cpus" --address "$head_ip:$gcs")
    record "worker$i" "$ip" "$cpus" "$pid" || exit 1
  done
  for ((i = 1; i <= workers; i++)); do
    read -r _ _ _ pid _ < <(sed -n "$((i + 1))p" "$NODES")
    wait_started "worker$i" "$pid" "$DIR/worker$i.log" || exit 1
  done
  UP_DONE=1
  echo "cluster up: head $head_ip:$gcs + $workers worker(s); state in $DIR"
  [[ "$dashboard" == true ]] && echo "dashboard: http://$head_ip:$dash"
  echo "use it:  source $DIR/env && dipddpm cluster doctor --address auto"
}

cmd_status() {
  if [[ ! -f "$NODES" ]]; then echo "no local cluster recorded in $DIR"; return 0; fi
  local addr; addr=$(sed -n 's/^export RAY_ADDRESS=//p' "$DIR/env" 2>/dev/null || true)
  echo "address: ${addr:-?}   env: $DIR/env"
  printf '%-9s %-12s %4s %8s  %s\n' NODE IP CPUS PID STATE
  local name ip cpus pid start state down=0
  while read -r name ip cpus pid start; do
    if ours "$pid" "$name" "$start"; then state=up; else state=DOWN; down=1; fi
    printf '%-9s %-12s %4s %8s  %s\n' "$name" "$ip" "$cpus" "$pid" "$state"
  done <"$NODES"
  return $down
}

# Whether the process group of recorded node ($1 pid, $2 name, $3 start time) may be signalled:
# its leader is still ours, or the leader is gone (its number stays reserved while members of
# its group live, so any group with that id is ours). A PID that is now another process: no.
group_ours() { ours "$1" "$2" "$3" || [[ -z "$(start_time "$1")" ]]; }

# SIGTERM the recorded node PIDs that are still ours (workers first), wait for Ray to drain,
# then SIGKILL whatever is left of those process groups (created by our setsid: nothing else is
# in them), checking again right before each signal.
cmd_down() {
  if [[ ! -f "$NODES" ]]; then echo "no local cluster recorded in $DIR"; return 0; fi
  local -a pids=() names=() starts=()
  local name ip cpus pid start i k left skipped=0
  while read -r name ip cpus pid start; do
    if group_ours "$pid" "$name" "$start"; then
      pids=("$pid" "${pids[@]}"); names=("$name" "${names[@]}"); starts=("$start" "${starts[@]}")
    else
      echo "local-cluster: $name: pid $pid is no longer its ray start; not touching it" >&2
      skipped=$((skipped + 1))
    fi
  done <"$NODES"
  for k in "${!pids[@]}"; do
    ours "${pids[k]}" "${names[k]}" "${starts[k]}" && kill -TERM "${pids[k]}" 2>/dev/null || true
  done
  for i in $(seq 1 80); do
    left=0
    for pid in "${pids[@]}"; do
      if kill -0 -- "-$pid" 2>/dev/null; then left=1; fi
    done
    [[ $left == 0 ]] && break
    sleep 0.5
  done
  for k in "${!pids[@]}"; do
    if group_ours "${pids[k]}" "${names[k]}" "${starts[k]}"; then
      kill -KILL -- "-${pids[k]}" 2>/dev/null || true
    fi
  done
  rm -rf "$DIR"
  local note=""
  [[ $skipped == 0 ]] || note=", skipped $skipped"
  echo "cluster down: stopped ${#pids[@]} node(s)$note"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "$DIR/env" ;;
  *) echo "usage: $0 up [--workers N] [--head-cpus C] [--worker-cpus C[,C...]] [--dashboard] | status | down | env" >&2
     exit 2 ;;
esac
