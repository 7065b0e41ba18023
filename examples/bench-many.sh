#!/usr/bin/env bash
# Seeding to many (issue 14): one seeder on loopback, N leechers (a mix of
# bt-fetch and libtorrent, default 50) starting together; a bt-fetch seeder
# against a libtorrent seeder under the same load, seeders interleaved over
# repetitions. Each leecher exits when it has the whole file (so the seeder
# stays the main source, though leechers still trade pieces while they
# download). Measured: every leecher's time, the aggregate throughput
# (N x file size / first start to last completion) and the seeder's CPU,
# peak RSS and peak anonymous memory.
#
# CSV rows (scenario "many", variant = seeder kind): one per leecher, and
# one with client "seeder": wall_s = first start to last completion,
# cpu_s / peak_rss_mib / peak_anon_mib = the seeder's own, goodput_pct =
# the aggregate throughput in MB/s.
#
# Usage: sudo examples/bench-many.sh [options]
#   --leechers N        leechers per swarm (default 50)
#   --mix LIST          leecher kinds, used in turn (default bt-fetch,libtorrent)
#   --seeders LIST      seeder kinds (default bt-fetch,libtorrent)
#   --size MIB          file size (default 64)
#   --piece LEN         piece length (default 256K)
#   --reps N            repetitions (default 3)
#   --first-rep N       number the repetitions from N (default 1): more
#                       swarms appended to an earlier run's folder
#   --timeout S         per swarm (default 300)
#   --out DIR           results (default target/bench/<timestamp>)
#   --dry-run           print the options as parsed and stop
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

nleech=50 mix=bt-fetch,libtorrent seeders=bt-fetch,libtorrent size=64 piece=256K reps=3 first_rep=1 out=
bench_options --leechers=nleech --mix=mix --seeders=seeders --size=size --piece=piece --reps=reps \
    --first-rep=first_rep --timeout=TIMEOUT --out=out -- "$@"
out=${out:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
IFS=, read -ra MIX <<<"$mix"
IFS=, read -ra SEEDERS <<<"$seeders"

bench_init "$out"
bench_params "leechers=$nleech mix=$mix seeders=$seeders size=${size}MiB piece=$piece reps=$reps timeout=${TIMEOUT}s"
tracker_setup
make_data "$size"
make_torrent "$piece" 127.0.0.1

# seeder_sampler PID OUT: the seeder's RssAnon every $SAMPLE seconds
seeder_sampler() {
    while :; do
        awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null >>"$2"
        sleep "$SAMPLE"
    done
}

# swarm SEEDER REP: one seeder, all leechers at once; CSV rows, a log line
swarm() {
    local kind=$1 rep=$2 i c d dirs=() t_first= t_last= all_ok=1 spid smp
    tracker_restart
    seeder_start "$kind" "" 127.0.0.1
    spid=${SEEDER_PIDS[-1]}
    seeders_wait 1
    : >"$BENCH_TMP/seeder-anon"
    seeder_sampler "$spid" "$BENCH_TMP/seeder-anon" &
    smp=$!
    BENCH_PIDS+=("$smp")
    local cpu0
    read -r cpu0 _ < <(proc_cpu_ticks "$spid")
    for ((i = 0; i < nleech; i++)); do
        c=${MIX[$((i % ${#MIX[@]}))]}
        RUN_SEQ=$((RUN_SEQ + 1))
        d=$BENCH_TMP/run-$RUN_SEQ
        client_launch "$d" "$c" 127.0.0.1 exit
        echo "$i" >"$d/inst"
        dirs+=("$d")
    done
    clients_wait 0.2 "${dirs[@]}"
    # the seeder's figures before anything else is stopped
    local cpu1 hwm
    read -r cpu1 _ < <(proc_cpu_ticks "$spid")
    hwm=$(proc_hwm_kib "$spid")
    bench_kill "$smp"
    for d in "${dirs[@]}"; do
        local t0 t1= label inst
        c=$(<"$d/client")
        inst=$(<"$d/inst")
        t0=$(<"$d/start_ns")
        [[ -f $d/end_ns ]] && t1=$(<"$d/end_ns")
        client_collect "$d"
        label=many-$kind-$c-$inst-r$rep
        keep_trace "$d" "$label"
        csv_row many "$kind" "$piece" 0 "$kind" "$c" "$inst" "$rep" "" "" "progress/$label.tsv.gz"
        [[ -z $t_first || $t0 -lt $t_first ]] && t_first=$t0
        if [[ $R_status == ok ]]; then
            [[ -z $t_last || $t1 -gt $t_last ]] && t_last=$t1
        else
            all_ok=0
            log "$label: $R_status"
        fi
        rm -rf "$d"
    done
    seeders_stop
    tracker_stop
    R_down= R_cmp= R_ttfb= R_exit= R_user= R_sys=
    R_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / h}')
    R_rss_kib=$hwm
    R_rss=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
    R_anon_kib=$(sort -n "$BENCH_TMP/seeder-anon" | tail -1)
    R_anon=$(awk -v k="${R_anon_kib:-0}" 'BEGIN {printf "%.1f", k / 1024}')
    local agg=
    if ((all_ok)); then
        R_status=ok
        R_wall=$(awk -v a="$t_first" -v b="$t_last" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        agg=$(awk -v n="$nleech" -v b="$DATA_BYTES" -v t="$R_wall" 'BEGIN {printf "%.1f", n * b / t / 1e6}')
    else
        R_status=failed R_wall=
    fi
    csv_row many "$kind" "$piece" 0 "$kind" seeder 0 "$rep" "" "$agg" ""
    log "many $kind seeder r$rep: $R_status, last of $nleech leechers done after ${R_wall:-?} s, aggregate ${agg:-?} MB/s; seeder CPU $R_cpu s, peak RSS $R_rss MiB, peak anon $R_anon MiB"
}

for ((rep = first_rep; rep < first_rep + reps; rep++)); do
    for s in "${SEEDERS[@]}"; do swarm "$s" "$rep"; done
done

{
    echo
    echo "## many: $nleech leechers ($mix), ${size} MiB, $piece pieces (seeder rows: wall = whole swarm, CPU/RSS = the seeder's)"
    echo
    "$PY" "$BENCH_LIB/stats.py" table "$CSV" --scenario many --by variant,client
    echo
    awk -F, 'NR > 1 && $1 == "many" && $6 == "seeder" { printf "- seeder %s r%s: %s, aggregate %s MB/s, peak RSS %s MiB (target <= 64 for bt-fetch)\n", $2, $8, $9, $15, $12 }' "$CSV"
} | tee -a "$OUT/summary.md"
bench_finish
