#!/usr/bin/env bash
# The fuzz targets of flinksnap (fuzz/README.md). Needs a nightly toolchain and cargo-fuzz.
#
#   bash fuzz/run.sh seeds                  seed corpora from testdata/ into fuzz/corpus/<target>/
#   bash fuzz/run.sh build                  build every target (release, ASan, debug assertions)
#   bash fuzz/run.sh smoke [SECONDS] [JOBS] seeds, build, then every target for SECONDS (60),
#                                           JOBS at a time (2); fails on any crash, hang or OOM
#   bash fuzz/run.sh one TARGET SECONDS     one target for SECONDS, log in $FUZZ_LOGS (/tmp)
#   bash fuzz/run.sh long TARGET SECONDS    the same in fork mode, for hour-long runs on a busy
#                                           machine: a timeout or crash is saved to
#                                           fuzz/artifacts/<target>/ and fuzzing goes on (libFuzzer's
#                                           -timeout is wall-clock); re-run what it saves alone
#
# The fuzz build goes to $FUZZ_TARGET_DIR (default: fuzz/target); the seed writer, an example of
# the main crate built on stable, to $CARGO_TARGET_DIR like the tests, whose build it reuses.
#
# Every run starts from the target's corpus and its regression inputs (fuzz/regressions/<target>/,
# which libFuzzer runs first), with the limits of issue 17: RSS 2 GiB, 10 s per input. New
# crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_LOGS="${FUZZ_LOGS:-/tmp/flinksnap-fuzz}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
LIMITS=(-rss_limit_mb=2048 -timeout=10)

targets() {
    cargo +nightly fuzz list --fuzz-dir fuzz
}

seeds() {
    # The seed writer is an example of the main crate: it reuses the tests' build.
    cargo run --locked --quiet --example fuzz_seeds
}

build() {
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" cargo +nightly fuzz build)
}

one() {
    local t="$1" secs="$2"
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t" "$FUZZ_LOGS"
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" cargo +nightly fuzz run "$t" "corpus/$t" "regressions/$t" -- \
        "${LIMITS[@]}" -max_total_time="$secs" -print_final_stats=1) >"$FUZZ_LOGS/$t.log" 2>&1
}

long() {
    local t="$1" secs="$2"
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t" "$FUZZ_LOGS"
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" cargo +nightly fuzz run "$t" "corpus/$t" "regressions/$t" -- \
        "${LIMITS[@]}" -fork=1 -ignore_timeouts=1 -ignore_crashes=1 -ignore_ooms=1 \
        -max_total_time="$secs" -print_final_stats=1) >"$FUZZ_LOGS/$t.log" 2>&1
}

case "${1:-}" in
seeds) seeds ;;
build) build ;;
one) one "$2" "$3" ;;
long) long "$2" "$3" ;;
smoke)
    secs="${2:-60}"
    jobs="${3:-2}"
    seeds
    build
    mkdir -p "$FUZZ_LOGS"
    failed=0
    mapfile -t all < <(targets)
    i=0
    while [ $i -lt ${#all[@]} ]; do
        pids=()
        names=()
        for _ in $(seq "$jobs"); do
            [ $i -lt ${#all[@]} ] || break
            one "${all[$i]}" "$secs" &
            pids+=($!)
            names+=("${all[$i]}")
            i=$((i + 1))
        done
        for k in "${!pids[@]}"; do
            t="${names[$k]}"
            if wait "${pids[$k]}"; then
                echo "fuzz $t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$FUZZ_LOGS/$t.log" | grep -o '[0-9]*$') executions, no crash"
            else
                echo "fuzz $t: FAILED (log: $FUZZ_LOGS/$t.log)" >&2
                tail -n 40 "$FUZZ_LOGS/$t.log" >&2
                failed=1
            fi
        done
    done
    exit $failed
    ;;
*)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
