#!/usr/bin/env bash
# bench/compare.sh BUILD_DIR — usersd against Redis and PostgreSQL, in one
# run, same machine.
#
# Starts the WorkOS-compatible test server, usersd (sync running), Redis on a
# Unix socket and a throwaway PostgreSQL (Unix socket only, fsync and
# synchronous_commit on, a users table of the store's shape and size), then
# runs, with the same connection count:
#   user.me (usersd-loadgen)          vs  redis-benchmark -t get
#                                     vs  pgbench -M prepared: SELECT by primary key
#   durable user.update (loadgen)     vs  redis-benchmark -t set, appendonly yes, appendfsync always
#                                     vs  pgbench -M prepared: UPDATE … RETURNING (one commit each)
# The pairs are interleaved, ROUNDS times (usersd, Redis, PostgreSQL; same
# order and warm-up each round), and each ratio is printed as the median with
# its min–max, so that changes of machine weather during the run show up
# as spread instead of as a skewed ratio. Beside each ratio: the CPU time per
# request of the server processes (utime+stime from /proc/PID/stat around
# each run, divided by the requests of that run, warm-up included): usersd;
# redis-server; every PostgreSQL process (postmaster, backends, background
# workers, and the backends that exited, through the postmaster's cutime).
# With a machine shared with builds this is steadier than throughput.
# For user.update also: the store's syncs per commit (usersd_store_syncs_total
# and _commits_total), the User Management requests the WorkOS-compatible
# test server received per user.update during the run, and the outbox depth
# after it. Before each user.me run the outbox is left to drain (at most
# DRAIN_SECONDS), so that its deliveries do not count against user.me.
# Also printed: the fdatasync latency of the store's filesystem, the CPU time
# stolen by the host and the load average at start and end, and the scale
# check: user.me latency with 1,000 vs 1,000,000 users, startup time to ready
# and idle RSS.
#
# Environment: CONNECTIONS (32), DURATION seconds per measured run (5),
# ROUNDS (5), USERS (1000), BIG_USERS (1000000; 0 skips the scale check),
# FIELD (timezone), PG (1; 0 leaves PostgreSQL out), DRAIN_SECONDS (60),
# METADATA (0: shared fields stay local; unset: the default, sharing on) and
# SYNC_MODE (one | two: store.sync_mode; unset: the default) (bench/lib.sh),
# LOADGEN (usersd-loadgen binary; default BUILD_DIR's).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
C=${CONNECTIONS:-32}
DUR=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
USERS=${USERS:-1000}
BIG=${BIG_USERS:-1000000}
FIELD=${FIELD:-timezone}
PG=${PG:-1}
LOADGEN=${LOADGEN:-$BUILD/bench/usersd-loadgen}
DRAIN=${DRAIN_SECONDS:-60}
SEED=$BUILD/bench/usersd-seed
USERSD=$BUILD/daemon/usersd
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

