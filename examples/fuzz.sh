#!/bin/sh
# Runs every fuzz target in turn for SECONDS each (default 60), niced, one
# at a time, and prints per target: executions, coverage (cov and ft from
# libFuzzer's final stats), time and crashes.
#
#   examples/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: BT_FUZZ_RUNS stops a target after that many executions
# (default: only the time limit); BT_FUZZ_SANITIZER=none builds without
# AddressSanitizer (about twice the executions per second; the targets
# reach safe Rust only, but for `session`, whose piece buffers allocate by
# hand: keep the default `address` there). Debug assertions and overflow
# checks are on either way.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The committed seeds are in fuzz/seeds/TARGET (read only); what libFuzzer
# finds goes to fuzz/corpus/TARGET and crashes to fuzz/artifacts/TARGET
# (both ignored by git). Logs: fuzz/logs/TARGET.log.
set -eu
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
sanitizer=${BT_FUZZ_SANITIZER:-address}
runs=${BT_FUZZ_RUNS:--1}
[ $# -gt 0 ] && shift
targets=${*:-$(cargo +nightly fuzz list)}
nice -n 19 cargo +nightly fuzz build -s "$sanitizer" >/dev/null 2>&1 ||
    nice -n 19 cargo +nightly fuzz build -s "$sanitizer"
mkdir -p logs
printf '%-17s %12s %8s %8s %7s %8s %s\n' target execs exec/s cov ft time crashes
status=0
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    start=$(date +%s)
    nice -n 19 cargo +nightly fuzz run -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 >"logs/$t.log" 2>&1 || true
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
    # The last status line: "#N  DONE|pulse  cov: C ft: F ..."
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "logs/$t.log" | tail -1 | cut -d' ' -f2)
    crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
    [ "$crashes" -gt 0 ] && status=1
    printf '%-17s %12s %8s %8s %7s %7ss %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$took" "$crashes"
done
exit $status
