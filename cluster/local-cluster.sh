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
# form one process group led by the recorded PID. `down` sends SIGTERM to exactly those PIDs
# (Ray drains and stops the node), then SIGKILLs what is left of those process groups. It never
# runs `ray stop` (which would stop every Ray on the machine) and never touches other processes.
#
# Environment: LOCAL_CLUSTER_DIR (state: node list, token, env file, logs; default
# /tmp/dipddpm-cluster-$UID; keep it short, Ray's socket paths live under it),
# LOCAL_CLUSTER_IP_BASE (last byte of the head's address, default 11), RAY (the ray command).
set -euo pipefail

DIR="${LOCAL_CLUSTER_DIR:-/tmp/dipddpm-cluster-$(id -u)}"
IP_BASE="${LOCAL_CLUSTER_IP_BASE:-11}"
RAY="${RAY:-$(command -v ray || true)}"
NODES="$DIR/nodes"  # one line per node: name ip cpus pid
UP_DONE=0

die() { echo "local-cluster: $*" >&2; exit 2; }
need_ray() {
  [[ -n "$RAY" && -x "$RAY" ]] || die "the ray command is not on PATH; activate the venv or set RAY=/path/to/ray"
  PY="$(dirname "$RAY")/python"
  [[ -x "$PY" ]] || PY="$(command -v python3)"
}

alive() { kill -0 "$1" 2>/dev/null; }

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

# Start one node in its own session; prints its pid.
start_node() {
  local name=$1 ip=$2 cpus=$3; shift 3
  local p; read -r -a p <<<"$(free_ports 6)"
  mkdir -p "$DIR/$name"
  setsid "$RAY" start --block --node-ip-address "$ip" --num-cpus "$cpus" --num-gpus 0 \
    --temp-dir "$DIR/$name" --object-store-memory 100000000 --disable-usage-stats \
    --node-manager-port "${p[0]}" --object-manager-port "${p[1]}" \
    --dashboard-agent-listen-port "${p[2]}" --dashboard-agent-grpc-port "${p[3]}" \
    --runtime-env-agent-port "${p[4]}" --metrics-export-port "${p[5]}" \
    "$@" >"$DIR/$name.log" 2>&1 </dev/null &
  echo $!
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

  local head_ip="127.0.0.$IP_BASE" gcs dash pid
  read -r gcs dash <<<"$(free_ports 2)"
  pid=$(start_node head "$head_ip" "$head_cpus" --head --port "$gcs" \
        --include-dashboard "$dashboard" --dashboard-host "$head_ip" --dashboard-port "$dash")
  echo "head $head_ip $head_cpus $pid" >"$NODES"
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
    echo "worker$i $ip $cpus $pid" >>"$NODES"
  done
  for ((i = 1; i <= workers; i++)); do
    read -r _ _ _ pid < <(sed -n "$((i + 1))p" "$NODES")
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
  local name ip cpus pid state down=0
  while read -r name ip cpus pid; do
    if alive "$pid"; then state=up; else state=DOWN; down=1; fi
    printf '%-9s %-12s %4s %8s  %s\n' "$name" "$ip" "$cpus" "$pid" "$state"
  done <"$NODES"
  return $down
}

# SIGTERM the recorded node PIDs (workers first), wait for Ray to drain, then SIGKILL whatever
# is left of those process groups (the groups were created by our setsid, nothing else is in them).
cmd_down() {
  if [[ ! -f "$NODES" ]]; then echo "no local cluster recorded in $DIR"; return 0; fi
  local -a pids=() name ip cpus pid
  while read -r name ip cpus pid; do pids=("$pid" "${pids[@]}"); done <"$NODES"
  for pid in "${pids[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  local i left
  for i in $(seq 1 80); do
    left=0
    for pid in "${pids[@]}"; do
      if alive "$pid" || kill -0 -- "-$pid" 2>/dev/null; then left=1; fi
    done
    [[ $left == 0 ]] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
  echo "cluster down: stopped ${#pids[@]} node(s)"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "$DIR/env" ;;
  *) echo "usage: $0 up [--workers N] [--head-cpus C] [--worker-cpus C[,C...]] [--dashboard] | status | down | env" >&2
     exit 2 ;;
esac
