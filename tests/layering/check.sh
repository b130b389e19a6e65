#!/usr/bin/env bash
# Builds the two targets of tests/layering/CMakeLists.txt: the allowed one
# must build, the violation must fail, and fail for the reason under test.
set -uo pipefail
build=$1
if ! out=$(cmake --build "$build" --target pha_layering_allowed 2>&1); then
  printf '%s\n' "$out"
  echo "FAIL: agent/sync/plan.hpp does not build even when pha_sync is linked" >&2
  exit 1
fi
if out=$(cmake --build "$build" --target pha_layering_violation 2>&1); then
  echo "FAIL: pha_core, a lower layer, could include agent/sync/plan.hpp" >&2
  exit 1
fi
if ! grep -c 'agent/sync/plan.hpp: No such file or directory' <<<"$out" >/dev/null; then
  printf '%s\n' "$out"
  echo "FAIL: the violation failed to build, but not because the header was out of reach" >&2
  exit 1
fi
echo "ok: linked to pha_sync it builds; linked to pha_core only: 'agent/sync/plan.hpp: No such file or directory'"
