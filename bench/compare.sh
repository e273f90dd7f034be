#!/usr/bin/env bash
# bench/compare.sh BUILD_DIR — usersd against Redis, in one run, same machine.
#
# Starts the WorkOS-compatible test server, usersd (sync running) and Redis on
# a Unix socket, then runs, with the same connection count:
#   user.me (usersd-loadgen)          vs  redis-benchmark -t get
#   durable user.update (loadgen)     vs  redis-benchmark -t set, appendonly yes, appendfsync always
# and the scale check: user.me latency with 1,000 vs 1,000,000 users, startup
# time to ready and idle RSS. Prints each pair and its ratio.
#
# Environment: CONNECTIONS (32), DURATION seconds per usersd run (10),
# USERS (1000), BIG_USERS (1000000; 0 skips the scale check), FIELD (timezone).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
C=${CONNECTIONS:-32}
DUR=${DURATION:-10}
USERS=${USERS:-1000}
BIG=${BIG_USERS:-1000000}
FIELD=${FIELD:-timezone}
LOADGEN=$BUILD/bench/usersd-loadgen
SEED=$BUILD/bench/usersd-seed
USERSD=$BUILD/daemon/usersd

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "installing redis-server (Debian package) for the comparison" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init "$ROOT"
bench_start_fake
write_config() { bench_write_config "$@"; }

start_usersd() { # dir -> sets USERSD_PID and READY_MS (start to socket ready)
  local dir=$1 t0 t1
  t0=$(date +%s%N)
  "$USERSD" --config "$dir/usersd.yaml" >"$dir/usersd.out" 2>"$dir/usersd.log" &
  USERSD_PID=$!
  PIDS+=($USERSD_PID)
  local i=0
  until [ -S "$dir/usersd.sock" ]; do
    sleep 0.001
    i=$((i + 1))
    if [ "$i" -gt 20000 ] || ! kill -0 "$USERSD_PID" 2>/dev/null; then
      echo "usersd did not become ready; log:" >&2; cat "$dir/usersd.log" >&2; exit 1
    fi
  done
  t1=$(date +%s%N)
  READY_MS=$(( (t1 - t0) / 1000000 ))
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Resident KiB of every mapping except LMDB's data.mdb (SPEC: "excluding
# LMDB's mapped file").
rss_excl_map_kib() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { in_map = ($NF ~ /\/data\.mdb$/) }
       /^Rss:/ && !in_map { sum += $2 }
       END { print sum + 0 }' "/proc/$1/smaps"
}
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== usersd $("$USERSD" --version | cut -d' ' -f2), $C connections, ${DUR}s per usersd run, $USERS users"

# --- usersd with $USERS users -------------------------------------------
D1=$WORK/small; mkdir -p "$D1"; write_config "$D1"
start_usersd "$D1"
node "$ROOT/bench/setup.mjs" --fake "$FAKE" --socket "$D1/usersd.sock" --users "$USERS" --out "$D1/creds" 2>/dev/null
sleep 0.5
IDLE_RSS=$(rss_kib "$USERSD_PID"); IDLE_RSS_X=$(rss_excl_map_kib "$USERSD_PID")
ME=$("$LOADGEN" --socket "$D1/usersd.sock" --tokens "$D1/creds" -c "$C" --duration "$DUR" --op me --json)
UPD=$("$LOADGEN" --socket "$D1/usersd.sock" --tokens "$D1/creds" -c "$C" --duration "$DUR" --op update --field "$FIELD" --json)
kill "$USERSD_PID"; wait "$USERSD_PID" 2>/dev/null || true

