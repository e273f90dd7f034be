#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for FUZZ_SECONDS each (default 30).
#
#   FUZZ_SECONDS=300 bash fuzz/run.sh build-fuzz [target...]
#   bash fuzz/run.sh --list build-fuzz     # the targets built there, a line each
#
# Without targets it runs every <name>_fuzz executable in BUILD_DIR/fuzz/.
# Each target starts from a copy of its checked-in seed corpus
# (fuzz/corpus/<name>/) plus its regression inputs (fuzz/regressions/<name>/),
# so the checked-in corpus is never written to. New inputs libFuzzer found
# stay in the work directory (FUZZ_WORK_DIR, default BUILD_DIR/fuzz-work),
# crash reproducers in <work>/<name>/artifacts/. FUZZ_RESUME=1 starts from the
# work corpus a previous run left instead of from the seeds alone, and keeps
# that run's reproducers as <work>/<name>/artifacts.<timestamp>/. Exits non-zero when any target
# crashed, leaked, timed out or ran out of memory; prints one line per target:
#   ipc_protocol: 123456 runs, 0 crashes
# FUZZ_JOBS=N (default 1) runs N targets at a time (`make test` uses one per
# core); the per-target lines then come in the order the targets finish.
# To keep a finding: copy its artifact into fuzz/regressions/<name>/, fix the
# code, and `make test` replays it from then on.
set -uo pipefail

# The whole script is one function, called on the last line, so that bash has
# read all of it before anything runs: a run takes hours, and an edit of this
# file meanwhile would otherwise be read from the middle by the running shell
# (it once re-ran half of the fuzzer's command line and overwrote its log).

# The names of the fuzzers built in BUILD_DIR (fuzz/<name>_fuzz), sorted.
list_built() {
  local bin
  for bin in "$1"/fuzz/*_fuzz; do
    if [ -f "$bin" ] && [ -x "$bin" ]; then basename "$bin" _fuzz; fi
  done
}

main() {
  here="$(cd "$(dirname "$0")" && pwd)"
  if [ "${1:-}" = --list ]; then
    list_built "${2:?usage: fuzz/run.sh --list BUILD_DIR}"
    return
  fi
  build="${1:?usage: fuzz/run.sh BUILD_DIR [target...]}"
  shift
  build="$(cd "$build" && pwd)"
  seconds="${FUZZ_SECONDS:-30}"
  work="${FUZZ_WORK_DIR:-$build/fuzz-work}"
  targets=("$@")
  if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(list_built "$build")
    if [ ${#targets[@]} -eq 0 ]; then
      echo "fuzz/run.sh: no fuzzer in $build/fuzz; build them with: cmake --build $build --target fuzz_all" >&2
      exit 2
    fi
  fi

  # Several at a time: deal the targets out to FUZZ_JOBS runs of this script,
  # one target each at a time, and fail when any of them does.
  jobs="${FUZZ_JOBS:-1}"
  if [ "$jobs" -gt 1 ] && [ ${#targets[@]} -gt 1 ]; then
    pids=()
    for ((j = 0; j < jobs && j < ${#targets[@]}; j++)); do
      group=()
      for ((i = j; i < ${#targets[@]}; i += jobs)); do group+=("${targets[i]}"); done
      FUZZ_JOBS=1 bash "$0" "$build" "${group[@]}" &
      pids+=($!)
    done
    rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    exit "$rc"
  fi

  failed=0
  for name in "${targets[@]}"; do
    bin="$build/fuzz/${name}_fuzz"
    if [ ! -x "$bin" ]; then
      echo "fuzz/run.sh: $bin is missing; build it with: cmake --build $build --target fuzz_all" >&2
      exit 2
    fi
    dir="$work/$name"
    if [ "${FUZZ_RESUME:-0}" = 1 ]; then
      # Keep an earlier run's reproducers (this run counts only its own).
      if [ -n "$(ls -A "$dir/artifacts" 2>/dev/null)" ]; then mv "$dir/artifacts" "$dir/artifacts.$(date +%Y%m%d%H%M%S)"; fi
      rm -rf "$dir/artifacts" "$dir/log"
    else
      rm -rf "$dir"
    fi
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -R "$here/corpus/$name/." "$dir/corpus/"
    if [ -d "$here/regressions/$name" ]; then cp -R "$here/regressions/$name/." "$dir/corpus/"; fi

    # -error_exitcode distinguishes a finding from other failures; leaks count.
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
      "$bin" "$dir/corpus" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
        >"$dir/log" 2>&1
    rc=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' | tail -1)"
    crashes="$(find "$dir/artifacts" -type f | wc -l)"
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    line="$name: ${runs:-0} runs, $crashes crashes"
    echo "$line"
    if [ "$crashes" -ne 0 ]; then
      failed=1
      echo "--- $name failed (exit $rc); log: $dir/log" >&2
      grep -E -A 30 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|fuzz check failed' "$dir/log" | head -25 >&2
      find "$dir/artifacts" -type f -exec echo "reproducer: {}" \; >&2
    fi
  done

  echo "fuzz: ${seconds}s per target"
  if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED" >&2
    exit 1
  fi
}
main "$@"; exit $?
