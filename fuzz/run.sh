#!/usr/bin/env bash
# Builds the fuzz targets and runs each of them for SECONDS (default 60), both at once (one per core).
# Exits non-zero if a target crashes, panics or fails an invariant; the input is saved under
# fuzz/artifacts/TARGET/ and can be replayed with `fuzz/run.sh --replay TARGET FILE`.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      targets: parser response (default: both)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only -Z flags (sanitizer, coverage passes) to rustc,
# and RUSTC_BOOTSTRAP=1 lets a stable rustc accept them. cargo-fuzz itself is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [[ "${1:-}" == "--replay" ]]; then
    cargo fuzz build -O "$2"
    exec cargo fuzz run -O "$2" "$3"
fi

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(parser response)
fi

for target in "${targets[@]}"; do
    cargo fuzz build -O "$target"
done

mkdir -p artifacts
declare -A pids
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    # corpus/ collects what the fuzzer finds (not committed); seeds/ are small hand-made inputs (committed).
    cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
        >"artifacts/$target.log" 2>&1 &
    pids[$target]=$!
done

status=0
for target in "${targets[@]}"; do
    if wait "${pids[$target]}"; then
        runs=$(grep -E '^stat::number_of_executed_units' "artifacts/$target.log" | awk '{print $2}' || true)
        cov=$(grep -oE 'cov: [0-9]+' "artifacts/$target.log" | tail -1 || true)
        echo "fuzz $target: ok, ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}"
    else
        status=1
        echo "fuzz $target: FAILED (log: fuzz/artifacts/$target.log)"
        tail -n 40 "artifacts/$target.log"
    fi
done
exit "$status"
