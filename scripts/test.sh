#!/usr/bin/env bash
# The test command: sets up the machine, checks formatting, builds with
# warnings as errors, runs the whole suite and clang-tidy, then builds and runs it again
# under AddressSanitizer + UndefinedBehaviorSanitizer, runs every fuzz target
# briefly (scripts/fuzz.sh), and builds and tests the Debian packages of
# bookworm and trixie in booted containers (scripts/package_test.sh). After
# the first suite, the benchmarks' smoke run (scripts/bench.sh --smoke) on the
# same build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Every build of this run (and of the next) goes through ccache: a clean clone
# compiles only what changed since the last run. CMake reads the launcher from
# the environment when it configures a new build tree.
export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_DIR=${CCACHE_DIR:-/var/cache/pha-ccache}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}

echo "== format check (clang-format)"
bash scripts/format.sh --check

# doctest filters split on ',' and ';' and CTest runs each test case through a
# filter on its name: such a name would match nothing and pass without running.
if grep -rn --include='*.cpp' -E 'TEST_CASE\("[^"]*[,;\\]' tests; then
  echo "test names must not contain ',' ';' or '\\' (see above)" >&2
  exit 1
fi

jobs=$(nproc)
# A suite is a preset of CMakePresets.json: configure, build, test.
run_suite() {
  local preset=$1
  echo "== configure + build (preset $preset)"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "== tests (preset $preset)"
  ctest --preset "$preset" -j "$jobs"
}

run_suite dev
# clang-tidy on the compile commands of that build; files unchanged since
# they last passed are skipped (stamps in /var/cache/pha-tidy).
echo "== clang-tidy (.clang-tidy, scripts/tidy.sh)"
bash scripts/tidy.sh build
# The benchmarks at a tiny size on the build above, so that they cannot rot:
# fails when a bench breaks, never on a missed budget.
echo "== bench smoke (scripts/bench.sh --smoke)"
PHA_BENCH_BUILD_DIR=build bash scripts/bench.sh --smoke
run_suite sanitize
echo "== fuzz smoke run (scripts/fuzz.sh, FUZZ_SECONDS=${FUZZ_SECONDS:-20} per target)"
bash scripts/fuzz.sh
echo "== the Debian packages on bookworm and trixie (scripts/package_test.sh)"
PHA_BUILD_DIR=build bash scripts/package_test.sh
ccache --show-stats 2>/dev/null | grep -E '^(Cacheable calls|  Hits|  Misses)' || true
echo "== all tests passed (normal and sanitizer builds, fuzz smoke run, the Debian packages)"