# --- Redis on a Unix socket ---------------------------------------------
redis_run() { # extra-args... ; prints requests per second of the test
  local dir=$WORK/redis-$RANDOM; mkdir -p "$dir"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" --save "" "$@" \
    >"$dir/log" 2>&1 </dev/null &
  local pid=$!
  local i=0
  until [ -S "$dir/redis.sock" ]; do sleep 0.01; i=$((i + 1)); [ "$i" -lt 1000 ] || { cat "$dir/log" >&2; return 1; }; done
  echo "$pid $dir"
}
# redis_run's server must not hold the command substitution's pipe open.
read -r RPID RDIR < <(redis_run --appendonly no)
PIDS+=($RPID)
redis-benchmark -s "$RDIR/redis.sock" -c "$C" -n 500000 -d 300 -t set -q >/dev/null  # fill keys for GET
GET_RPS=$(redis-benchmark -s "$RDIR/redis.sock" -c "$C" -n 1000000 -d 300 -t get --csv | awk -F'","' 'NR==2 {gsub(/"/,"",$2); print $2}')
kill "$RPID"; wait "$RPID" 2>/dev/null || true
read -r RPID RDIR < <(redis_run --appendonly yes --appendfsync always)
PIDS+=($RPID)
SET_RPS=$(redis-benchmark -s "$RDIR/redis.sock" -c "$C" -n 50000 -d 300 -t set --csv | awk -F'","' 'NR==2 {gsub(/"/,"",$2); print $2}')
kill "$RPID"; wait "$RPID" 2>/dev/null || true

ME_RPS=$(field "$ME" rps); UPD_RPS=$(field "$UPD" rps)
echo
printf "%-44s %12s %12s %8s\n" "pair" "usersd/s" "redis/s" "ratio"
printf "%-44s %12.0f %12.0f %8s\n" "user.me vs GET" "$ME_RPS" "$GET_RPS" "$(ratio "$ME_RPS" "$GET_RPS")"
printf "%-44s %12.0f %12.0f %8s\n" "user.update ($FIELD) vs SET appendfsync always" "$UPD_RPS" "$SET_RPS" "$(ratio "$UPD_RPS" "$SET_RPS")"
echo
echo "user.me     latency ms: p50 $(field "$ME" p50_ms)  p90 $(field "$ME" p90_ms)  p99 $(field "$ME" p99_ms)  p99.9 $(field "$ME" p999_ms)"
echo "user.update latency ms: p50 $(field "$UPD" p50_ms)  p90 $(field "$UPD" p90_ms)  p99 $(field "$UPD" p99_ms)  p99.9 $(field "$UPD" p999_ms)"
echo "startup to socket ready: ${READY_MS} ms (empty store); idle RSS after setup: ${IDLE_RSS} KiB total, ${IDLE_RSS_X} KiB excluding the data.mdb mapping"

# --- scale: 1,000,000 users ----------------------------------------------
if [ "$BIG" -gt 0 ]; then
  D2=$WORK/big; mkdir -p "$D2"; write_config "$D2"
  sed -i 's/map_size_mib: 64/map_size_mib: 4096/' "$D2/usersd.yaml"
  "$SEED" --store "$D2/store" --users "$BIG" --sample 1000 --out "$D2/sample" >/dev/null
  node "$ROOT/bench/setup.mjs" --fake "$FAKE" --seeded "$D2/sample" --out "$D2/creds" 2>/dev/null
  start_usersd "$D2"; BIG_READY_MS=$READY_MS
  sleep 0.5
  BIG_RSS=$(rss_kib "$USERSD_PID"); BIG_RSS_X=$(rss_excl_map_kib "$USERSD_PID")
  # Same working-set shape (one user per connection) against both stores.
  BIGME=$("$LOADGEN" --socket "$D2/usersd.sock" --tokens "$D2/creds" -c "$C" --duration "$DUR" --op me --json)
  kill "$USERSD_PID"; wait "$USERSD_PID" 2>/dev/null || true
  echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  printf "%-44s %12s %12s %8s\n" "scale (user.me)" "$BIG users" "$USERS users" "ratio"
  printf "%-44s %12s %12s %8s\n" "p50 latency ms" "$(field "$BIGME" p50_ms)" "$(field "$ME" p50_ms)" "$(ratio "$(field "$BIGME" p50_ms)" "$(field "$ME" p50_ms)")"
  printf "%-44s %12s %12s %8s\n" "p99 latency ms" "$(field "$BIGME" p99_ms)" "$(field "$ME" p99_ms)" "$(ratio "$(field "$BIGME" p99_ms)" "$(field "$ME" p99_ms)")"
  printf "%-44s %12.0f %12.0f %8s\n" "throughput req/s" "$(field "$BIGME" rps)" "$ME_RPS" "$(ratio "$(field "$BIGME" rps)" "$ME_RPS")"
  echo "startup to socket ready with $BIG users: ${BIG_READY_MS} ms; idle RSS: ${BIG_RSS} KiB total, ${BIG_RSS_X} KiB excluding the data.mdb mapping"
fi