apt_install() {
  echo "installing $* (Debian packages) for the comparison" >&2
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt_install redis-server
fi
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ "$PG" = 1 ]; then
  if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/pgbench" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
    apt_install postgresql
  fi
  PGBIN=$(pg_bindir)
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
# CPU clock ticks of PostgreSQL: the postmaster, its children, and its reaped
# children (cutime+cstime).
pg_ticks() {
  local t c v
  t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$PGPID/stat")
  for c in $(pgrep -P "$PGPID"); do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$c/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# users outbox_depth syncs commits workos_requests writes (bench/usersd_stats.mjs)
usersd_stats() { node "$ROOT/bench/usersd_stats.mjs" --admin "$D1/admin.sock" --fake "$FAKE" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# A ratio column: "median (min–max)".
ratio_col() { read -r m lo hi < <(stats "$@"); printf "%.2f (%.2f–%.2f)" "$m" "$lo" "$hi"; }

# CPU time stolen by the hypervisor: "steal_ticks total_ticks" from /proc/stat.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t }' /proc/stat; }
HZ=$(getconf CLK_TCK)
steal_line() { # [steal and total ticks at start] -> text
  local s0=${1:-0} t0=${2:-0} s1 t1
  read -r s1 t1 < <(cpu_ticks)
  awk -v s0="$s0" -v t0="$t0" -v s1="$s1" -v t1="$t1" -v hz="$HZ" \
    'BEGIN { d = t1 - t0; printf "%.1f s since boot (all cores)", s1 / hz
             if (t0 > 0) printf "; %.2f s of %.0f CPU-s (%.2f%%) during the run", (s1 - s0) / hz, d / hz, 100 * (s1 - s0) / d }'
}

# fdatasync latency of a filesystem: 4 KiB write + fdatasync, N times each
# appending (file grows, like an AOF or WAL) and overwriting one block (like
# LMDB's meta page). Prints "append_median overwrite_median append_min append_max" in ms.
fsync_probe() { # dir n
  node -e '
    const fs = require("fs"), file = process.argv[1] + "/fsync-probe", n = Number(process.argv[2]);
    const buf = Buffer.alloc(4096, 7), fd = fs.openSync(file, "w");
    const run = (pos) => { const t = [];
      for (let i = 0; i < n; i++) { const t0 = process.hrtime.bigint(); fs.writeSync(fd, buf, 0, buf.length, pos(i));
        fs.fdatasyncSync(fd); t.push(Number(process.hrtime.bigint() - t0) / 1e6); }
      return t.sort((x, y) => x - y); };
    const app = run((i) => i * 4096), ow = run(() => 0);
    fs.closeSync(fd); fs.unlinkSync(file);
    const med = (a) => a[a.length >> 1].toFixed(3);
    console.log(med(app), med(ow), app[0].toFixed(3), app[app.length - 1].toFixed(3));' "$1" "${2:-200}"
}

read -r STEAL0 TICKS0 < <(cpu_ticks)
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== steal at start: $(steal_line)"
fsync_line() {
  local app ow lo hi
  read -r app ow lo hi < <(fsync_probe "$WORK" 200)
  echo "$(df -PT "$WORK" | awk 'NR==2 {print $2, "on", $1}'), 4 KiB write + fdatasync, median of 200: append $app ms (min $lo, max $hi), overwrite $ow ms"
}
echo "== fdatasync of the stores' filesystem at start: $(fsync_line)"
echo "== usersd $("$USERSD" --version | cut -d' ' -f2), $C connections, $ROUNDS rounds of ${DUR}s runs, $USERS users"
[ "$PG" = 1 ] && echo "== PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $(redis-server --version | awk '{print "Redis", $3}' | tr -d 'v=')"

# --- usersd with $USERS users -------------------------------------------
D1=$WORK/small; mkdir -p "$D1"; write_config "$D1"
start_usersd "$D1"
node "$ROOT/bench/setup.mjs" --fake "$FAKE" --socket "$D1/usersd.sock" --users "$USERS" --out "$D1/creds" 2>/dev/null
sleep 0.5
IDLE_RSS=$(rss_kib "$USERSD_PID"); IDLE_RSS_X=$(rss_excl_map_kib "$USERSD_PID")
loadgen() { # op -> LG (its JSON), LG_CPU (usersd's CPU µs per reply of the run) and LG_FAKE_CPU (the test server's)
  local t0 t1 f0 f1
  t0=$(proc_ticks "$USERSD_PID"); f0=$(proc_ticks "$FAKE_PID")
  LG=$("$LOADGEN" --socket "$D1/usersd.sock" --tokens "$D1/creds" -c "$C" --duration "$DUR" --op "$1" --field "$FIELD" --json)
  t1=$(proc_ticks "$USERSD_PID"); f1=$(proc_ticks "$FAKE_PID")
  LG_CPU=$(cpu_us $((t1 - t0)) "$(field "$LG" replies)")
  LG_FAKE_CPU=$(cpu_us $((f1 - f0)) "$(field "$LG" replies)")
}
# Waits until the outbox is empty (at most DRAIN seconds); prints the seconds.
drain_outbox() {
  local t0 depth
  t0=$(date +%s%N)
  while :; do
    read -r _ depth _ < <(usersd_stats)
    [ "$depth" = 0 ] && break
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt "$DRAIN" ] || break
    sleep 0.2
  done
  awk -v n=$(( ($(date +%s%N) - t0) / 1000000 )) 'BEGIN { printf "%.1f", n / 1000 }'
}

