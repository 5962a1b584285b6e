#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that takes outside input (crates/entente-fuzz),
# under libFuzzer on the stable toolchain.
#
#   scripts/fuzz.sh [--runs N] [--seconds S] [--timeout T] [--profile P] [TARGET ...]
#
# Builds fuzz/ with cargo-fuzz's instrumentation flags (no nightly: no sanitizers, but
# overflow checks and debug assertions on), writes each target's seeds into fuzz/corpus/,
# runs each TARGET (all when none is named) for N executions (default 10,000,000) or S
# seconds, whichever ends first, and prints one line per target. --profile ci builds with
# fuzz/Cargo.toml's quicker `ci` profile, for CI's short run; the default is `release`.
# --timeout is libFuzzer's wall-clock limit per input (default 10 s): raise it for runs at a
# low priority on a loaded machine, where a starved process can take that long for an input
# that runs in milliseconds. A crash leaves its input in fuzz/artifacts/<target>/ and the
# script exits 1. fuzz/corpus and fuzz/artifacts are not committed (.gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10000000
seconds=0
timeout=10
profile=release
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

# cargo-fuzz's flags for libFuzzer, without the nightly-only sanitizer. --gc-sections keeps
# the binaries small (unused code of the product's crates is dropped at link time), which
# took tile_path from 8,000 to 700,000 executions per second.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks -Clink-arg=-Wl,--gc-sections"
# With --target, the flags reach the targets only, not build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --locked --profile "$profile" --manifest-path fuzz/Cargo.toml --bins --target "$triple" >&2
unset RUSTFLAGS
cargo run --locked -q --bin fuzz-seeds -- fuzz/corpus >/dev/null

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^entente')
fi

status=0
printf '%-18s %12s %9s %10s %8s\n' target executions seconds exec/s corpus
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "fuzz/logs"
  log="fuzz/logs/$t.log"
  args=(-runs="$runs" -rss_limit_mb=2048 -timeout="$timeout" -print_final_stats=1
        -artifact_prefix="fuzz/artifacts/$t/")
  [ "$seconds" != 0 ] && args+=(-max_total_time="$seconds")
  if ! "fuzz/target/$triple/$profile/$t" "${args[@]}" "fuzz/corpus/$t" >"$log" 2>&1; then
    echo "$t: libFuzzer stopped on a failure; see $log and fuzz/artifacts/$t/" >&2
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-18s %12s %9s %10s %8s\n' "$t" "${execs:-?}" "${secs:-?}" "${rate:-?}" "$corpus"
done
exit $status
