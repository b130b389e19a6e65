#!/usr/bin/env bash
# wrk on GET /status of the real agent binary, the old server and the new one
# in the same run: the hand-written epoll server of commit $old_commit (the
# last one before the server moved to Boost.Beast, built from git history in
# a temporary worktree, through ccache) and the current tree, both synced
# against the same simulators (pve-sim with 3 nodes and 90 guests, adb-sim).
# The runs alternate (old, new) for each connection count and round; the
# table has the median of the rounds.
#
#   bench/http_server_bench.sh                        # 5 s runs, 1 and 32 and 128 connections, 3 rounds
#   bench/http_server_bench.sh --seconds 10 --connections 1,64 --rounds 5
#   bench/http_server_bench.sh --smoke                # the new server only, 1 s, no old build
#
# PHA_BENCH_BUILD_DIR: the current tree's build (default build-release, made
# Release when missing; --smoke: build). The old tree builds in
# build-bench-old/ (kept, so that a second run is quick).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

old_commit=967ae97a50d868b8d474c9446d2a1e960901ae02
seconds=5
connections=1,32,128
rounds=3
smoke=0
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --smoke) smoke=1; seconds=1; connections=4; rounds=1; shift ;;
    *) echo "usage: bench/http_server_bench.sh [--seconds S] [--connections N,M] [--rounds R] [--smoke]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "bench: wrk is missing (scripts/setup.sh installs it)" >&2; exit 1; }

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
export CCACHE_NOHASHDIR=1
release() {  # source dir, build dir, targets...
  local src=$1 dir=$2
  shift 2
  CCACHE_BASEDIR=$src cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPHA_WERROR=OFF "${launcher[@]}" >/dev/null
  CCACHE_BASEDIR=$src cmake --build "$dir" -j "$(nproc)" --target "$@" >/dev/null
}

work=$(mktemp -d /tmp/pha-http-bench.XXXXXX)
pids=()
old_src=$repo/build-bench-old/src
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -d $old_src ]]; then git -C "$repo" worktree remove --force "$old_src" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if ((smoke)); then
  new_build=${PHA_BENCH_BUILD_DIR:-build}
  cmake --build "$new_build" --target proxmox-host-agent pve-sim adb-sim >/dev/null
else
  new_build=${PHA_BENCH_BUILD_DIR:-build-release}
  echo "== building the new server ($new_build) and the old one ($old_commit, build-bench-old/)" >&2
  release "$repo" "$new_build" proxmox-host-agent pve-sim adb-sim
  git -C "$repo" worktree remove --force "$old_src" 2>/dev/null || true
  git -C "$repo" worktree add --detach "$old_src" "$old_commit" >/dev/null 2>&1
  release "$old_src" "$repo/build-bench-old/build" proxmox-host-agent
fi

json_string() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -1 | sed 's/.*":"\(.*\)"/\1/'; }
wait_for() {  # file, pattern
  for _ in $(seq 1 400); do
    if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: no '$2' in $1:" >&2
  cat "$1" >&2
  exit 1
}

token_id='agent@pve!bench'
token_secret='4c2a1f0e-7d3b-4e5f-9a8b-1c2d3e4f5a6b'
api_key='BenchKeyBenchKeyBenchKeyBenchKeyBenchKey00'
"$new_build/tests/sim/pve-sim" --nodes 3 --guests 90 --seed 7 --dir "$work/pve" \
  --token "$token_id=$token_secret" >"$work/pve.out" 2>"$work/pve.log" &
pids+=($!)
wait_for "$work/pve.out" '"ready"'
"$new_build/tests/sim/adb-sim" --node-id 1 --api-key "$api_key" --whitelist 100,101,102 \
  --node-name pve1 >"$work/adb.out" 2>"$work/adb.log" &
pids+=($!)
wait_for "$work/adb.out" '"ready"'

# Starts an agent; prints its HTTP port once its first cycle is done.
start_agent() {  # name, binary
  local name=$1 binary=$2
  mkdir -p "$work/$name"
  cat >"$work/$name/agent.env" <<ENV
PROXMOX_HOST=$(json_string "$work/pve.out" pve1)
PROXMOX_TOKEN_ID=$token_id
PROXMOX_TOKEN_SECRET=$token_secret
PROXMOX_CA_FILE=$(json_string "$work/pve.out" ca_file)
ACCOUNTDB_URL=$(json_string "$work/adb.out" url)
ACCOUNTDB_API_KEY=$api_key
ACCOUNTDB_NODE_ID=1
UPDATE_INTERVAL=300
STATE_DIR=$work/$name
PORT=0
BIND_ADDRESS=127.0.0.1
ENV
  # (Its stdout is not this function's, which the caller reads.)
  "$binary" --env-file "$work/$name/agent.env" >"$work/$name/agent.out" 2>"$work/$name/agent.log" &
  echo $! >"$work/$name/pid"
  wait_for "$work/$name/agent.log" 'http_listening.*port=[0-9]'
  local port
  port=$(grep -o 'http_listening.*port=[0-9]*' "$work/$name/agent.log" | grep -o 'port=[0-9]*' | cut -d= -f2)
  for _ in $(seq 1 400); do
    if curl -s "http://127.0.0.1:$port/status" | grep -q '"current":{[^}]*"status":"ok"'; then
      echo "$port"
      return 0
    fi
    sleep 0.05
  done
  echo "bench: the $name agent did not finish its first cycle" >&2
  exit 1
}

servers=(new)
declare -A port
port[new]=$(start_agent new "$new_build/agent/proxmox-host-agent")
pids+=("$(cat "$work/new/pid")")
if ((!smoke)); then
  servers=(old new)
  port[old]=$(start_agent old "$repo/build-bench-old/build/agent/proxmox-host-agent")
  pids+=("$(cat "$work/old/pid")")
fi

to_ms() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); n = v + 0;
  if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.3f", n }'; }

IFS=, read -r -a counts <<<"$connections"
: >"$work/runs"
for ((r = 1; r <= rounds; r++)); do
  for c in "${counts[@]}"; do
    for s in "${servers[@]}"; do
      threads=$((c > 1 ? 2 : 1))
      out=$(wrk --latency -t"$threads" -c"$c" -d"${seconds}s" "http://127.0.0.1:${port[$s]}/status")
      rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i} END {print n + 0}' <<<"$out")
      echo "$s $c $rps $p50 $p99 $errors" >>"$work/runs"
      echo "   round $r: $s server, $c connections: $rps req/s" >&2
    done
  done
done

echo "| server | connections | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for c in "${counts[@]}"; do
  for s in "${servers[@]}"; do
    # The round with the median requests/s, and its latencies.
    awk -v s="$s" -v c="$c" '$1 == s && $2 == c' "$work/runs" | sort -k3 -g |
      awk -v n="$rounds" 'NR == int((n + 1) / 2) {
        printf "| %s | %s | %.0f | %s | %s | %s |\n", ($1 == "old" ? "old (epoll, own)" : "new (Beast)"), $2, $3, $4, $5, $6 }'
  done
done
if ((!smoke)); then
  echo
  echo "wrk --latency -t2 (-t1 at 1 connection) -d${seconds}s on GET /status; median of $rounds rounds;"
  echo "old: commit ${old_commit:0:7} (hand-written epoll server), new: $(git rev-parse --short HEAD)."
fi