# --- Redis on a Unix socket ---------------------------------------------
redis_run() { # extra-args... ; prints "pid dir"
  local dir=$WORK/redis-$RANDOM; mkdir -p "$dir"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" --save "" "$@" \
    >"$dir/log" 2>&1 </dev/null &
  local pid=$!
  local i=0
  until [ -S "$dir/redis.sock" ]; do sleep 0.01; i=$((i + 1)); [ "$i" -lt 1000 ] || { cat "$dir/log" >&2; return 1; }; done
  echo "$pid $dir"
}
# redis_run's server must not hold the command substitution's pipe open.
read -r RPID_GET RDIR_GET < <(redis_run --appendonly no)
PIDS+=($RPID_GET)
read -r RPID_SET RDIR_SET < <(redis_run --appendonly yes --appendfsync always)
PIDS+=($RPID_SET)
redis-benchmark -s "$RDIR_GET/redis.sock" -c "$C" -n 500000 -d 300 -t set -q >/dev/null  # fill keys for GET
redis_bench() { # dir test requests pid -> RB (requests per second) and RB_CPU (the server's CPU µs per request)
  local t0 t1
  t0=$(proc_ticks "$4")
  RB=$(redis-benchmark -s "$1/redis.sock" -c "$C" -n "$3" -d 300 -t "$2" --csv | awk -F'","' 'NR==2 {gsub(/"/,"",$2); print $2}')
  t1=$(proc_ticks "$4")
  RB_CPU=$(cpu_us $((t1 - t0)) "$3")
}

# --- PostgreSQL: a throwaway server on a Unix socket ----------------------
# Runs as the postgres user (or nobody) when started as root: the server
# refuses to run as root.
if [ "$PG" = 1 ]; then
  PGDIR=$WORK/pg; mkdir -p "$PGDIR"
  as_pg() { "$@"; }
  if [ "$(id -u)" = 0 ]; then
    PGUSER_OS=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
    chmod 711 "$WORK"; chown "$PGUSER_OS" "$PGDIR"
    as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
  fi
  as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U bench -A trust -E UTF8 >"$PGDIR/initdb.log" 2>&1 \
    || { cat "$PGDIR/initdb.log" >&2; exit 1; }
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -o \
    "-c listen_addresses='' -k $PGDIR -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=$((C + 10))" \
    start >/dev/null || { cat "$PGDIR/log" >&2; exit 1; }
  PGPID=$(head -n 1 "$PGDIR/data/postmaster.pid")
  pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
  trap 'pg_stop; bench_cleanup' EXIT
  # The users table: the columns usersd stores for a user, USERS rows like
  # the daemon's store in this bench, ids derived from the row number.
  "$PGBIN/psql" -h "$PGDIR" -U bench -d postgres -q -v ON_ERROR_STOP=1 -v users="$USERS" >/dev/null <<'SQL'
