#!/usr/bin/env bash
# bench/refusals.sh BUILD_DIR — durable user.update throughput with and
# without refused requests in the mix (issue 11: a refusal must not cost the
# group commit anything).
#
# One usersd (sync running against the WorkOS-compatible test server), USERS
# users who are admins of one organization with
# policy.org_admins_manage_members on, so that a refusal is decided inside
# the write op (the self-only policy refuses before the writer). ROUNDS
# times, interleaved: a clean `user.update` run, then the same load with
# REFUSE_PERCENT of the updates naming a user that does not exist (refused
# with UnauthorizedError). Prints both throughputs per round, the ratio mix/clean as median
# (min–max), and how many write batches the writer had to replay op by op
# (usersd_writer_replays_total) during each kind of run.
#
# Environment: CONNECTIONS (32), DURATION (5), ROUNDS (5), USERS (1000),
# REFUSE_PERCENT (10).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
C=${CONNECTIONS:-32}
DUR=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
USERS=${USERS:-1000}
P=${REFUSE_PERCENT:-10}
LOADGEN=$BUILD/bench/usersd-loadgen
USERSD=$BUILD/daemon/usersd
USERSCTL=$BUILD/usersctl/usersctl

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init "$ROOT"
bench_start_fake
D=$WORK/d; mkdir -p "$D"; bench_write_config "$D"
echo "policy: { org_admins_manage_members: true }" >>"$D/usersd.yaml"
"$USERSD" --config "$D/usersd.yaml" >"$D/usersd.out" 2>"$D/usersd.log" &
PIDS+=($!)
for _ in $(seq 2000); do [ -S "$D/usersd.sock" ] && break; sleep 0.005; done
node "$ROOT/bench/setup.mjs" --fake "$FAKE" --socket "$D/usersd.sock" --users "$USERS" --out "$D/creds" --org org_bench --role admin 2>/dev/null

replays() { "$USERSCTL" --socket "$D/admin.sock" metrics | awk '/^usersd_writer_replays_total / {print $2}'; }
rps() { sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$1"; }
refused() { sed -n 's/.*"refused":\([0-9]*\).*/\1/p' <<<"$1"; }
run() { "$LOADGEN" --socket "$D/usersd.sock" --tokens "$D/creds" -c "$C" --duration "$DUR" --op update --json "$@"; }

echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $C connections, $ROUNDS rounds of ${DUR}s, $P% refused"
ratios=(); clean_replays=0; mix_replays=0
for r in $(seq "$ROUNDS"); do
  b0=$(replays); CLEAN=$(run); b1=$(replays)
  MIX=$(run --refuse-percent "$P"); b2=$(replays)
  clean_replays=$((clean_replays + ${b1%.*} - ${b0%.*})); mix_replays=$((mix_replays + ${b2%.*} - ${b1%.*}))
  ratio=$(awk -v a="$(rps "$MIX")" -v b="$(rps "$CLEAN")" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf 'round %d: clean %s/s, mix %s/s (%s refused), ratio %s\n' "$r" "$(rps "$CLEAN")" "$(rps "$MIX")" "$(refused "$MIX")" "$ratio"
done
read -r m lo hi < <(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 }
  END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }')
echo "== mix/clean throughput: median $m (min $lo, max $hi)"
echo "== batches replayed op by op: clean runs $clean_replays, mixed runs $mix_replays"
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
