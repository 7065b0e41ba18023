#!/usr/bin/env bash
# Swarm scenarios of the issue "Measure it":
#
#   3  several seeders (default 4), each in its own network namespace behind
#      its own link (default 50 Mbit/s, tbf): one leecher at a time, runs
#      interleaved over repetitions; how well each leecher aggregates them
#   4  one seeder behind a 100 Mbit/s link and 8 leechers starting together:
#      all bt-fetch, all libtorrent, and mixed clients; the time until the
#      last leecher finishes against the bound (file size / seeder rate), and
#      each client's completion time in the mixed swarm
#
# Leechers run on the host and bind $BENCH_NET.1.1 (the host end of the first
# veth), so that they reach each other at local speed while everything from
# a seeder crosses its rate-limited veth. Swarm leechers keep seeding after
# they finish, until the last one is done.
#
# Usage: sudo examples/bench-swarm.sh [options]
#   --scenarios 3,4       which scenarios (default 3,4)
#   --quick               128 MiB, 1 repetition (options given explicitly
#                         win, in any order)
#   --size MIB            file size (default 1024)
#   --piece LEN           piece length (default 1M)
#   --reps N              repetitions (default 1)
#   --first-rep N         number the repetitions from N (default 1): runs
#                         appended to an earlier run's folder
#   --clients LIST        scenario 3 leechers (default bt-fetch,libtorrent,qbittorrent,aria2,transmission)
#   --seeders N           scenario 3 seeders (default 4)
#   --s3-rate MBIT        scenario 3 link rate per seeder (default 50)
#   --rate MBIT           scenario 4 seeder link rate (default 100)
#   --leechers N          scenario 4 swarm size for the uniform swarms (default 8)
#   --swarms LIST         scenario 4 swarms (default bt-fetch,libtorrent,mixed)
#   --mix LIST            the mixed swarm (default
#                         bt-fetch,bt-fetch,libtorrent,libtorrent,qbittorrent,aria2,aria2,transmission)
#   --seeder KIND         libtorrent (default) | transmission | bt-fetch |
#                         qbittorrent | aria2
#   --timeout S           per run / per swarm (default 300)
#   --mtu N               veth MTU (default 1500)
#   --out DIR             results (default target/bench/<timestamp>)
# Environment: as for bench-clients.sh.
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

scenarios=3,4 size=1024 piece=1M reps=1 first_rep=1 nseed=4 s3rate=50 rate=100 nleech=8
swarms=bt-fetch,libtorrent,mixed mix=bt-fetch,bt-fetch,libtorrent,libtorrent,qbittorrent,aria2,aria2,transmission
clients=$(
    IFS=,
    echo "${ALL_CLIENTS[*]}"
)
seeder=libtorrent out= quick=0
TIMEOUT=${BENCH_TIMEOUT:-300}
# --quick changes defaults: applied before parsing, so explicit options win
for a; do [[ $a == --quick ]] && size=128 reps=1; done
bench_options --scenarios=scenarios --quick=quick:1 --size=size --piece=piece --reps=reps \
    --first-rep=first_rep --clients=clients --seeders=nseed --s3-rate=s3rate --rate=rate \
    --leechers=nleech --swarms=swarms --mix=mix --seeder=seeder --timeout=TIMEOUT --mtu=MTU \
    --out=out -- "$@"
