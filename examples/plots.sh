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

# dist DIR SCEN BY PANELS OUT TITLE: every run as a point per group; the
# folder's conditions (caption) are the second title line
dist() {
    local dir=$1 scen=$2 by=$3 panels=$4 out=$5 ttl=$6 p=$TMP/d$made sub
    sub=$(caption "$dir")
    "$PY" "$B/stats.py" points "$dir/runs.csv" "$p" --scenario "$scen" --by "$by"
    [[ -s $p.points.tsv ]] || die "$dir: no successful $scen run to plot"
    gnuplot -e "grp='$p.groups.tsv'; pts='$p.points.tsv'; out='$out'; ttl='$ttl'; sub='$sub'; panels=$panels" "$B/dist.gnuplot"
    made=$((made + 1))
}

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
