#!/usr/bin/env bash
# Regenerates every figure of docs/REPORT.md from the committed data under
# docs/results/ (gnuplot, Debian: gnuplot-nox; python3 for the statistics).
#
#   examples/plots.sh               writes docs/img/*.png and the strategy
#                                   plots in docs/results/strategies/
#   examples/plots.sh --check       the same into a temporary folder that is
#                                   removed afterwards (CI: the data must
#                                   still plot; the images are not compared)
#   examples/plots.sh --results DIR one folder written by bench-clients.sh or
#                                   bench-swarm.sh: its plots into DIR/plots
#
# Every title carries the experiment, file size, piece length, MTU, number
# of runs and commit (from the folder's meta.json).
#
# Result folders without plots: engine-v2, encryption, hashing and webseed
# are tables only (their README.md says how they were made), so there is
# nothing to redraw for them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/examples/bench
R=$ROOT/docs/results
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

die() {
    echo "plots.sh: $*" >&2
    exit 1
}
command -v gnuplot >/dev/null || die "gnuplot missing (apt-get install gnuplot-nox)"
[[ -x $PY ]] || die "python3 missing (apt-get install python3)"

mode=write results=
case ${1:-} in
--check) mode=check ;;
--results) results=${2:?--results needs a folder} ;;
"") ;;
*) die "unknown option '$1' (--check | --results DIR)" ;;
esac

TMP=$(mktemp -d /tmp/bt-plots.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [[ $mode == check ]]; then IMG=$TMP/img; else IMG=$ROOT/docs/img; fi
mkdir -p "$IMG"
made=0

# caption DIR: "commit abc1234, <date> UTC, 2 cores, MTU lo 65536 / veth 1500, load a→b"
caption() { "$PY" "$B/stats.py" caption "$1"; }

# runs CSV SCEN: successful runs per client, e.g. "10" or "8-10"
runs() {
    awk -F, -v s="$2" 'NR > 1 && $1 == s && $9 == "ok" && $10 + 0 >= 0 { n[$2 $3 $5 $6]++ }
        END { lo = 1e9; hi = 0; for (k in n) { if (n[k] < lo) lo = n[k]; if (n[k] > hi) hi = n[k] }
              if (hi == 0) print 0; else if (lo == hi) print lo; else print lo "-" hi }' "$1"
}

# dist DIR SCEN BY PANELS OUT TITLE [WHERE [GNUPLOT_SETTINGS]]: every run as
# a point per group; the folder's conditions (caption) are the second title
# line; WHERE filters rows (stats.py --where), the settings go to gnuplot
dist() {
    local dir=$1 scen=$2 by=$3 panels=$4 out=$5 ttl=$6 where=${7:-} extra=${8:-} p=$TMP/d$made sub
    sub=$(caption "$dir")
    "$PY" "$B/stats.py" points "$dir/runs.csv" "$p" --scenario "$scen" --by "$by" --where "$where"
    [[ -s $p.points.tsv ]] || die "$dir: no successful $scen run to plot"
    gnuplot -e "grp='$p.groups.tsv'; pts='$p.points.tsv'; out='$out'; ttl='$ttl'; sub='$sub'; panels=$panels; $extra" "$B/dist.gnuplot"
    made=$((made + 1))
}

# rates DIR SCEN CEILING_MBIT OUT TITLE: one panel per client, every run's
# download rate over time
rates() {
    local dir=$1 scen=$2 ceiling=$3 out=$4 ttl=$5 p=$TMP/r$made sub
    sub=$(caption "$dir")
    "$PY" "$B/stats.py" rates "$dir/runs.csv" "$p" --scenario "$scen" >"$p.list"
    [[ -s $p.list ]] || die "$dir: no trace for $scen"
    gnuplot -e "prefix='$p'; list='$p.list'; out='$out'; ttl='$ttl'; sub='$sub'; ceiling=$ceiling" "$B/rates.gnuplot"
    made=$((made + 1))
}

# veth_mtu DIR: the veth MTU of the folder's runs (meta.json)
veth_mtu() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["machine"]["veth_mtu"])' "$1/meta.json"; }
# ceiling MTU: TCP payload as % of what tbf counts (the frame, with TCP
# timestamps: 52 bytes of headers in MTU, 14 of Ethernet outside it)
ceiling() { awk -v m="$1" 'BEGIN { printf "%.1f", (m - 52) / (m + 14) * 100 }'; }

