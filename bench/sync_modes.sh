#!/usr/bin/env bash
# bench/sync_modes.sh BUILD_DIR — store.sync_mode one against two, interleaved.
#
# The rate of durable writes follows the disk's fdatasync latency, which on a
# shared virtual disk moves from 0.2 to 4 ms within minutes, so two
# compare.sh runs cannot tell the modes apart. This starts the
# WorkOS-compatible test server and two daemons that differ only in
# store.sync_mode, provisions USERS users on each, and runs the durable
# user.update load (usersd-loadgen) against both in every round, the first
# one alternating. Printed per round and as medians: updates/s, p50 and p99
# latency, the daemon's CPU time per update, the store's syncs per commit
# (usersd_store_syncs_total / usersd_store_commits_total) and writes per
# commit (usersd_writer_ops_total / commits; outbox and events writes
# included).
#
# Environment: CONNECTIONS (32), DURATION seconds per run (5), ROUNDS (6),
# USERS (1000), FIELD (timezone), METADATA (bench/lib.sh; unset: sharing on,
# the default), LOADGEN (usersd-loadgen binary; default BUILD_DIR's).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
C=${CONNECTIONS:-32}
DUR=${DURATION:-5}
ROUNDS=${ROUNDS:-6}
USERS=${USERS:-1000}
FIELD=${FIELD:-timezone}
LOADGEN=${LOADGEN:-$BUILD/bench/usersd-loadgen}

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init "$ROOT"
bench_start_fake

declare -A PID
for mode in one two; do
  dir=$WORK/$mode
  mkdir -p "$dir"
  SYNC_MODE=$mode bench_write_config "$dir"
  "$BUILD/daemon/usersd" --config "$dir/usersd.yaml" >"$dir/usersd.out" 2>"$dir/usersd.log" &
  PID[$mode]=$!
  PIDS+=("${PID[$mode]}")
  until [ -S "$dir/usersd.sock" ]; do
    kill -0 "${PID[$mode]}" 2>/dev/null || { cat "$dir/usersd.log" >&2; exit 1; }
    sleep 0.01
  done
  node "$ROOT/bench/setup.mjs" --fake "$FAKE" --socket "$dir/usersd.sock" --users "$USERS" --out "$dir/creds" 2>/dev/null
done

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $C connections, $ROUNDS rounds of ${DUR}s user.update ($FIELD) per mode, METADATA=${METADATA:-default}"
declare -A RPS P50 P99 CPU SPC OPC
run() { # mode -> appends to the arrays; prints one line
  local mode=$1 dir=$WORK/$1 t0 t1 out s0 k0 s1 k1 o0 o1
  read -r _ _ s0 k0 _ o0 < <(node "$ROOT/bench/usersd_stats.mjs" --admin "$dir/admin.sock")
  t0=$(proc_ticks "${PID[$mode]}")
  out=$("$LOADGEN" --socket "$dir/usersd.sock" --tokens "$dir/creds" -c "$C" --duration "$DUR" --op update --field "$FIELD" --json)
  t1=$(proc_ticks "${PID[$mode]}")
  read -r _ _ s1 k1 _ o1 < <(node "$ROOT/bench/usersd_stats.mjs" --admin "$dir/admin.sock")
  local cpu spc opc
  cpu=$(cpu_us $((t1 - t0)) "$(field "$out" replies)")
  spc=$(awk -v s=$((s1 - s0)) -v k=$((k1 - k0)) 'BEGIN { printf "%.3f", (k > 0 ? s / k : 0) }')
  opc=$(awk -v o=$((o1 - o0)) -v k=$((k1 - k0)) 'BEGIN { printf "%.1f", (k > 0 ? o / k : 0) }')
  RPS[$mode]+=" $(field "$out" rps)"; P50[$mode]+=" $(field "$out" p50_ms)"; P99[$mode]+=" $(field "$out" p99_ms)"
  CPU[$mode]+=" $cpu"; SPC[$mode]+=" $spc"; OPC[$mode]+=" $opc"
  printf "  %s: %6s/s  p50 %6s ms  p99 %7s ms  %6s µs/update  %s syncs/commit  %s writes/commit\n" \
    "$mode" "$(field "$out" rps)" "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" "$cpu" "$spc" "$opc"
}
for r in $(seq "$ROUNDS"); do
  echo "round $r (load $(cut -d' ' -f1 /proc/loadavg))"
  if [ $((r % 2)) = 1 ]; then run one; run two; else run two; run one; fi
done
echo
printf "%-5s %10s %10s %10s %12s %14s %14s\n" mode "updates/s" "p50 ms" "p99 ms" "µs/update" "syncs/commit" "writes/commit"
for mode in one two; do
  # shellcheck disable=SC2086
  printf "%-5s %10.0f %10s %10s %12s %14s %14s\n" "$mode" "$(median ${RPS[$mode]})" "$(median ${P50[$mode]})" \
    "$(median ${P99[$mode]})" "$(median ${CPU[$mode]})" "$(median ${SPC[$mode]})" "$(median ${OPC[$mode]})"
done
echo "(medians of $ROUNDS rounds; load average at end $(cut -d' ' -f1-3 /proc/loadavg))"
