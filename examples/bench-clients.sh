#!/usr/bin/env bash
# Download performance of bt-fetch against the reference clients, one
# leecher at a time from one fixed seeder, runs interleaved over repetitions
# (A B C D E, A B C D E, ...) so that drift on a shared machine hits every
# client alike. Scenarios (issue "Measure it"):
#
#   1  one seeder, one leecher, pieces of 1 MiB and 256 KiB, on loopback
#      (lo) and with the seeder in a network namespace over a veth pair (ns)
#   2  the same over veth with the seeder's link limited by tbf (100 Mbit/s)
#   5  stability: N runs of scenario 1 (lo, 1 MiB) for bt-fetch and the
#      best reference; coefficient of variation of each
#
# Usage: sudo examples/bench-clients.sh [options]
#   --scenarios 1,2,5     which scenarios (default 1,2,5)
#   --quick               128 MiB, 1 repetition, 3 stability runs, 1 MiB pieces
#                         (options given explicitly win, in any order)
#   --size MIB            file size (default 1024)
#   --multi N,KIB         scenario 1 with a multi-file torrent of N files
#                         of KIB KiB each instead of one file
#   --s2-size MIB         file size for scenario 2 (default: --size)
#   --pieces 1M,256K      piece lengths for scenario 1 (default 1M,256K)
#   --s2-pieces LIST      piece lengths for scenario 2 (default: --pieces)
#   --variants lo,ns      scenario 1 variants (default lo,ns)
#   --reps N              repetitions for scenarios 1 and 2 (default 3)
#   --stability-runs N    runs per client in scenario 5 (default 10)
#   --best-ref CLIENT     reference for scenario 5 (default: fastest in
#                         scenario 1 lo/1M of this run, else libtorrent)
#   --clients LIST        leechers (default bt-fetch,libtorrent,qbittorrent,aria2,transmission)
#   --seeder KIND         libtorrent (default) | transmission | bt-fetch |
#                         qbittorrent | aria2
#   --rate MBIT           scenario 2 link rate (default 100)
#   --timeout S           per run (default 300)
#   --mtu N               veth MTU (default 1500)
#   --out DIR             results (default target/bench/<timestamp>)
# Environment: BT_FETCH=/path/to/bt-fetch, BT_BENCH_DIR (test data folder,
# default /tmp/bt-bench-clients), BENCH_NET (default 10.231), BENCH_KEEP=1.
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

scenarios=1,2,5
size=1024 s2size= pieces=1M,256K s2pieces= variants=lo,ns reps=3 sruns=10 bestref=
clients=$(
    IFS=,
    echo "${ALL_CLIENTS[*]}"
)
seeder=libtorrent rate=100 out= multi= quick=0
# --quick changes defaults: applied before parsing, so explicit options win
for a; do [[ $a == --quick ]] && size=128 reps=1 sruns=3 pieces=1M; done
bench_options --scenarios=scenarios --quick=quick:1 --size=size --multi=multi --s2-size=s2size \
    --pieces=pieces --s2-pieces=s2pieces --variants=variants --reps=reps --stability-runs=sruns \
    --best-ref=bestref --clients=clients --seeder=seeder --rate=rate --timeout=TIMEOUT --mtu=MTU \
    --out=out -- "$@"
