#!/usr/bin/env bash
# Recheck speed: `bt-verify` rechecking a large file against its torrent,
# side by side with `openssl sha1` hashing the same file (one core, SHA
# extensions) and `sha1sum`. The page cache is warm for every run, runs are
# interleaved so background load hits every tool alike, and medians count.
#
#   BT_BENCH_DIR    where the test file lives (default /tmp/bt-bench); reused
#                   while its size is right
#   BT_BENCH_MB     file size in MiB (default 1024)
#   BT_BENCH_RUNS   runs per tool (default 3)
#   BT_BENCH_PIECE  piece length for the torrent (default 1M)
#
# Target (issue: foundation): bt-verify faster than `openssl sha1`.
# Exits non-zero if bt-verify does not find the data complete.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"
bench_options -- "$@"

root=$ROOT
dir=${BT_BENCH_DIR:-/tmp/bt-bench}
mb=${BT_BENCH_MB:-1024}
runs=${BT_BENCH_RUNS:-3}
piece=${BT_BENCH_PIECE:-1M}

bench_need "apt-get install coreutils openssl" sha1sum openssl

(cd "$root" && cargo build --release --bin bt-meta --bin bt-verify)
bin=$(bench_release_dir)

file=$dir/verify-bench-${mb}MiB.bin
bytes=$((mb * 1024 * 1024))
bench_random_file "$file" "$bytes"
torrent=$dir/verify-bench-${mb}MiB-$piece.torrent
"$bin/bt-meta" create "$file" -l "$piece" --no-date -q -f -o "$torrent" >/dev/null

tools=(bt-verify openssl sha1sum)
run() {
    case $1 in
    bt-verify)
        status=$("$bin/bt-verify" -q "$torrent" -d "$dir" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
        [[ $status == complete ]] || {
            echo "bench-verify: bt-verify says '$status'" >&2
            exit 1
        }
        ;;
    openssl) openssl sha1 "$file" >/dev/null ;;
    sha1sum) sha1sum "$file" >/dev/null ;;
    esac
}

declare -A times
for ((r = 1; r <= runs; r++)); do
    for t in "${tools[@]}"; do
        start=$(date +%s%N)
        run "$t"
        end=$(date +%s%N)
        times[$t]+="$((end - start)) "
    done
done

declare -A mbps
printf '%s: %d MiB, pieces of %s, %d cores, median of %d interleaved runs, MB = 10^6 bytes\n' \
    "$file" "$mb" "$piece" "$(nproc)" "$runs"
printf '%-12s %10s %8s\n' tool seconds MB/s
for t in "${tools[@]}"; do
    median=$(printf '%s\n' ${times[$t]} | bench_median)
    mbps[$t]=$(awk -v b="$bytes" -v ns="$median" 'BEGIN { printf "%.0f", b / ns * 1000 }')
    printf '%-12s %10s %8s\n' "$t" "$(awk -v ns="$median" 'BEGIN { printf "%.3f", ns / 1e9 }')" "${mbps[$t]}"
done
ratio=$(awk -v a="${mbps[bt-verify]}" -v b="${mbps[openssl]}" 'BEGIN { printf "%.2f", a / b }')
echo "ratio bt-verify / openssl sha1 (throughput): $ratio"
if awk -v r="$ratio" 'BEGIN { exit !(r > 1) }'; then
    echo "target (faster than openssl sha1): met"
else
    echo "target (faster than openssl sha1): NOT met"
fi
