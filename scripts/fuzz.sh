#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (build-fuzz/: PHA_FUZZ,
# AddressSanitizer + UndefinedBehaviorSanitizer + libFuzzer) and runs each
# for FUZZ_SECONDS (default 20) from a copy of its seed corpus and its
# regression inputs, FUZZ_JOBS (default: one per core) at a time. A crash,
# leak, timeout or sanitizer report fails the run and names the input that
# caused it (kept in build-fuzz/findings/<target>/).
#
#   scripts/fuzz.sh                       # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh http_request
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
all=(env_file settings proxmox_parse accountdb_parse http_request sync_plan)
targets=("${all[@]}")
if (($#)); then targets=("$@"); fi
# Inputs longer than any real one only slow the search down.
declare -A max_len=([env_file]=4096 [settings]=4096 [proxmox_parse]=16384
                    [accountdb_parse]=16384 [http_request]=4096 [sync_plan]=2048)
declare -A dict=([env_file]=env_file [settings]=settings [proxmox_parse]=json
                 [accountdb_parse]=json [http_request]=http_request)

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
echo "== configure + build (build-fuzz, clang, libFuzzer + ASan + UBSan)"
# The preset "fuzz" of CMakePresets.json: -O1 and line tables only, half the
# compile time of -O2 -g, and still symbolised stack traces.
cmake --preset fuzz "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  if [[ -z ${max_len[$t]:-} ]]; then
    echo "fuzz: no target $t (one of: ${all[*]})" >&2
    exit 2
  fi
done

# One target: its exit status goes to $work/<target>.rc, its output to
# build-fuzz/fuzz-<target>.log.
run_one() {
  local t=$1 rc=0
  # libFuzzer adds what it finds to the first corpus directory: a copy, so
  # the repository is not modified.
  mkdir -p "$work/$t" "build-fuzz/findings/$t"
  cp fuzz/corpus/"$t"/* "$work/$t/"
  # Git keeps no empty directory: a target without regression inputs has none.
  local inputs=("$work/$t")
  if [[ -d fuzz/regressions/$t ]]; then inputs+=("fuzz/regressions/$t"); fi
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/fuzz/fuzz_$t" "${inputs[@]}" \
    -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    ${dict[$t]:+-dict="fuzz/dict/${dict[$t]}.dict"} -artifact_prefix="build-fuzz/findings/$t/" \
    -print_final_stats=1 >"build-fuzz/fuzz-$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}

# The targets run side by side, one per core.
parallel=${FUZZ_JOBS:-$(nproc)}
echo "== fuzz ${targets[*]}: ${seconds} s each, ${parallel} at a time"
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  log=build-fuzz/fuzz-$t.log
  if [[ $(cat "$work/$t.rc") == 0 ]]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -n 1)
    echo "fuzz $t: ok, $runs runs, $speed exec/s, $cov"
  else
    tail -n 40 "$log"
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz $t: FAILED on ${input:-an input (see $log)}" >&2
    echo "  replay: build-fuzz/fuzz/fuzz_$t ${input:-INPUT}; keep it in fuzz/regressions/$t/" >&2
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds} s without a finding"
