#!/usr/bin/env bash
# clang-tidy (.clang-tidy) on every source of agent/, with the compile
# commands of a build tree (default: build). A finding is an error. A file
# whose source, the agent's headers, its compile command, the checks and
# clang-tidy itself are unchanged since it last passed is not checked again
# (stamps in PHA_TIDY_CACHE, default /var/cache/pha-tidy).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cache=${PHA_TIDY_CACHE:-/var/cache/pha-tidy}
mkdir -p "$cache"
[[ -f $build/compile_commands.json ]] || { echo "no $build/compile_commands.json: build first" >&2; exit 1; }

# What every file's result depends on besides itself.
common=$( { clang-tidy --version; cat .clang-tidy; git ls-files 'agent/*.hpp' | sort | xargs cat; } |
  sha256sum | cut -c1-64)
export build cache common
check() {
  local f=$1 key
  key=$( { echo "$common"; cat "$f"; grep -F "\"file\": \"$PWD/$f\"" -B2 "$build/compile_commands.json" | sed "s|$PWD||g"; } |
    sha256sum | cut -c1-64)
  [[ -e $cache/$key ]] && return 0
  if out=$(clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option "$f" 2>&1); then
    touch "$cache/$key"
  else
    printf '%s\n' "$out" | grep -v ' warnings generated\.$' >&2
    return 1
  fi
}
export -f check
files=$(git ls-files 'agent/*.cpp')
echo "clang-tidy: $(wc -w <<<"$files") files of agent/"
xargs -P "$(nproc)" -n 1 bash -c 'check "$0"' <<<"$files"
echo "clang-tidy: clean"
