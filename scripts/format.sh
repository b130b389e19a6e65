#!/usr/bin/env bash
# Formats every C++ file with the repository's .clang-format; with --check,
# changes nothing and fails when a file is not formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' || true)
if ((${#files[@]} == 0)); then exit 0; fi
if [[ ${1:-} == "--check" ]]; then
  clang-format --dry-run --Werror "${files[@]}"
  echo "format: ${#files[@]} files formatted"
else
  clang-format -i "${files[@]}"
fi
