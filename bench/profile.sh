#!/usr/bin/env bash
# Counts the instructions pyfcgi spends per request on the bare hello-world path, with callgrind: instruction
# counts repeat exactly for the same binary and inputs, whatever else this shared machine is doing, so this is
# the figure to compare before and after a change (BENCHMARKS.md, "Where pyfcgi's per-request time goes").
#
#   bench/profile.sh [PYFCGI_BIN] [REQUESTS]        # default target/release/pyfcgi, 2000
#
# It starts the binary under callgrind with instrumentation off, sends 300 warm-up requests on a kept Unix-socket
# connection (bench/lib/fcgi_load.py: the parameters nginx sends), switches instrumentation on for REQUESTS more,
# and prints the total and the per-request figure. The raw profile stays in $OUT (callgrind_annotate reads it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/pyfcgi}
requests=${2:-2000}
python=${PYTHON:-python3}
out=${OUT:-$root/target/profile}
mkdir -p "$out"
rm -f "$out"/callgrind.out.* "$out/s.sock"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out.%p" \
  "$bin" --bind "unix:$out/s.sock" --workers 1 --app hello:app --app-root "$root/bench/apps" --no-access-log \
  2>"$out/valgrind.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -S "$out/s.sock" ] && break; sleep 0.1; done
[ -S "$out/s.sock" ] || { cat "$out/valgrind.log" >&2; echo "pyfcgi did not start" >&2; exit 1; }

# The warm-up and the measured requests share one connection, as behind nginx with fastcgi_keep_conn.
"$python" "$root/bench/lib/fcgi_load.py" "unix:$out/s.sock" "$requests" --warmup 300 --callgrind-pid $pid
kill -INT $pid
wait $pid 2>/dev/null || true
trap - EXIT
file=$(ls -t "$out"/callgrind.out.* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
echo "profile: $file"
echo "instructions: $total total, $((total / requests)) per request ($requests requests)"
