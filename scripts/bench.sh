#!/usr/bin/env bash
# The benchmarks in one command: builds Release (build-release/), runs the
# sync bench (the agent process at 100, 1 000, 5 000 and 20 000 guests, the
# naive reference, wrk on the HTTP API, the scaling chart) and the failover
# bench, and writes bench/results/ (README.md with the machine and the
# tables, scaling.svg).
#
#   bash scripts/bench.sh            # the full run (about 10 minutes on 2 cores)
#   bash scripts/bench.sh --smoke    # 100 guests, 1 s of wrk, under a minute
#
# The full run also compares the HTTP server with the one before Boost.Beast
# (bench/http_server_bench.sh: wrk on /status, both in the same run) and
# writes bench/results/http_server.md; --smoke runs the new server for 1 s.
#
# --smoke uses the already built `build/` (PHA_BENCH_BUILD_DIR to change it),
# writes to a temporary directory, and fails only when a bench breaks (a
# failed cycle, a crash, a wrong result), never on a missed budget: the
# test command runs it so the benches cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *)
    echo "usage: scripts/bench.sh [--smoke]" >&2
    exit 2
    ;;
esac

if ! command -v wrk >/dev/null; then
  echo "bench: wrk is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi

if [[ $mode == smoke ]]; then
  build=${PHA_BENCH_BUILD_DIR:-build}
  if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
    echo "bench: $build is not configured; build the project first" >&2
    exit 1
  fi
  cmake --build "$build" --target sync_bench failover_bench freshness_bench probe_bench >/dev/null
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  echo "== bench smoke: sync_bench (100 guests, wrk 1 s)"
  "$build/bench/sync_bench" --sizes 100 --http-guests 100 --wrk-seconds 1 --svg "$out/scaling.svg" |
    tee "$out/sync.md"
  grep -q '^| 100 | steady' "$out/sync.md"
  grep -q '^| /metrics | 32 |' "$out/sync.md"
  grep -q '<polyline' "$out/scaling.svg"
  echo "== bench smoke: failover_bench (30 guests, a 5 s steady run)"
  "$build/bench/failover_bench" 30 5 | tee "$out/failover.md"
  grep -q '^| AccountDB first endpoint refuses' "$out/failover.md"
  grep -q '^| [0-9]* ([0-9]*, [0-9]*) |' "$out/failover.md"
  echo "== bench smoke: freshness_bench (8 operations in 10 s, UPDATE_INTERVAL 10 s)"
  "$build/bench/freshness_bench" 8 10 5 10 | tee "$out/freshness.md"
  grep -q '^| start (1) | yes |' "$out/freshness.md"
  echo "== bench smoke: probe_bench (3 nodes)"
  "$build/bench/probe_bench" 3 2>/dev/null | tee "$out/probe.md"
  grep -q '^| 3 | 2 (default) |' "$out/probe.md"
  echo "== bench smoke: http_server_bench (the new server, wrk 1 s)"
  PHA_BENCH_BUILD_DIR=$build bash bench/http_server_bench.sh --smoke | tee "$out/http.md"
  grep -q '^| new (Beast) | 4 | [1-9]' "$out/http.md"
  echo "== bench smoke passed"
  exit 0
fi

build=build-release
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
echo "== configure + build ($build, Release)"
# Without PHA_WERROR: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
# in std::string code; the test command builds with warnings as errors.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHA_WERROR=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" --target sync_bench failover_bench freshness_bench probe_bench proxmox-host-agent \
  mem_floor

results=bench/results
mkdir -p "$results"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== sync_bench (the agent process; 100, 1000, 5000, 20000 guests)"
"$build/bench/sync_bench" --sizes 100,1000,5000,20000 --http-guests 1000 --wrk-seconds 5 \
  --svg "$results/scaling.svg" | tee "$tmp/sync.md"
echo "== mem_floor (the libraries alone)"
"$build/bench/mem_floor" | tee "$tmp/floor.md"
echo "== failover_bench (300 guests, a 10-minute steady run)"
"$build/bench/failover_bench" 300 | tee "$tmp/failover.md"
{
  echo "# Failover and hedged requests"
  echo
  echo "Written by \`bash scripts/bench.sh\` (\`$build/bench/failover_bench 300\`) on $(date -u '+%Y-%m-%d'),"
  echo "commit \`$(git rev-parse --short HEAD)\`, on the machine of [README.md](README.md). Each fault is"
  echo "measured twice in the same run: hedging off (\`HEDGE_BUDGET_PERCENT=0\`, the agent before it)"
  echo "and at the defaults. What the figures mean: [docs/failover.md](../../docs/failover.md) \"Hedged requests\"."
  echo
  cat "$tmp/failover.md"
} >"$results/failover.md"
echo "== freshness_bench (48 operations over 5 minutes, change-driven and periodic only)"
"$build/bench/freshness_bench" | tee "$tmp/freshness.md"
{
  echo "# Freshness: how far AccountDB is behind Proxmox"
  echo
  echo "Written by \`bash scripts/bench.sh\` (\`$build/bench/freshness_bench\`) on $(date -u '+%Y-%m-%d'),"
  echo "commit \`$(git rev-parse --short HEAD)\`, on the machine of [README.md](README.md)."
  echo "What the figures mean: [docs/sync.md](../../docs/sync.md) \"Changes seen between cycles\"."
  echo
  cat "$tmp/freshness.md"
} >"$results/freshness.md"
echo "== probe_bench (health-check load on clusters of 3, 10 and 50 nodes)"
"$build/bench/probe_bench" 2>/dev/null | tee "$tmp/probe.md"
echo "== http_server_bench (wrk on /status: the server before Boost.Beast and now)"
PHA_BENCH_BUILD_DIR=$build bash bench/http_server_bench.sh | tee "$tmp/http.md"
cp "$tmp/http.md" "$results/http_server.md"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "# Benchmark results"
  echo
  echo "Written by \`bash scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit"
  echo "\`$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- agent bench tests/sim || echo '+changes')\`."
  echo
  echo "Machine: $cpu, $(nproc) cores, $mem RAM, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME");"
  echo "$(c++ --version | head -1); build type Release (\`$build/\`). The simulators run in the"
  echo "bench's own process on the same cores as the agent, and the machine is shared: cycle"
  echo "times are noisy, request counts and bytes are exact."
  echo
  echo "![scaling](scaling.svg)"
  echo
  cat "$tmp/sync.md"
  echo "### The memory floor"
  echo
  cat "$tmp/floor.md"
  echo
  echo "### Failover"
  echo
  echo "Hedging off and on, one run: [failover.md](failover.md)."
  echo
  echo "### Health-check load (\`build-release/bench/probe_bench\`)"
  echo
  cat "$tmp/probe.md"
  echo
  echo "### The HTTP server before and after Boost.Beast (\`bench/http_server_bench.sh\`)"
  echo
  cat "$tmp/http.md"
} >"$results/README.md"
echo "== wrote $results/README.md and $results/scaling.svg"
