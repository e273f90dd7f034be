# bench/lib.sh — shared by bench/compare.sh and bench/profile.sh (sourced).
#
# bench_init ROOT: makes WORK (a temporary directory) and PIDS, and removes
#   both on exit; bench_start_fake: starts the WorkOS-compatible test server
#   and sets FAKE to its URL and FAKE_PID; bench_write_config DIR: writes
#   DIR/usersd.yaml for a daemon with its sockets and store in DIR, talking
#   to FAKE (METADATA=0: sharing off; SYNC_MODE=one|two: store.sync_mode;
#   unset, the binary's defaults apply). Also: field, proc_ticks, cpu_us,
#   stats, median (see each).

bench_init() {
  BENCH_ROOT=$1
  WORK=$(mktemp -d /tmp/usersd-bench.XXXXXX)
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

bench_start_fake() {
  # The request log holds every request of a run (compare.sh counts them).
  node "$BENCH_ROOT/tests/workos-fake/server.mjs" --port 0 --port-file "$WORK/fake.port" --max-log 5000000 \
    >/dev/null 2>"$WORK/fake.log" &
  FAKE_PID=$!
  PIDS+=($FAKE_PID)
  for _ in $(seq 100); do [ -s "$WORK/fake.port" ] && break; sleep 0.05; done
  FAKE="http://127.0.0.1:$(cat "$WORK/fake.port")"
}

bench_write_config() { # dir
  cat >"$1/usersd.yaml" <<YAML
socket: { path: $1/usersd.sock, max_connections: 4096 }
admin_socket: { path: $1/admin.sock }
store: { path: $1/store, map_size_mib: 64${SYNC_MODE:+, sync_mode: $SYNC_MODE} }
auth: { client_id: client_123 }
workos: { base_url: "$FAKE", api_key: sk_test_123, events_poll_seconds: 10 }
log: { level: warn }
YAML
  chmod 0600 "$1/usersd.yaml" # it holds the API key: usersd refuses a key every user may read
  # METADATA=0: the shared fields stay on the host (sync.metadata.enabled
  # false), as before SPEC 4b; unset, the binary's default applies (a binary
  # from before SPEC 4b refuses the key).
  if [ "${METADATA:-}" = 0 ]; then echo "sync: { metadata: { enabled: false } }" >>"$1/usersd.yaml"; fi
}

# A number field of a one-line JSON object: field JSON NAME.
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
# CPU clock ticks (utime+stime, all threads) of processes: proc_ticks PID...
proc_ticks() {
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# Microseconds of CPU per request: cpu_us TICKS REQUESTS.
cpu_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }'; }
# The median and the range of numbers: "median min max".
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
  END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'; }
median() { stats "$@" | awk '{ printf "%.3f", $1 }'; }