out=${out:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
IFS=, read -ra CL <<<"$clients"
IFS=, read -ra SWARMS <<<"$swarms"
IFS=, read -ra MIX <<<"$mix"
has() { [[ ,$scenarios, == *,$1,* ]]; }

bench_init "$out"
log "results in $OUT; bt-fetch: $BT_FETCH $([[ -x $BT_FETCH ]] || echo '(not built: skipped)')"
{
    echo "# bench-swarm.sh $(date -Is)"
    echo "host: $(nproc) cores, $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scenarios=$scenarios size=${size}MiB piece=$piece reps=$reps seeder=$seeder s3: $nseed x ${s3rate}mbit; s4: ${rate}mbit, $nleech leechers, swarms=$swarms mix=$mix mtu=$MTU timeout=${TIMEOUT}s"
} >"$OUT/params.txt"
tracker_setup
make_data "$size"
n_ns=1
has 3 && ((nseed > n_ns)) && n_ns=$nseed
for ((k = 1; k <= n_ns; k++)); do ns_create "$k"; done
HOSTIP=$NET.1.1
make_torrent "$piece" "$HOSTIP"

# ---------------------------------------------------------------- scenario 3
if has 3; then
    tracker_restart "$HOSTIP"
    ks=()
    for ((k = 1; k <= nseed; k++)); do
        ns_limit "$k" "$s3rate"
        seeder_start "$seeder" "$(ns_name "$k")" "$NET.$k.2"
        ks+=("$k")
    done
    seeders_wait "$nseed"
    agg=$((nseed * s3rate))
    v=${nseed}x${s3rate}mbit
    log "scenario 3: $nseed seeders ($seeder) behind ${s3rate} Mbit/s each, $agg Mbit/s together"
    for ((rep = first_rep; rep < first_rep + reps; rep++)); do
        for c in "${CL[@]}"; do
            declare -A rx0=()
            for k in "${ks[@]}"; do rx0[$k]=$(ns_rx_bytes "$k"); done
            run_one s3 "$v" "$piece" "$agg" "$seeder" "$c" "$rep" "$HOSTIP" "${ks[@]}"
            share=
            for k in "${ks[@]}"; do share+="$(awk -v a="${rx0[$k]}" -v b="$(ns_rx_bytes "$k")" 'BEGIN {printf "%.0f", (b - a) / 1e6}') "; done
            echo "s3-$v-$piece-$c-r$rep: MB from each seeder: $share" >>"$OUT/s3-per-seeder.txt"
            log "  MB from each seeder: $share"
        done
    done
    seeders_stop
    tracker_stop
    for k in "${ks[@]}"; do ns_limit "$k" 0; done
fi

# ---------------------------------------------------------------- scenario 4
# swarm KIND REP CLIENT...: all leechers start together; rows per leecher and
# one "swarm-last" row (first start to last completion)
swarm() {
    local kind=$1 rep=$2 i c d why deadline running t_first= t_last= all_ok=1 cpu_sum=0
    shift 2
    local dirs=() names=() rx0 rx1
    # the seeder's byte count starts before the first leecher does: starting
    # eight takes a few seconds, and the first ones download meanwhile
    rx0=$(ns_rx_bytes 1)
    i=0
    for c; do
        i=$((i + 1))
        if ! why=$(client_available "$c" ns); then
            R_status=$why R_wall= R_cpu= R_rss= R_down= R_cmp= R_ttfb= R_anon= R_exit=
            csv_row s4 "$kind" "$piece" "$rate" "$seeder" "$c" "$i" "$rep" "" "" ""
            log "s4 $kind leecher $i ($c): $why"
            continue
        fi
        RUN_SEQ=$((RUN_SEQ + 1))
        d=$BENCH_TMP/run-$RUN_SEQ
        client_launch "$d" "$c" "$HOSTIP" stay
        dirs+=("$d")
        names+=("$c:$i")
    done
    ((${#dirs[@]})) || return 0
    deadline=$(($(date +%s) + TIMEOUT))
    while :; do
        running=0
        for d in "${dirs[@]}"; do client_poll "$d" || running=$((running + 1)); done
        ((running == 0)) && break
        if (($(date +%s) >= deadline)); then
            for d in "${dirs[@]}"; do client_timeout "$d"; done
            break
        fi
        sleep 0.1
    done
    # every leecher is done (or failed): now stop and measure them
    rx1=$(ns_rx_bytes 1)
    i=0
    for d in "${dirs[@]}"; do
        c=${names[$i]%%:*}
        local inst=${names[$i]##*:} label
        i=$((i + 1))
        local t0 t1=
        t0=$(<"$d/start_ns")
        [[ -f $d/end_ns ]] && t1=$(<"$d/end_ns")
        client_collect "$d"
        label=s4-$kind-$piece-$c-$inst-r$rep
        keep_trace "$d" "$label"
        csv_row s4 "$kind" "$piece" "$rate" "$seeder" "$c" "$inst" "$rep" "" "" "progress/$label.tsv.gz"
        log "$label: $R_status wall=${R_wall:-?}s cpu=${R_cpu:-?}s rss=${R_rss:-?}MiB first-byte=${R_ttfb:-?}s"
        [[ -z $t_first || $t0 -lt $t_first ]] && t_first=$t0
        if [[ $R_status == ok ]]; then
            [[ -z $t_last || $t1 -gt $t_last ]] && t_last=$t1
            cpu_sum=$(awk -v a="$cpu_sum" -v b="${R_cpu:-0}" 'BEGIN {print a + b}')
        else
            all_ok=0
        fi
        rm -rf "$d"
    done
    R_down= R_cmp= R_rss= R_ttfb= R_anon= R_exit=
    if ((all_ok)); then
        R_status=ok
        R_wall=$(awk -v a="$t_first" -v b="$t_last" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        R_cpu=$cpu_sum
    else
        R_status=failed R_wall= R_cpu=
    fi
    local good=
    [[ -n $R_wall ]] && good=$(awk -v b="$DATA_BYTES" -v t="$R_wall" -v r="$rate" 'BEGIN {printf "%.1f", b * 8 / t / (r * 1e6) * 100}')
    # wire: what the seeder sent through its link while the swarm ran
    csv_row s4 "$kind" "$piece" "$rate" "$seeder" swarm-last 0 "$rep" "$((rx1 - rx0))" "$good" ""
    log "s4 $kind swarm r$rep: last leecher done after ${R_wall:-?} s (bound $(awk -v b="$DATA_BYTES" -v r="$rate" 'BEGIN {printf "%.1f", b * 8 / (r * 1e6)}') s), CPU of all leechers ${R_cpu:-?} s, the seeder sent $(((rx1 - rx0) / 1000000)) MB ($(awk -v a="$((rx1 - rx0))" -v b="$DATA_BYTES" 'BEGIN {printf "%.2f", a / b}') x the file)"
}

if has 4; then
    ns_limit 1 "$rate"
    for ((rep = first_rep; rep < first_rep + reps; rep++)); do
        for kind in "${SWARMS[@]}"; do
            # a fresh tracker and seeder per swarm: no peers left from the last one
            tracker_restart "$HOSTIP"
            seeder_start "$seeder" "$(ns_name 1)" "$NET.1.2"
            seeders_wait 1
            members=()
            case $kind in
            mixed) members=("${MIX[@]}") ;;
            *) for ((i = 0; i < nleech; i++)); do members+=("$kind"); done ;;
            esac
            log "scenario 4: swarm '$kind' (${members[*]}), seeder behind $rate Mbit/s"
            swarm "$kind" "$rep" "${members[@]}"
            seeders_stop
            tracker_stop
        done
    done
    ns_limit 1 0
fi

# ---------------------------------------------------------------- report
bound=$(awk -v b="$DATA_BYTES" -v r="$rate" 'BEGIN {printf "%.2f", b * 8 / (r * 1e6)}')
{
    echo
    echo "Results: $OUT (runs.csv, meta.json, progress/*.tsv.gz, logs.tar.gz)"
    for s in s3 s4; do
        grep -q "^$s," "$CSV" || continue
        echo
        echo "## $s (medians of ok runs; $size MiB, pieces $piece)"
        echo
        summarize "$s"
    done
    [[ -f $OUT/s3-per-seeder.txt ]] && {
        echo
        echo "MB received from each seeder (veth counters):"
        echo
        sed 's/^/    /' "$OUT/s3-per-seeder.txt"
    }
    echo
    echo "## Targets"
    echo
    awk -F, -v bound="$bound" -v mtu="$MTU" "$AWK_MEDIAN"'
    NR > 1 && $1 == "s3" { n3++; if ($9 == "ok") g[$6] = g[$6] " " $15 }
    NR > 1 && $1 == "s4" && $6 == "swarm-last" { n4++; n[$2]++; if ($9 == "ok") w[$2] = w[$2] " " $10 }
    END {
        if ("bt-fetch" in g) printf "- s3: bt-fetch goodput %.1f %% of the aggregate link >= 97 %%: %s (payload ceiling at MTU %d with TCP timestamps: %.1f %%)\n", median(g["bt-fetch"]), (median(g["bt-fetch"]) >= 97) ? "MET" : "not met", mtu, (mtu - 52) / (mtu + 14) * 100
        else if (n3) print "- s3: bt-fetch has no successful run"
        for (c in g) if (c != "bt-fetch") printf "  (s3 %s: %.1f %%)\n", c, median(g[c])
        for (k in n) printf "- s4 swarm %s: last leecher after %s s (bound %.1f s, %s x bound)\n", k, (k in w) ? sprintf("%.1f", median(w[k])) : "n/a", bound, (k in w) ? sprintf("%.2f", median(w[k]) / bound) : "n/a"
        if (("bt-fetch" in w) && ("libtorrent" in w))
            printf "- s4 target: all-bt-fetch %.1f s <= all-libtorrent %.1f s: %s; within 1.1 x bound: %s\n", median(w["bt-fetch"]), median(w["libtorrent"]),
                (median(w["bt-fetch"]) <= median(w["libtorrent"])) ? "MET" : "not met", (median(w["bt-fetch"]) <= 1.1 * bound) ? "MET" : "not met"
        else if (n4) print "- s4 target: needs both the all-bt-fetch and the all-libtorrent swarm"
    }' "$CSV"
} | tee -a "$OUT/summary.md"
bench_finish
log "plots: examples/plots.sh --results $OUT"