# progress DIR SCEN WHERE BYTES OUT TITLE: every run's bytes over time
progress() {
    local dir=$1 scen=$2 where=$3 bytes=$4 out=$5 ttl=$6 list=$TMP/t$made sub
    sub=$(caption "$dir")
    "$PY" "$B/stats.py" traces "$dir/runs.csv" --scenario "$scen" --where "$where" | sort -s -n -k1,1 >"$list"
    [[ -s $list ]] || die "$dir: no trace for $scen $where"
    gnuplot -e "list='$list'; dir='$dir'; total=$bytes; out='$out'; ttl='$ttl'; sub='$sub'" "$B/progress.gnuplot"
    made=$((made + 1))
}

# need DIR: a results folder the report uses must be there
need() { [[ -f $1/runs.csv && -f $1/meta.json ]] || die "$1: runs.csv or meta.json missing"; }

# ------------------------------------------------------------ one folder
if [[ -n $results ]]; then
    dir=$(cd "$results" && pwd)
    need "$dir"
    mkdir -p "$dir/plots"
    for s in $(cut -d, -f1 "$dir/runs.csv" | sed 1d | sort -u); do
        dist "$dir" "$s" variant,piece,seeder,client 3 "$dir/plots/$s-times.png" "$s: every run"
    done
    echo "plots.sh: $made plots in $dir/plots" >&2
    exit 0
fi

GIB=1073741824

# ------------------------------------------------------------ S1
d=$R/s1
need "$d"
n=$(runs "$d/runs.csv" s1)
dist "$d" s1 variant,piece,client 3 "$IMG/s1-times.png" \
    "S1: one libtorrent seeder, one leecher, 1 GiB, pieces 1 MiB / 256 KiB, lo and veth, $n runs per cell"
for v in lo ns; do
    progress "$d" s1 "variant=$v,piece=1M" $GIB "$IMG/s1-$v-1M-progress.png" \
        "S1 $v, 1 GiB, 1 MiB pieces: bytes on disk over time, every run ($n per client)"
done

# ------------------------------------------------------------ S5
d=$R/s5
need "$d"
dist "$d" s5 client 2 "$IMG/s5-runs.png" \
    "S5 stability: 1 GiB over lo, 1 MiB pieces, $(runs "$d/runs.csv" s5) runs per client, every run"

# ------------------------------------------------------------ S2, S3, S4
d=$R/s2
need "$d"
mtu=$(veth_mtu "$d")
c=$(ceiling "$mtu")
n=$(runs "$d/runs.csv" s2)
dist "$d" s2 variant,piece,client 3 "$IMG/s2-runs.png" \
    "S2: one libtorrent seeder behind 100 Mbit/s (tbf), 1 GiB, 1 MiB pieces, veth MTU $mtu, $n runs per client" "" \
    "metric='goodput'; hline1=$c; hlabel1='payload ceiling at MTU $mtu: $c %'"
rates "$d" s2 "$c" "$IMG/s2-rates.png" \
    "S2: download rate of every run, one panel per client (dashed: the payload ceiling, $c Mbit/s), $n runs per client"

d=$R/s3
need "$d"
mtu=$(veth_mtu "$d")
c=$(ceiling "$mtu")
dist "$d" s3 variant,piece,client 3 "$IMG/s3-runs.png" \
    "S3: four libtorrent seeders behind 50 Mbit/s each (tbf), 1 GiB, 1 MiB pieces, veth MTU $mtu, $(runs "$d/runs.csv" s3) runs per client" "" \
    "metric='goodput'; hline1=$c; hlabel1='payload ceiling at MTU $mtu: $c %'"

