#!/usr/bin/env bash
# Builds the libFuzzer targets with plain cargo (no cargo-fuzz to install) and runs them.
#
#   fuzz/run.sh [SECONDS] [TARGET...]   replay the committed corpus, then fuzz each target for SECONDS (default 60),
#                                       all targets at once; new inputs go to fuzz/target/corpus/TARGET (not committed)
#   fuzz/run.sh --replay [TARGET...]    run every committed corpus file and seed through the target once
#   fuzz/run.sh --replay TARGET FILE    run one input (a crash artifact) through the target
#   fuzz/run.sh --runs N [TARGET...]    fuzz until N executions per target (a campaign), one target after another
#   fuzz/run.sh --cmin [TARGET...]      minimise seeds + committed corpus + campaign finds into fuzz/corpus/TARGET
#
# targets: parser (the record decoder and the connection state machine), response (the response encoder).
# Any crash, panic or failed invariant exits non-zero and leaves the input in fuzz/artifacts/TARGET/.
#
# Why not cargo-fuzz: installing it from source took most of the CI fuzz step (RELIABILITY.md has the figures).
# cargo-fuzz only passes the flags below to `cargo build` and runs the binary libfuzzer-sys links, which is itself
# the whole fuzzer (-merge=1 is `cargo fuzz cmin`). The flags are cargo-fuzz 0.12's for `build -O -a` with the
# default address sanitizer; RUSTC_BOOTSTRAP=1 lets the stable rustc accept the -Z ones. --target keeps the
# instrumentation out of build scripts and proc macros, as cargo-fuzz does.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"
fuzz_dir=$(pwd)
export RUSTC_BOOTSTRAP=1
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Zsanitizer=address -Cdebug-assertions \
-Coverflow-checks -Ccodegen-units=1 -Cforce-frame-pointers"
all_targets=(parser response)
# Options every run shares: inputs up to 16 KiB (a few records; longer ones only slow the search), a 10 s hang
# limit, a memory limit well above what a target needs.
common=(-timeout=10 -rss_limit_mb=2048 -max_len=16384)

build() {
    # Not --locked: a dependency added to pyfcgi would otherwise fail here until fuzz/Cargo.lock is refreshed.
    cargo build -q --release --target "$host" --bins
}
bin() { echo "$fuzz_dir/target/$host/release/$1"; }

# The fuzzer's summary of one log: executions, coverage (edges) and features.
summary() {
    local log=$1 runs cov ft
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE ' cov: [0-9]+' "$log" | tail -1 | tr -dc 0-9)
    ft=$(grep -oE ' ft: [0-9]+' "$log" | tail -1 | tr -dc 0-9)
    echo "${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}"
}

replay() {
    local target=$1 inputs=()
    for dir in "corpus/$target" "seeds/$target"; do
        [[ -d $dir ]] && inputs+=("$dir"/*)
    done
    # Given files (not directories), libFuzzer runs each once and stops.
    "$(bin "$target")" "${common[@]}" "${inputs[@]}" >"target/replay-$target.log" 2>&1 || {
        echo "fuzz replay $target: FAILED (log: fuzz/target/replay-$target.log)"
        tail -n 40 "target/replay-$target.log"
        return 1
    }
    echo "fuzz replay $target: ok, ${#inputs[@]} inputs"
}

mode=run
case "${1:-}" in
    --replay | --runs | --cmin) mode=${1#--}; shift ;;
esac
build
mkdir -p target artifacts

if [[ $mode == replay && $# -eq 2 && -f $2 ]]; then
    exec "$(bin "$1")" "${common[@]}" "$2"
fi

if [[ $mode == runs ]]; then
    runs=$1
    shift
fi
if [[ $mode == run && $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

status=0
case $mode in
    replay)
        for target in "${targets[@]}"; do replay "$target" || status=1; done
        ;;
    cmin)
        for target in "${targets[@]}"; do
            mkdir -p "target/corpus/$target" "corpus/$target"
            rm -rf "target/cmin-$target"
            mkdir "target/cmin-$target"
            # -merge=1 keeps the smallest set of inputs that reaches every feature of all the given directories.
            "$(bin "$target")" "${common[@]}" -merge=1 "target/cmin-$target" \
                "corpus/$target" "seeds/$target" "target/corpus/$target" >"target/cmin-$target.log" 2>&1
            rm -rf "corpus/$target"
            mv "target/cmin-$target" "corpus/$target"
            echo "fuzz cmin $target: $(ls "corpus/$target" | wc -l) inputs," \
                "$(du -sk "corpus/$target" | cut -f1) KiB;" \
                "$(grep -E 'MERGE-OUTER: [0-9]+ new files' "target/cmin-$target.log" | tail -1)"
        done
        ;;
    run | runs)
        declare -A pids
        for target in "${targets[@]}"; do
            replay "$target" || status=1
        done
        [[ $status -eq 0 ]] || exit 1
        for target in "${targets[@]}"; do
            mkdir -p "target/corpus/$target" "corpus/$target" "artifacts/$target"
            if [[ $mode == run ]]; then limit=(-max_total_time="${seconds:-60}"); else limit=(-runs="$runs"); fi
            # The first directory receives what the fuzzer finds; the others only seed it.
            cmd=("$(bin "$target")" "${common[@]}" "${limit[@]}" -print_final_stats=1
                -artifact_prefix="artifacts/$target/" "target/corpus/$target" "corpus/$target" "seeds/$target")
            started=$SECONDS
            if [[ $mode == run ]]; then
                "${cmd[@]}" >"target/$target.log" 2>&1 &
                pids[$target]=$!
            else
                # A campaign: one target at a time so each gets a whole core.
                if "${cmd[@]}" >"target/$target.log" 2>&1; then
                    echo "fuzz $target: ok, $(summary "target/$target.log") in $((SECONDS - started)) s"
                else
                    status=1
                    echo "fuzz $target: FAILED after $((SECONDS - started)) s (log: fuzz/target/$target.log)"
                    tail -n 40 "target/$target.log"
                fi
            fi
        done
        for target in "${!pids[@]}"; do
            if wait "${pids[$target]}"; then
                echo "fuzz $target: ok, $(summary "target/$target.log") in ${seconds:-60} s"
            else
                status=1
                echo "fuzz $target: FAILED (log: fuzz/target/$target.log; input in fuzz/artifacts/$target/)"
                tail -n 40 "target/$target.log"
            fi
        done
        ;;
esac
exit "$status"
