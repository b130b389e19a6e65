#!/usr/bin/env bash
# The test command: sets up the machine, checks formatting, builds with
# warnings as errors, runs the whole suite, then builds and runs it again
# under AddressSanitizer + UndefinedBehaviorSanitizer, runs every fuzz target
# briefly (scripts/fuzz.sh), and checks the Debian package
# (scripts/package_test.sh). After the first suite, the benchmarks' smoke run
# (scripts/bench.sh --smoke) on the same build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== format check (clang-format)"
bash scripts/format.sh --check

# doctest filters split on ',' and ';' and CTest runs each test case through a
# filter on its name: such a name would match nothing and pass without running.
if grep -rn --include='*.cpp' -E 'TEST_CASE\("[^"]*[,;\\]' tests; then
  echo "test names must not contain ',' ';' or '\\' (see above)" >&2
  exit 1
fi

jobs=$(nproc)
run_suite() {
  local dir=$1
  shift
  echo "== configure + build ($dir)"
  cmake -S . -B "$dir" -G Ninja -DPHA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== tests ($dir)"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 300
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The benchmarks at a tiny size on the build above, so that they cannot rot:
# fails when a bench breaks, never on a missed budget.
echo "== bench smoke (scripts/bench.sh --smoke)"
PHA_BENCH_BUILD_DIR=build bash scripts/bench.sh --smoke
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DPHA_SANITIZE=ON
echo "== fuzz smoke run (scripts/fuzz.sh, FUZZ_SECONDS=${FUZZ_SECONDS:-20} per target)"
bash scripts/fuzz.sh
echo "== the Debian package (scripts/package_test.sh)"
bash scripts/package_test.sh
echo "== all tests passed (normal and sanitizer builds, fuzz smoke run, the Debian package)"