d=$R/s4
need "$d"
mtu=$(veth_mtu "$d")
rate=$(awk -F, 'NR > 1 && $1 == "s4" && $4 != "" { print $4; exit }' "$d/runs.csv")
bound=$(awk -v r="$rate" 'BEGIN { printf "%.1f", 1073741824 * 8 / (r * 1e6) }')
cbound=$(awk -v r="$rate" -v m="$mtu" 'BEGIN { printf "%.1f", 1073741824 * 8 / (r * 1e6) / ((m - 52) / (m + 14)) }')
swarms=$(awk -F, 'NR > 1 && $1 == "s4" && $6 == "swarm-last" { n[$2]++ } END { for (k in n) print n[k] }' "$d/runs.csv" | sort -u | paste -sd/)
dist "$d" s4 variant 2 "$IMG/s4-swarms.png" \
    "S4: 8 leechers, one libtorrent seeder behind $rate Mbit/s, 1 GiB, 1 MiB pieces, veth MTU $mtu, $swarms swarms each: last leecher done; CPU of all 8" \
    "client=swarm-last" \
    "walllinear=1; walllabel='first start to last done, s'; hline1=$bound; hlabel1='bound: 1 GiB at $rate Mbit/s = $bound s'; hline2=$cbound; hlabel2='with the payload ceiling at MTU $mtu: $cbound s'"
dist "$d" s4 variant,client 3 "$IMG/s4-leechers.png" \
    "S4: every leecher, time from its own start to 100 %, per swarm and client, $swarms swarms each" "client!=swarm-last" "walllinear=1"

# ------------------------------------------------------------ new scenarios
d=$R/seeders
if [[ -d $d ]]; then
    need "$d"
    dist "$d" s1 variant,seeder,client 3 "$IMG/seeders-times.png" \
        "Other seeders: 1 GiB, 1 MiB pieces, seeder x leecher, $(runs "$d/runs.csv" s1) runs per cell"
fi
for d in "$R"/small-*; do
    [[ -d $d ]] || continue
    need "$d"
    name=$(basename "$d")
    dist "$d" s1 variant,piece,client 3 "$IMG/$name-times.png" \
        "Small files ($name): ${name#small-} file, 256 KiB pieces, one libtorrent seeder over lo, $(runs "$d/runs.csv" s1) runs per client"
done
d=$R/multi-1000
if [[ -d $d ]]; then
    need "$d"
    dist "$d" s1 variant,piece,client 3 "$IMG/multi-1000-times.png" \
        "Multi-file: 1 000 files of 64 KiB (62.5 MiB), 256 KiB pieces, one libtorrent seeder over lo, $(runs "$d/runs.csv" s1) runs per client"
fi
d=$R/many
if [[ -d $d ]]; then
    need "$d"
    swarms=$(awk -F, 'NR > 1 && $1 == "many" && $6 == "seeder" { n[$2]++ } END { for (k in n) print n[k] }' "$d/runs.csv" | sort -u | paste -sd/)
    dist "$d" many variant,client 3 "$IMG/many-times.png" \
        "Seeding to many (variant = the seeder): 64 MiB, 256 KiB pieces, 50 leechers over lo, $swarms swarms per seeder; seeder rows: whole swarm, seeder CPU/RSS"
fi

d=$R/trackers
if [[ -d $d ]]; then
    need "$d"
    dist "$d" trackers client,variant 1 "$IMG/trackers-times.png" \
        "Trackers: HTTP, UDP, HTTPS (stunnel), 16 MiB, 256 KiB pieces, lo, $(runs "$d/runs.csv" trackers) runs per cell"
fi

# -------------------------------------- latency, ablations, soak
# Their own plot scripts, each reading the committed data next to it.
for exp in latency ablation; do
    if [[ -d $R/$exp ]]; then
        bash "$R/$exp/plot.sh" "$IMG/$exp.png"
        made=$((made + 1))
    fi
done
if [[ -f $R/soak/samples.csv ]]; then
    gnuplot -e "csv='$R/soak/samples.csv'; png='$IMG/soak.png'" "$ROOT/examples/soak-plot.gnuplot"
    made=$((made + 1))
fi

# ------------------------------------------------------------ strategies
# examples/strategies/plots.sh writes next to its data; for --check it runs
# on a copy, so the tree stays clean
if [[ $mode == check ]]; then
    mkdir -p "$TMP/copy/examples/strategies" "$TMP/copy/docs/results"
    cp "$ROOT/examples/strategies/plots.sh" "$TMP/copy/examples/strategies/"
    cp -r "$R/strategies" "$TMP/copy/docs/results/"
    sh "$TMP/copy/examples/strategies/plots.sh"
else
    sh "$ROOT/examples/strategies/plots.sh"
fi
made=$((made + 1))

echo "plots.sh: $made figures written to $([[ $mode == check ]] && echo "a temporary folder (--check)" || echo "$IMG and docs/results/strategies")" >&2
