#!/usr/bin/env bash
# The quick loop (docs/development.md "The two loops"): no root, no apt, no
# network. Checks the format of the changed C++ files, builds the dev preset
# (build/, warnings as errors) and runs the tests that need neither root nor
# a tool that is missing, nor the layering test. Fails when the format, the build or a test fails.
# The full check before a merge is ./scripts/test.sh.
#
#   scripts/check.sh              format, build, tests
#   scripts/check.sh -R 'unit: '  the same, with extra arguments for ctest
#
# The changed files: those that differ from HEAD in the working tree (staged,
# unstaged, untracked), plus those the branch's commits changed since it left
# its base: the merge base with the branch's upstream, else with origin/main,
# else with main. With none of those (or on main itself), the last commit's.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- format: the changed files only ---------------------------------------
base=""
for ref in '@{upstream}' origin/main main; do
  if mb=$(git merge-base HEAD "$ref" 2>/dev/null) && [[ $mb != "$(git rev-parse HEAD)" ]]; then
    base=$mb
    break
  fi
done
if [[ -z $base ]] && git rev-parse -q --verify HEAD~1 >/dev/null; then
  base=$(git rev-parse HEAD~1)  # the last commit's files
fi
mapfile -t changed < <(
  {
    git diff --name-only HEAD
    git ls-files --others --exclude-standard
    if [[ -n $base ]]; then git diff --name-only "$base" HEAD; fi
  } | grep -E '\.(cpp|hpp)$' | sort -u | while read -r f; do [[ -f $f ]] && echo "$f"; done
)
echo "== format check: ${#changed[@]} changed C++ files (since ${base:0:12})"
if ((${#changed[@]})); then
  clang-format --dry-run --Werror "${changed[@]}"
fi
# doctest filters split on ',' and ';', and CTest runs each test case through
# such a filter: a name with one would match nothing and pass without running.
if grep -rn --include='*.cpp' -E 'TEST_CASE\("[^"]*[,;\\]' tests; then
  echo "test names must not contain ',' ';' or '\\' (see above)" >&2
  exit 1
fi

# --- build: the dev preset, through ccache when it is installed ------------
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
  # The test command's cache when this user may write it, else ccache's default.
  if [[ -z ${CCACHE_DIR:-} && -d /var/cache/pha-ccache && -w /var/cache/pha-ccache ]]; then
    export CCACHE_DIR=/var/cache/pha-ccache
  fi
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=1
fi
echo "== configure + build (preset dev)"
cmake --preset dev >/dev/null
cmake --build --preset dev

# --- tests: those that need no root and no missing tool --------------------
# Left out always, for ./scripts/test.sh:
#   network namespaces (root and iproute2): access_test.cpp, and the reload
#     test of the listener in reload_effects_test.cpp;
#   the layering test: it runs the build tool in build/, alone (about 50 s).
skip=('integration:access: '
  'integration:reload effects: the HTTP API - history - listener - tokens - read auth'
  'layering: ')
echo "-- skipped (needs root: network namespaces): integration:access, the reload test of the listener"
echo "-- skipped (50 s alone; ./scripts/test.sh runs it): layering"
# Left out when a tool they run is missing.
need() { # need TOOL WHY PATTERN...
  local tool=$1 why=$2
  shift 2
  if ! command -v "$tool" >/dev/null; then
    echo "-- skipped ($tool not installed: $why): $*"
    skip+=("$@")
  fi
}
need promtool "Debian package prometheus" 'monitoring_' \
  'integration:api: /metrics passes promtool' 'integration:prometheus: '
need prometheus "Debian package prometheus" 'integration:prometheus: '
need chromium "Debian package chromium" 'browser:'
need python3 "Debian package python3" 'monitoring_dashboard_json'
need curl "Debian package curl" 'demo: '
regex=$(printf '%s\n' "${skip[@]}" | sed 's/[][\.*^$()+?{}|]/\\&/g' | paste -sd'|')
echo "== tests (preset dev, without the above)"
ctest --preset dev -j "$(nproc)" -E "^($regex)" "$@"
echo "== check passed (the full check is ./scripts/test.sh)"
