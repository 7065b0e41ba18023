#!/usr/bin/env bash
# Throughput of bt's SHA-1 (default backend and forced portable) against
# `sha1sum` and `openssl sha1`, each hashing one large file from the page
# cache on one core. Runs are interleaved so that background load hits every
# tool alike; the median of the runs counts.
#
#   BT_BENCH_DIR   where the test file lives (default /tmp/bt-bench); reused
#                  while its size is right
#   BT_BENCH_MB    file size in MiB (default 1024)
#   BT_BENCH_RUNS  runs per tool (default 3)
#
# Exits non-zero if the tools disagree on the digest (or one is missing);
# speed alone never fails it. MB/s here means 10^6 bytes per second.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"
bench_options -- "$@"

root=$ROOT
dir=${BT_BENCH_DIR:-/tmp/bt-bench}
mb=${BT_BENCH_MB:-1024}
runs=${BT_BENCH_RUNS:-3}

bench_need "apt-get install coreutils openssl" sha1sum openssl

(cd "$root" && cargo build --release --example sha1sum)
ours=$(bench_release_dir)/examples/sha1sum

file=$dir/sha1-bench-${mb}MiB.bin
bytes=$((mb * 1024 * 1024))
bench_random_file "$file" "$bytes"

tools=(ours ours-portable sha1sum openssl)
declare -A label=(
    [ours]="ours ($(env -u BT_SHA1_PORTABLE "$ours" --backend))"
    [ours-portable]="ours ($(BT_SHA1_PORTABLE=1 "$ours" --backend))"
    [sha1sum]="sha1sum"
    [openssl]="openssl sha1"
)

run() {
    case $1 in
    ours) env -u BT_SHA1_PORTABLE "$ours" "$file" ;;
    ours-portable) BT_SHA1_PORTABLE=1 "$ours" "$file" ;;
    sha1sum) sha1sum "$file" ;;
    openssl) openssl sha1 -r "$file" ;;
    esac
}

declare -A times digest
for ((r = 1; r <= runs; r++)); do
    for t in "${tools[@]}"; do
        start=$(date +%s%N)
        out=$(run "$t")
        end=$(date +%s%N)
        times[$t]+="$((end - start)) "
        d=${out%% *}
        if [[ -n ${digest[$t]:-} && ${digest[$t]} != "$d" ]]; then
            echo "bench-sha1: $t gave two different digests: ${digest[$t]} and $d" >&2
            exit 1
        fi
        digest[$t]=$d
    done
done

declare -A mbps
printf '%s: %d MiB, median of %d interleaved runs, MB = 10^6 bytes\n' "$file" "$mb" "$runs"
printf '%-18s %10s %8s  %s\n' tool seconds MB/s digest
for t in "${tools[@]}"; do
    median=$(printf '%s\n' ${times[$t]} | bench_median)
    mbps[$t]=$(awk -v b="$bytes" -v ns="$median" 'BEGIN { printf "%.0f", b / ns * 1000 }')
    secs=$(awk -v ns="$median" 'BEGIN { printf "%.3f", ns / 1e9 }')
    printf '%-18s %10s %8s  %s\n' "${label[$t]}" "$secs" "${mbps[$t]}" "${digest[$t]}"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
ours_ratio=$(ratio "${mbps[ours]}" "${mbps[openssl]}")
echo "ratio ${label[ours]} / openssl: $ours_ratio"
echo "ratio ${label[ours-portable]} / openssl: $(ratio "${mbps[ours-portable]}" "${mbps[openssl]}")"
if awk -v r="$ours_ratio" 'BEGIN { exit !(r >= 0.9) }'; then
    echo "target (within 10% of openssl): met"
else
    echo "target (within 10% of openssl): NOT met"
fi

for t in "${tools[@]}"; do
    if [[ ${digest[$t]} != "${digest[openssl]}" ]]; then
        echo "bench-sha1: DIGEST MISMATCH: ${label[$t]} gave ${digest[$t]}, openssl ${digest[openssl]}" >&2
        exit 1
    fi
done
echo "digests: all equal"
