#!/usr/bin/env bash
# Long fuzzing runs measured in CPU time, not wall time:
#
#   FUZZ_CPU_SECONDS=3600 FUZZ_PARALLEL=2 bash fuzz/cpu-hours.sh build-fuzz [target...]
#
# Each target runs through fuzz/run.sh with FUZZ_RESUME=1 (on the corpus the
# previous run left) until the fuzzer processes have used FUZZ_CPU_SECONDS of
# CPU (user + system); when other work on the machine took CPU, the target
# gets another round for what is missing. FUZZ_PARALLEL targets run at once
# (default 1; at most one per core makes sense), each at nice 5 so builds and
# tests keep priority. One line per round goes to stdout and to
# <work>/cpu-hours.log:
#   shared_fields round 1: 9012345 runs, 3421 s CPU (3600 s wall), 0 crashes
# and a summary line per target when it is done:
#   SUMMARY shared_fields: 9012345 runs, 3600 s CPU, 0 crashes Exits non-zero when any target
# crashed (the reproducer stays in <work>/<name>/artifacts/, see run.sh).
set -uo pipefail

# The whole script is one function, called on the last line, so that bash has
# read all of it before anything runs: a run takes hours, and an edit of this
# file meanwhile would otherwise be read from the middle by the running shell
# (it once re-ran half of the fuzzer's command line and overwrote its log).
main() {
  here="$(cd "$(dirname "$0")" && pwd)"
  build="${1:?usage: fuzz/cpu-hours.sh BUILD_DIR [target...]}"
  shift
  build="$(cd "$build" && pwd)"
  goal="${FUZZ_CPU_SECONDS:-3600}"
  parallel="${FUZZ_PARALLEL:-1}"
  work="${FUZZ_WORK_DIR:-$build/fuzz-work}"
  targets=("$@")
  if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(bash "$here/run.sh" --list "$build"); fi
  mkdir -p "$work"
  log="$work/cpu-hours.log"

  # Runs one target to its CPU goal; prints its summary line last.
  one() {
    local name="$1" used_ms=0 runs=0 round=0 crashes=0 left out rc u s e r ms
    while [ "$used_ms" -lt $((goal * 1000)) ]; do
      round=$((round + 1))
      left=$(((goal * 1000 - used_ms + 999) / 1000))
      if [ "$left" -lt 60 ] && [ "$goal" -ge 60 ]; then left=60; fi
      out="$(FUZZ_RESUME=1 FUZZ_SECONDS="$left" FUZZ_WORK_DIR="$work" \
        /usr/bin/time -f '%U %S %e' -o "$work/$name.time" nice -n 5 bash "$here/run.sh" "$build" "$name" 2>&1)"
      rc=$?
      # time -o writes "Command exited with non-zero status N" first on failure.
      read -r u s e < <(tail -n 1 "$work/$name.time")
      ms="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%d", (u + s) * 1000 }')"
      used_ms=$((used_ms + ms))
      r="$(grep -o '^[a-z_]*: [0-9]* runs' <<<"$out" | grep -o '[0-9]*' | tail -1)"
      runs=$((runs + ${r:-0}))
      echo "$name round $round: ${r:-0} runs, $((ms / 1000)) s CPU (${e%.*} s wall), rc $rc" | tee -a "$log"
      if [ "$rc" -ne 0 ]; then
        crashes=1
        echo "$out" | tail -30 >&2
        break
      fi
    done
    echo "SUMMARY $name: $runs runs, $((used_ms / 1000)) s CPU, $crashes crashes" | tee -a "$log"
  }

  results="$(mktemp)"
  for name in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
    one "$name" | tee -a "$results" &
  done
  wait
  failed=0
  grep -q '^SUMMARY .* [1-9][0-9]* crashes$' "$results" && failed=1
  rm -f "$results"
  echo "fuzz: ${goal} s of CPU per target"
  exit "$failed"
}
main "$@"; exit $?
