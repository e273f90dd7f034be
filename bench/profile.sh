#!/usr/bin/env bash
# bench/profile.sh BUILD_DIR OP SECONDS [perf record args...]
#
# One load run for profiling: starts the WorkOS-compatible test server and
# usersd (fresh store in a temporary directory), provisions 1,000 users with
# bench/setup.mjs, then runs usersd-loadgen (32 connections, OP = me | update)
# for SECONDS. With perf arguments, `perf record <args> -p <usersd pid>`
# samples the daemon for the length of the run and writes perf.data in the
# current directory. Examples (docs/BENCHMARKS.md, "Where the CPU goes"):
#   bash bench/profile.sh build me 6 -F 3000
#   FIELD=timezone bash bench/profile.sh build update 6 -F 4000
#   perf report --no-children --sort dso,symbol
# Environment: FIELD (the field user.update sets), CONNECTIONS (32).
set -euo pipefail
BUILD=${1:?usage: bench/profile.sh BUILD_DIR me|update SECONDS [perf args...]}
OP=${2:?op}
DUR=${3:?seconds}
shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
OUT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init "$ROOT"
bench_start_fake
W=$WORK
bench_write_config "$W"
"$BUILD/daemon/usersd" --config "$W/usersd.yaml" >/dev/null 2>"$W/usersd.log" &
UP=$!
PIDS+=($UP)
until [ -S "$W/usersd.sock" ]; do
  kill -0 "$UP" 2>/dev/null || { cat "$W/usersd.log" >&2; exit 1; }
  sleep 0.01
done
node "$ROOT/bench/setup.mjs" --fake "$FAKE" --socket "$W/usersd.sock" --users 1000 --out "$W/creds" 2>/dev/null
PERF=
if [ $# -gt 0 ]; then
  perf record -o "$OUT/perf.data" "$@" -p "$UP" -- sleep "$((DUR > 1 ? DUR - 1 : 1))" >/dev/null 2>&1 &
  PERF=$!
fi
"$BUILD/bench/usersd-loadgen" --socket "$W/usersd.sock" --tokens "$W/creds" -c "${CONNECTIONS:-32}" \
  --duration "$DUR" --op "$OP" ${FIELD:+--field "$FIELD"}
if [ -n "$PERF" ]; then wait "$PERF" || true; fi
