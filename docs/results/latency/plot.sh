#!/usr/bin/env bash
# Plots docs/results/latency/throughput.csv (from examples/bench-latency.sh):
# throughput against the RTT, from the first byte (left) and over the whole
# run (right), every run as a point (clients side by side around each RTT),
# the link rate and 95 % of it as lines.
#   docs/results/latency/plot.sh [OUT.png]   (default docs/img/latency.png)
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$dir/../../.." && pwd)
out=${1:-$root/docs/img/latency.png}
csv=$dir/throughput.csv
meta=$dir/meta.json
[[ -s $csv ]] || { echo "plot.sh: $csv missing (run examples/bench-latency.sh)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot missing (apt-get install gnuplot-nox)" >&2; exit 1; }
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\).*/\1/p" "$meta" | head -1; }
rate=$(field rate_mbit)
size=$(($(field size_bytes) / 1048576))
piece=$(field piece_length)
reps=$(awk -F, 'NR > 1 { n[$1 "," $2]++ } END { for (k in n) print n[k] }' "$csv" | sort -nu | paste -sd/)
commit=$(field commit | cut -c1-7)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one data file per client: x = RTT index + client offset, y = Mbit/s
clients=$(awk -F, 'NR > 1 { if (!($2 in s)) { s[$2] = 1; printf "%s ", $2 } }' "$csv")
rtts=$(awk -F, 'NR > 1 { if (!($1 in s)) { s[$1] = 1; printf "%s ", $1 } }' "$csv")
n=$(wc -w <<<"$clients")
k=0
plots=()
plots2=()
for c in $clients; do
    awk -F, -v c="$c" -v k="$k" -v n="$n" -v rtts="$rtts" '
        BEGIN { m = split(rtts, r, " "); for (i = 1; i <= m; i++) idx[r[i]] = i - 1 }
        NR > 1 && $2 == c && $4 == "ok" && $8 != "" { print idx[$1] + (k - (n - 1) / 2) * 0.12, $8, $7 }' "$csv" >"$tmp/$c.dat"
    plots+=("'$tmp/$c.dat' using 1:2 with points pt 7 ps 1.1 title '$c'")
    plots2+=("'$tmp/$c.dat' using 1:3 with points pt 7 ps 1.1 title '$c'")
    k=$((k + 1))
done
xt=$(awk -v rtts="$rtts" 'BEGIN { m = split(rtts, r, " "); for (i = 1; i <= m; i++) printf "%s\"%s ms\" %d", (i > 1 ? ", " : ""), r[i], i - 1 }')
mkdir -p "$(dirname "$out")"
gnuplot <<GP
set terminal pngcairo size 1400,600 noenhanced
set output '$out'
set multiplot layout 1,2 title "Latency: ${rate} Mbit/s link per direction (userspace relay examples/relay.rs), libtorrent seeder, ${size} MiB file, ${piece} pieces,\\nloopback (MTU 65536), ${reps} runs per cell (every run a point), commit ${commit}"
set xtics ($xt)
set xrange [-0.5:$(($(wc -w <<<"$rtts") - 1)).5]
set yrange [0:110]
set xlabel "round-trip time added by the relay"
set key bottom left
set grid ytics
set title "from the first byte on disk to completion"
set ylabel "Mbit/s"
plot ${rate} with lines dt 2 lc rgb "black" title "link rate", \
     ${rate}*0.95 with lines lw 1 lc rgb "gray50" title "95 % of the link", \
     $(IFS=,; echo "${plots[*]}")
set title "over the whole run (file / time from start to completion)"
plot ${rate} with lines dt 2 lc rgb "black" title "link rate", \
     ${rate}*0.95 with lines lw 1 lc rgb "gray50" title "95 % of the link", \
     $(IFS=,; echo "${plots2[*]}")
unset multiplot
GP
echo "plot.sh: wrote $out" >&2