CREATE TABLE users (
  id uuid PRIMARY KEY,
  workos_id text NOT NULL UNIQUE,
  email text NOT NULL,
  first_name text NOT NULL,
  last_name text NOT NULL,
  avatar_url text,
  timezone text,
  settings jsonb NOT NULL DEFAULT '{}',
  user_type text NOT NULL DEFAULT 'user',
  is_onboarded boolean NOT NULL DEFAULT false,
  organization_id text,
  role text NOT NULL DEFAULT 'member',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE UNIQUE INDEX users_live_email ON users (lower(email)) WHERE deleted_at IS NULL;
INSERT INTO users (id, workos_id, email, first_name, last_name, avatar_url, timezone)
  SELECT md5('usersd-bench-' || n)::uuid, 'user_bench_' || n, 'loadgen' || n || '@example.com', 'Load', 'Gen ' || n,
         'https://avatars.example.com/' || n || '.png', 'UTC'
  FROM generate_series(1, :users) AS n;
VACUUM ANALYZE users;
SQL
  # Connection i reads and writes user i mod USERS, as usersd-loadgen does.
  COLS="id, workos_id, email, first_name, last_name, avatar_url, timezone, settings, user_type, is_onboarded, organization_id, role, created_at, updated_at, deleted_at"
  cat >"$WORK/pg-select.sql" <<SQL
\set n :client_id % :users + 1
SELECT $COLS FROM users WHERE id = md5('usersd-bench-' || :n)::uuid;
SQL
  cat >"$WORK/pg-update.sql" <<SQL
\set n :client_id % :users + 1
\set z random(1, 4)
UPDATE users SET timezone = (ARRAY['Europe/Paris', 'UTC', 'America/New_York', 'Asia/Tokyo'])[:z], updated_at = now()
  WHERE id = md5('usersd-bench-' || :n)::uuid RETURNING $COLS;
SQL
fi
pgbench_run() { # script seconds -> "tps latency_avg_ms transactions"
  "$PGBIN/pgbench" -h "$PGDIR" -U bench -n -M prepared -c "$C" -j 1 -T "$2" -D users="$USERS" -f "$1" postgres 2>&1 |
    awk '/^latency average/ { lat = $4 } /^tps/ { tps = $3 } /^number of failed transactions/ { failed = $5 }
         /^number of transactions actually processed/ { n = $6 }
         END { if (tps == "" || failed + 0 > 0) { print "pgbench failed" > "/dev/stderr"; exit 1 } print tps, lat, n }'
}
pg_bench() { # script -> PGB (tps; 1 s warm-up, like usersd-loadgen's, then DURATION) and PG_CPU (CPU µs per transaction)
  local t0 t1 n
  pgbench_run "$1" 1 >/dev/null
  t0=$(pg_ticks)
  read -r PGB _ n < <(pgbench_run "$1" "$DUR")
  sleep 0.2  # the run's backends exit and are reaped (cutime)
  t1=$(pg_ticks)
  PG_CPU=$(cpu_us $((t1 - t0)) "$n")
}

# --- the rounds: usersd, Redis, PostgreSQL; read pairs then durable writes -
R_ME=() R_GET=() R_SEL=() R_UPD=() R_SET=() R_PUPD=()
X_GET=() X_SEL=() X_SET=() X_PUPD=()
P50_ME=() P99_ME=() P999_ME=() P50_UPD=() P99_UPD=() P999_UPD=()
C_ME=() C_GET=() C_SEL=() C_UPD=() C_SET=() C_PUPD=() C_FAKE=()
SPC=() WPU=() DEPTH=() DRAINED=()
N_GET=$((100000 * DUR)) N_SET=$((10000 * DUR))
for r in $(seq "$ROUNDS"); do
  DRAINED+=("$(drain_outbox)")
  loadgen me; ME=$LG; ME_RPS=$(field "$ME" rps); C_ME+=("$LG_CPU")
  redis_bench "$RDIR_GET" get "$N_GET" "$RPID_GET"; GET_RPS=$RB; C_GET+=("$RB_CPU")
  R_ME+=("$ME_RPS"); R_GET+=("$GET_RPS"); X_GET+=("$(ratio "$ME_RPS" "$GET_RPS")")
  P50_ME+=("$(field "$ME" p50_ms)"); P99_ME+=("$(field "$ME" p99_ms)"); P999_ME+=("$(field "$ME" p999_ms)")
  line="round $r: user.me $ME_RPS/s ${LG_CPU} µs, GET $(printf %.0f "$GET_RPS")/s ${RB_CPU} µs"
  if [ "$PG" = 1 ]; then
    pg_bench "$WORK/pg-select.sql"; SEL_TPS=$PGB; C_SEL+=("$PG_CPU")
    R_SEL+=("$SEL_TPS"); X_SEL+=("$(ratio "$ME_RPS" "$SEL_TPS")")
    line+=", SELECT $(printf %.0f "$SEL_TPS")/s ${PG_CPU} µs"
  fi
  read -r _ _ S0 K0 _ _ < <(usersd_stats --clear-fake)
  loadgen update; UPD=$LG; UPD_RPS=$(field "$UPD" rps); C_UPD+=("$LG_CPU"); C_FAKE+=("$LG_FAKE_CPU")
  read -r NUSERS DEPTH_NOW S1 K1 WREQ _ < <(usersd_stats)
  DEPTH+=("$DEPTH_NOW")
  WPU+=("$(awk -v w="$WREQ" -v n="$(field "$UPD" replies)" 'BEGIN { if (n > 0) printf "%.3f", w / n; else print 0 }')")
  SPC_NOW=n/a
  if [ "$S0" != n/a ] && [ "$K1" != "$K0" ]; then
    SPC_NOW=$(awk -v s=$((S1 - S0)) -v k=$((K1 - K0)) 'BEGIN { printf "%.3f", s / k }')
    SPC+=("$SPC_NOW")
  fi
  redis_bench "$RDIR_SET" set "$N_SET" "$RPID_SET"; SET_RPS=$RB; C_SET+=("$RB_CPU")
  R_UPD+=("$UPD_RPS"); R_SET+=("$SET_RPS"); X_SET+=("$(ratio "$UPD_RPS" "$SET_RPS")")
  P50_UPD+=("$(field "$UPD" p50_ms)"); P99_UPD+=("$(field "$UPD" p99_ms)"); P999_UPD+=("$(field "$UPD" p999_ms)")
  line+="; user.update $UPD_RPS/s $LG_CPU µs ($SPC_NOW syncs/commit, ${WPU[-1]} WorkOS requests each, outbox $DEPTH_NOW), SET $(printf %.0f "$SET_RPS")/s ${RB_CPU} µs"
  if [ "$PG" = 1 ]; then
    pg_bench "$WORK/pg-update.sql"; PUPD_TPS=$PGB; C_PUPD+=("$PG_CPU")
    R_PUPD+=("$PUPD_TPS"); X_PUPD+=("$(ratio "$UPD_RPS" "$PUPD_TPS")")
    line+=", UPDATE $(printf %.0f "$PUPD_TPS")/s ${PG_CPU} µs"
  fi
  echo "$line; load $(cut -d' ' -f1 /proc/loadavg)"
  # Next round's Redis runs last about DURATION seconds too.
  N_GET=$(awk -v r="$GET_RPS" -v d="$DUR" 'BEGIN { n = int(r * d); print n < 10000 ? 10000 : n }')
  N_SET=$(awk -v r="$SET_RPS" -v d="$DUR" 'BEGIN { n = int(r * d); print n < 2000 ? 2000 : n }')
done
kill "$USERSD_PID"; wait "$USERSD_PID" 2>/dev/null || true
kill "$RPID_GET" "$RPID_SET"; wait "$RPID_GET" "$RPID_SET" 2>/dev/null || true
if [ "$PG" = 1 ]; then
  # The UPDATEs hit the rows the connections own, as user.update does.
  touched=$("$PGBIN/psql" -h "$PGDIR" -U bench -d postgres -tAc "SELECT count(*) FROM users WHERE updated_at > created_at")
  [ "$touched" = "$(( C < USERS ? C : USERS ))" ] || { echo "PostgreSQL: $touched rows updated, expected one per connection" >&2; exit 1; }
  pg_stop
fi
ME_RPS=$(median "${R_ME[@]}")
ME_P50=$(median "${P50_ME[@]}"); ME_P99=$(median "${P99_ME[@]}")
cpu_col() { median "$@" | awk '{ printf "%.1f", $1 }'; }

echo
printf "%-52s %10s %10s  %-20s %9s %9s\n" "pair ($C connections; medians of $ROUNDS rounds)" "usersd/s" "peer/s" "ratio median (min–max)" "usersd µs" "peer µs"
printf "%-52s %10.0f %10.0f  %-20s %9s %9s\n" "user.me vs Redis GET" "$ME_RPS" "$(median "${R_GET[@]}")" "$(ratio_col "${X_GET[@]}")" "$(cpu_col "${C_ME[@]}")" "$(cpu_col "${C_GET[@]}")"
[ "$PG" = 1 ] && printf "%-52s %10.0f %10.0f  %-20s %9s %9s\n" "user.me vs PostgreSQL SELECT by key (prepared)" "$ME_RPS" "$(median "${R_SEL[@]}")" "$(ratio_col "${X_SEL[@]}")" "$(cpu_col "${C_ME[@]}")" "$(cpu_col "${C_SEL[@]}")"
printf "%-52s %10.0f %10.0f  %-20s %9s %9s\n" "user.update ($FIELD) vs Redis SET appendfsync always" "$(median "${R_UPD[@]}")" "$(median "${R_SET[@]}")" "$(ratio_col "${X_SET[@]}")" "$(cpu_col "${C_UPD[@]}")" "$(cpu_col "${C_SET[@]}")"
[ "$PG" = 1 ] && printf "%-52s %10.0f %10.0f  %-20s %9s %9s\n" "user.update ($FIELD) vs PostgreSQL UPDATE … RETURNING" "$(median "${R_UPD[@]}")" "$(median "${R_PUPD[@]}")" "$(ratio_col "${X_PUPD[@]}")" "$(cpu_col "${C_UPD[@]}")" "$(cpu_col "${C_PUPD[@]}")"
echo "(µs: CPU time of the server processes per request, utime+stime from /proc, medians of the rounds)"
echo
echo "user.me     latency ms (medians of the rounds): p50 $ME_P50  p99 $ME_P99  p99.9 $(median "${P999_ME[@]}")"
echo "user.update latency ms (medians of the rounds): p50 $(median "${P50_UPD[@]}")  p99 $(median "${P99_UPD[@]}")  p99.9 $(median "${P999_UPD[@]}")"
if [ "${#SPC[@]}" -gt 0 ]; then
  read -r m lo hi < <(stats "${SPC[@]}")
  echo "user.update: store syncs per commit $m ($lo–$hi) (usersd_store_syncs_total / usersd_store_commits_total over each run)"
else
  echo "user.update: store syncs per commit n/a (this usersd does not count them)"
fi
read -r m lo hi < <(stats "${WPU[@]}")
echo "user.update: WorkOS User Management requests per user.update during the run $m ($lo–$hi); the test server's CPU per user.update $(cpu_col "${C_FAKE[@]}") µs"
echo "outbox depth right after each update run: ${DEPTH[*]} (store: $NUSERS users); seconds waited for it to drain before each user.me run: ${DRAINED[*]}"
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
  echo
  printf "%-44s %12s %12s %8s\n" "scale (user.me)" "$BIG users" "$USERS users" "ratio"
  printf "%-44s %12s %12s %8s\n" "p50 latency ms" "$(field "$BIGME" p50_ms)" "$ME_P50" "$(ratio "$(field "$BIGME" p50_ms)" "$ME_P50")"
  printf "%-44s %12s %12s %8s\n" "p99 latency ms" "$(field "$BIGME" p99_ms)" "$ME_P99" "$(ratio "$(field "$BIGME" p99_ms)" "$ME_P99")"
  printf "%-44s %12.0f %12.0f %8s\n" "throughput req/s" "$(field "$BIGME" rps)" "$ME_RPS" "$(ratio "$(field "$BIGME" rps)" "$ME_RPS")"
  echo "startup to socket ready with $BIG users: ${BIG_READY_MS} ms; idle RSS: ${BIG_RSS} KiB total, ${BIG_RSS_X} KiB excluding the data.mdb mapping"
fi
echo
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== steal at end: $(steal_line "$STEAL0" "$TICKS0")"
echo "== fdatasync of the stores' filesystem at end: $(fsync_line)"
