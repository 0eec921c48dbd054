#!/usr/bin/env bash
# CPU profile of the gate's loop thread under bucket-bench (issue 16, docs/scale-readiness.md).
#
#   benches/profile-gate.sh OUT.svg [bucket-bench args…]
#
# Needs `perf` (Debian: apt-get install linux-perf) and inferno (cargo install inferno), a
# running local stack (deploy/local/up.sh) and a release bucket-bench
# (cargo build --release --features bench --bin bucket-bench; BENCH=path to use another).
# Samples every thread at 250 Hz with DWARF call graphs, then folds only the gate's loop thread
# (`bench-gate`) into a flame graph; the top frames are printed as text too.
set -euo pipefail
out=${1:?usage: benches/profile-gate.sh OUT.svg [bucket-bench args]}
shift
bench=${BENCH:-target/release/bucket-bench}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--sig hmac --payloads 1024 --count 100000 --reps 1 --no-latency)
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 2; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
data=$(mktemp --suffix=.perf.data)
trap 'rm -f "$data"' EXIT
perf record -F 250 --call-graph dwarf,16384 -o "$data" -- "$bench" "${args[@]}"
perf script -i "$data" --comms bench-gate 2>/dev/null \
  | inferno-collapse-perf \
  | inferno-flamegraph --title "gate loop thread: bucket-bench ${args[*]}" > "$out"
echo "wrote $out"
perf report -i "$data" --comms bench-gate --children --sort symbol --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | head -25