s2size=${s2size:-$size}
s2pieces=${s2pieces:-$pieces}
out=${out:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
IFS=, read -ra CL <<<"$clients"
IFS=, read -ra PIECES <<<"$pieces"
IFS=, read -ra S2PIECES <<<"$s2pieces"
IFS=, read -ra VARIANTS <<<"$variants"
has() { [[ ,$scenarios, == *,$1,* ]]; }

bench_init "$out"
log "results in $OUT; bt-fetch: $BT_FETCH $([[ -x $BT_FETCH ]] || echo '(not built: skipped)')"
{
    echo "# bench-clients.sh $(date -Is)"
    echo "host: $(nproc) cores, $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scenarios=$scenarios size=${size}MiB s2size=${s2size}MiB pieces=$pieces reps=$reps seeder=$seeder rate=${rate}mbit mtu=$MTU timeout=${TIMEOUT}s"
    echo "clients=$clients bt-fetch=$BT_FETCH"
} >"$OUT/params.txt"
tracker_setup
need_ns=0
[[ ,$variants, == *,ns,* ]] && has 1 && need_ns=1
has 2 && need_ns=1
((need_ns)) && ns_create 1
HOSTIP=$NET.1.1

# variant_begin VARIANT PIECE RATE: fresh tracker, torrent, seeder; sets LIP
# (the leechers' address) and RXDEV (namespace whose veth counts wire bytes)
variant_begin() {
    local variant=$1 piece=$2 r=$3
    if [[ $variant == lo* ]]; then
        LIP=127.0.0.1 RXDEV=()
        make_torrent "$piece" 127.0.0.1
        tracker_restart
        seeder_start "$seeder" "" 127.0.0.1
    else
        LIP=$HOSTIP RXDEV=(1)
        ns_limit 1 "$r"
        make_torrent "$piece" "$HOSTIP"
        tracker_restart "$HOSTIP"
        seeder_start "$seeder" "$(ns_name 1)" "$NET.1.2"
    fi
    seeders_wait 1
    log "variant $variant, pieces $piece${r:+, link $r Mbit/s}: seeder $seeder ready (info-hash $HASH)"
    [[ ${r:-0} == 0 && $seeder != transmission ]] && warm_up "$variant" "$LIP"
    return 0
}
# warm_up VARIANT IP: one download before the measured runs, not counted. A
# freshly started seeder serves its first leecher slower (libtorrent maps
# the file and faults every page in on first use), and in A B C D E order
# that would always be the same client. (Not with a Transmission seeder,
# which serves one leecher per address and is restarted before every run.)
warm_up() {
    local c= k d
    for k in "${CL[@]}"; do
        client_available "$k" "$1" >/dev/null && { c=$k; break; }
    done
    [[ -n $c ]] || return 0
    RUN_SEQ=$((RUN_SEQ + 1))
    d=$BENCH_TMP/run-$RUN_SEQ
    client_run "$d" "$c" "$2"
    client_collect "$d"
    log "warm-up download by $c: $R_status in ${R_wall:-?} s (not counted)"
}
# fresh_seeder VARIANT PIECE RATE: a Transmission seeder serves only the
# first leecher from an address (every leecher here comes from the same
# address), so with --seeder transmission it is restarted before every run
fresh_seeder() {
    [[ $seeder == transmission ]] || return 0
    variant_end
    variant_begin "$@"
}
variant_end() {
    seeders_stop
    tracker_stop
    ((need_ns)) && ns_limit 1 0
}

# ---------------------------------------------------------------- scenario 1
if has 1; then
    if [[ -n $multi ]]; then make_data_multi "${multi%,*}" "${multi#*,}"; else make_data "$size"; fi
    for v in "${VARIANTS[@]}"; do
        for piece in "${PIECES[@]}"; do
            variant_begin "$v" "$piece" 0
            for ((rep = 1; rep <= reps; rep++)); do
                for c in "${CL[@]}"; do
                    fresh_seeder "$v" "$piece" 0
                    run_one s1 "$v" "$piece" 0 "$seeder" "$c" "$rep" "$LIP" "${RXDEV[@]}"
                done
            done
            variant_end
        done
    done
fi

# ---------------------------------------------------------------- scenario 2
if has 2; then
    make_data "$s2size"
    v=ns-${rate}mbit
    for piece in "${S2PIECES[@]}"; do
        variant_begin "$v" "$piece" "$rate"
        for ((rep = 1; rep <= reps; rep++)); do
            for c in "${CL[@]}"; do
                fresh_seeder "$v" "$piece" "$rate"
                run_one s2 "$v" "$piece" "$rate" "$seeder" "$c" "$rep" "$LIP" "${RXDEV[@]}"
            done
        done
        variant_end
    done
fi

# ---------------------------------------------------------------- scenario 5
if has 5; then
    make_data "$size"
    if [[ -z $bestref ]]; then
        bestref=$(awk -F, 'NR > 1 && $1 == "s1" && $2 == "lo" && $3 == "1M" && $9 == "ok" && $6 != "bt-fetch" { print $6, $10 }' "$CSV" |
            awk "$AWK_MEDIAN"' { a[$1] = a[$1] " " $2 } END { for (c in a) print median(a[c]), c }' |
            sort -g | head -1 | cut -d' ' -f2)
        bestref=${bestref:-libtorrent}
    fi
    log "scenario 5: bt-fetch against $bestref, $sruns runs each"
    variant_begin lo 1M 0
    for ((rep = 1; rep <= sruns; rep++)); do
        for c in bt-fetch "$bestref"; do
            fresh_seeder lo 1M 0
            run_one s5 lo 1M 0 "$seeder" "$c" "$rep" "$LIP"
        done
    done
    variant_end
fi

# ---------------------------------------------------------------- report
{
    echo
    echo "Results: $OUT (runs.csv, meta.json, progress/*.tsv.gz, logs.tar.gz)"
    for s in s1 s2 s5; do
        grep -q "^$s," "$CSV" || continue
        echo
        echo "## $s (medians of ok runs; $size MiB$([[ $s == s2 ]] && echo ", ${s2size} MiB for s2"))"
        echo
        summarize "$s"
    done
    echo
    echo "## Targets"
    echo
    # S1: bt-fetch median wall <= fastest reference, CPU <= lowest reference, RSS <= 32 MiB
    awk -F, -v mtu="$MTU" '
    '"$AWK_MEDIAN"'
    NR > 1 && $9 == "ok" { k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $6; w[k] = w[k] " " $10; c[k] = c[k] " " $11; r[k] = r[k] " " $12; g[k] = g[k] " " $15
                           vp = $1 SUBSEP $2 SUBSEP $3; if (!(vp in seen)) { seen[vp] = 1; vo[++nv] = vp } }
    NR > 1 && $9 !~ /^ok|^skipped/ { failed[$1 SUBSEP $2 SUBSEP $3 SUBSEP $6]++ }
    END {
        for (i = 1; i <= nv; i++) {
            split(vo[i], p, SUBSEP); s = p[1]; if (s == "s5") continue
            bf = vo[i] SUBSEP "bt-fetch"
            bestw = ""; bestc = ""
            for (k in w) { split(k, q, SUBSEP); if (q[1] SUBSEP q[2] SUBSEP q[3] != vo[i] || q[4] == "bt-fetch") continue
                mw = median(w[k]); mc = median(c[k])
                if (bestw == "" || mw < bestw) { bestw = mw; bwho = q[4] }
                if (bestc == "" || mc < bestc) { bestc = mc; bcwho = q[4] } }
            label = s " " p[2] " " p[3]
            if (!(bf in w)) { printf "- %s: bt-fetch has no successful run (%s)\n", label, (bf in failed) ? "failed" : "skipped"; continue }
            if (s == "s1") {
                printf "- %s: wall %.2f s vs fastest reference %s %.2f s: %s; CPU %.2f s vs lowest %s %.2f s: %s; peak RSS %.1f MiB <= 32: %s\n", label,
                    median(w[bf]), bwho, bestw, (bestw == "" || median(w[bf]) <= bestw) ? "MET" : "not met",
                    median(c[bf]), bcwho, bestc, (bestc == "" || median(c[bf]) <= bestc) ? "MET" : "not met",
                    median(r[bf]), (median(r[bf]) <= 32) ? "MET" : "not met"
            } else if (s == "s2") {
                printf "- %s: bt-fetch goodput %.1f %% of the link >= 97 %%: %s (payload ceiling at MTU %d with TCP timestamps: %.1f %%)\n", label, median(g[bf]), (median(g[bf]) >= 97) ? "MET" : "not met", mtu, (mtu - 52) / (mtu + 14) * 100
            }
        }
    }' "$CSV"
    # S5: coefficient of variation of the wall time
    if grep -q '^s5,' "$CSV"; then
        awk -F, '
        NR > 1 && $1 == "s5" { n[$6]++; if ($9 == "ok") { k[$6]++; s[$6] += $10; q[$6] += $10 * $10 } else if ($9 !~ /^skipped/) f[$6]++ }
        END {
            for (c in n) { if (k[c] > 1) { m = s[c] / k[c]; sd = sqrt((q[c] - k[c] * m * m) / (k[c] - 1)); cv[c] = sd / m * 100 }
                printf "- s5 %s: %d/%d ok, mean %.2f s, CV %s %%\n", c, k[c], n[c], k[c] ? s[c] / k[c] : 0, (c in cv) ? sprintf("%.1f", cv[c]) : "n/a" }
            for (c in n) if (c != "bt-fetch") ref = c
            if (!("bt-fetch" in cv)) print "- s5 target: bt-fetch has no runs to judge"
            else printf "- s5 target: bt-fetch CV %.1f %% <= %s CV %.1f %% and no failed run: %s\n", cv["bt-fetch"], ref, cv[ref],
                (cv["bt-fetch"] <= cv[ref] && !f["bt-fetch"] && k["bt-fetch"] == n["bt-fetch"]) ? "MET" : "not met"
        }' "$CSV"
    fi
} | tee -a "$OUT/summary.md"
bench_finish
log "plots: examples/plots.sh --results $OUT"
