#!/usr/bin/env bash
# Plots docs/results/ablation (from examples/bench-ablation.sh) into
# docs/img/ablation.png: left, the distinct pieces the leechers hold and
# their mean number of copies over time (every swarm, one colour per
# variant); right, the completion time of every leecher of every
# swarm per variant (every run as a point).
#   docs/results/ablation/plot.sh [OUT.png]   (default docs/img/ablation.png)
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$dir/../../.." && pwd)
out=${1:-$root/docs/img/ablation.png}
meta=$dir/meta.json
for f in availability.csv leechers.csv swarms.csv meta.json; do
    [[ -s $dir/$f ]] || { echo "plot.sh: $dir/$f missing (run examples/bench-ablation.sh)" >&2; exit 1; }
done
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot missing (apt-get install gnuplot-nox)" >&2; exit 1; }
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\).*/\1/p" "$meta" | head -1; }
size=$(($(field size_bytes) / 1048576))
piece=$(field piece_length)
pieces=$(field pieces)
reps=$(awk -F, 'NR > 1 { n[$1]++ } END { for (v in n) print n[v] }' "$dir/swarms.csv" | sort -nu | paste -sd/)
rate=$(field rate_mbit)
commit=$(field commit | cut -c1-7)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants=$(awk -F, 'NR > 1 && !($1 in s) { s[$1] = 1; printf "%s ", $1 }' "$dir/availability.csv")
left=() right=() k=0 xt=""
colors=(black "#d62728" "#1f77b4" "#2ca02c" "#9467bd")
for v in $variants; do
    col=${colors[$((k % 5))]}
    # one block per swarm (blank lines between swarms: no lines across)
    awk -F, -v v="$v" 'NR > 1 && $1 == v { if ($2 != last && last != "") print ""; last = $2; print $3, $4, $6 }' "$dir/availability.csv" >"$tmp/$v.av"
    awk -F, -v v="$v" -v k="$k" 'NR > 1 && $1 == v && $4 != "" { srand($2 * 100 + $3); print k + (rand() - 0.5) * 0.3, $4 }' "$dir/leechers.csv" >"$tmp/$v.done"
    left+=("'$tmp/$v.av' using 1:2 with lines lc rgb '$col' title '$v'")
    left+=("'$tmp/$v.av' using 1:(\$3*$pieces/8) with lines dt 2 lc rgb '$col' notitle")
    right+=("'$tmp/$v.done' using 1:2 with points pt 7 ps 0.7 lc rgb '$col' title '$v'")
    xt+="${xt:+, }\"$v\" $k"
    k=$((k + 1))
done
mkdir -p "$(dirname "$out")"
gnuplot <<GP
set terminal pngcairo size 1300,560 noenhanced
set output '$out'
set multiplot layout 1,2 title "Ablations: 8 bt-fetch leechers, libtorrent seeder behind ${rate} Mbit/s (tbf), ${size} MiB, ${piece} pieces (${pieces}),\\nveth MTU 1500, ${reps} swarms per variant, commit ${commit}"
set title "distinct pieces among the leechers (solid),\\nmean copies per piece x ${pieces}/8 (dashed)"
set xlabel "seconds since the leechers started"
set ylabel "pieces"
set yrange [0:*]
set key bottom right title 'variant'
set grid
plot $(IFS=,; echo "${left[*]}")
set title "completion time of every leecher\\n(every swarm)"
set offsets 0, 0, 2, 0
set xtics ($xt)
set xrange [-0.5:$((k - 1)).5]
set xlabel "variant"
set ylabel "seconds"
set key off
plot $(IFS=,; echo "${right[*]}")
unset multiplot
GP
echo "plot.sh: wrote $out" >&2
