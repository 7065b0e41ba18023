#!/usr/bin/env bash
# What each `bt-fetch --encryption` mode costs: a 1 GiB download on
# loopback from one python-libtorrent seeder in its default encryption
# settings (MSE accepted, both crypto methods allowed, plaintext preferred
# when offered), bt-fetch modes interleaved (allow prefer require, allow
# prefer require, ...) so that drift on a shared machine hits every mode
# alike.
#
#   allow    plaintext BitTorrent handshake: no MSE at all
#   prefer   MSE offering both methods: libtorrent picks plaintext (the
#            handshake is obfuscated, the stream is clear)
#   require  MSE offering RC4 only: the whole stream is RC4
#
# Usage: examples/bench-encryption.sh [--size MIB] [--runs N] [--modes LIST]
#                                     [--piece 1M] [--out DIR] [--dry-run]
# Environment: BT_FETCH, BT_META (default target/release/...), BT_BENCH_DIR
# (test data, default /tmp/bt-bench-encryption).
# Writes DIR/runs.csv (one row per run) and DIR/meta.json; prints medians.
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

DATA=${BT_BENCH_DIR:-/tmp/bt-bench-encryption}
size=1024 runs=5 modes=allow,prefer,require piece=1M out=$ROOT/docs/results/encryption
bench_options --size=size --runs=runs --modes=modes --piece=piece --out=out -- "$@"
bench_need_built "$BT_FETCH" "$BT_META"
bench_need_libtorrent
bench_need_gnu_time

seeder_pid=
cleanup() {
    [[ -n $seeder_pid ]] && kill "$seeder_pid" 2>/dev/null && wait "$seeder_pid" 2>/dev/null
    rm -rf "$DATA/dl" "$DATA/seeder.fifo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DATA" "$out"
file=$DATA/payload-$size.bin
bench_random_file "$file" $((size << 20))
torrent=$DATA/payload-$size-$piece.torrent
[[ -f $torrent ]] || "$BT_META" create -q --no-date -l "$piece" -o "$torrent" "$file" || die "bt-meta create failed"

# The seeder: tests/scripts/lt_peer.py (high_performance_seed, default
# encryption settings); it prints "listening PORT", stdin open keeps it up.
mkfifo "$DATA/seeder.fifo"
"$PY" "$ROOT/tests/scripts/lt_peer.py" seed "$torrent" "$DATA" 0 <"$DATA/seeder.fifo" >"$DATA/seeder.out" 2>&1 &
seeder_pid=$!
exec 9>"$DATA/seeder.fifo"
port=
for _ in $(seq 600); do
    port=$(awk '/^listening/ {print $2}' "$DATA/seeder.out")
    [[ -n $port ]] && break
    sleep 0.1
done
[[ -n $port ]] || die "the libtorrent seeder did not start: $(cat "$DATA/seeder.out")"
log "libtorrent seeder on port $port (pid $seeder_pid)"

# CPU seconds (user + system) the seeder has used so far: its RC4 costs too.
seeder_cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$seeder_pid/stat"; }

csv=$out/runs.csv
echo "run,mode,seconds,user_seconds,system_seconds,seeder_cpu_seconds,encryption,status" >"$csv"
IFS=, read -ra MODES <<<"$modes"
for ((r = 1; r <= runs; r++)); do
    for m in "${MODES[@]}"; do
        rm -rf "$DATA/dl"
        sync
        seeder_before=$(seeder_cpu)
        /usr/bin/time -f '%e %U %S' -o "$DATA/time.txt" \
            "$BT_FETCH" "$torrent" -o "$DATA/dl" --bind 127.0.0.1 --peer "127.0.0.1:$port" \
            --encryption "$m" --timeout 600 --json -q </dev/null >"$DATA/events.json" 2>"$DATA/stderr.txt"
        status=$?
        seeder_used=$(awk -v a="$seeder_before" -v b="$(seeder_cpu)" 'BEGIN { printf "%.2f", b - a }')
        read -r secs user sys <"$DATA/time.txt"
        enc=$(grep -o '"encryption":"[a-z0-9]*"' "$DATA/events.json" | head -1 | cut -d'"' -f4)
        echo "$r,$m,$secs,$user,$sys,$seeder_used,${enc:-?},$status" >>"$csv"
        log "run $r $m: ${secs}s wall, ${user}s user, ${sys}s sys, seeder ${seeder_used} CPU-s, encryption ${enc:-?}, exit $status"
    done
done
rm -rf "$DATA/dl"

commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
# Changes outside the results (which this run itself writes).
dirty=$(git -C "$ROOT" status --porcelain -- . ":(exclude)${out#"$ROOT"/}" 2>/dev/null | grep -q . && echo true || echo false)
cat >"$out/meta.json" <<EOF
{
  "commit": "$commit",
  "dirty": $dirty,
  "command": "examples/bench-encryption.sh --size $size --runs $runs --modes $modes --piece $piece",
  "bt_fetch": "$BT_FETCH",
  "seeder": "python3-libtorrent $("$PY" -c 'import libtorrent; print(libtorrent.__version__)'), high_performance_seed, default encryption settings",
  "size_bytes": $((size << 20)),
  "piece_length": "$piece",
  "nproc": $(nproc),
  "kernel": "$(uname -r)",
  "load_average_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF

# Medians per mode (and the ratio to the first mode).
awk -F, 'NR > 1 && $8 == 0 { w[$2] = w[$2] " " $3; c[$2] = c[$2] " " ($4 + $5); s[$2] = s[$2] " " $6; e[$2] = $7; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
function median(s,   a, k, i, j, t) { k = split(s, a, " "); for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
END {
    printf "%-8s %-11s %9s %9s %13s %9s %14s %9s\n", "mode", "encryption", "median s", "vs first", "bt-fetch CPU s", "vs first", "seeder CPU s", "vs first"
    for (i = 1; i <= n; i++) { m = order[i]; mw = median(w[m]); mc = median(c[m]); ms = median(s[m]); if (i == 1) { w0 = mw; c0 = mc; s0 = ms }
        printf "%-8s %-11s %9.2f %9.2f %13.2f %9.2f %14.2f %9.2f\n", m, e[m], mw, mw / w0, mc, mc / c0, ms, ms / s0 }
}' "$csv" | tee "$out/medians.txt"
