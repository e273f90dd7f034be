#!/usr/bin/env bash
# tools/format-check.sh [BASE] — fails when a line of C++ changed since BASE
# (default: FORMAT_BASE, else HEAD~1) is not formatted as .clang-format says.
# Only changed lines are judged (clang-format-diff), so the check can run on
# a tree that is not formatted as a whole. `make format-check` runs it;
# `tools/format-check.sh BASE --fix` rewrites those lines instead.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-${FORMAT_BASE:-HEAD~1}}
fix=${2:-}
if ! git rev-parse -q --verify "$base^{commit}" >/dev/null; then
  echo "format-check: no commit $base to compare with (shallow clone?); nothing checked"
  exit 0
fi
cfd=$(command -v clang-format-diff || command -v clang-format-diff-14 || true)
if [ -z "$cfd" ]; then
  echo "format-check: clang-format-diff not found (make deps installs clang-format)" >&2
  exit 2
fi
paths=(':(glob)**/*.cc' ':(glob)**/*.h' ':(exclude)clients/**' ':(exclude)tests/interop/**')
if [ "$fix" = "--fix" ]; then
  git diff -U0 --no-color "$base" -- "${paths[@]}" | "$cfd" -p1 -i
  exit 0
fi
out=$(git diff -U0 --no-color "$base" -- "${paths[@]}" | "$cfd" -p1)
if [ -n "$out" ]; then
  printf '%s\n' "$out"
  echo "format-check: the lines above changed since $base and are not formatted (.clang-format);" \
    "fix with: tools/format-check.sh $base --fix" >&2
  exit 1
fi
echo "format-check: lines changed since $base are formatted"
