#!/bin/sh
# Regenerates every plot of the choking-strategy experiments from the CSV
# files under docs/results/strategies/ (written by run.py). Needs gnuplot
# (Debian: gnuplot-nox).
#   examples/strategies/plots.sh            every plot
#   examples/strategies/plots.sh validate   only the check against real
#                                           processes (validate-all.sh)
set -eu
ONLY=${1:-}
cd "$(dirname "$0")/../.."
R=docs/results/strategies
command -v gnuplot >/dev/null || { echo "plots.sh: gnuplot missing (apt-get install gnuplot-nox)" >&2; exit 1; }

plot() { gnuplot -e "set terminal pngcairo size 800,500 noenhanced; set datafile separator ','; set key outside; set grid; $1"; }

# Experiments 1-4 for one swarm: SUFFIX ("" for the base swarm, e.g.
# "-200x32M" for run.py --base-peers 200 --base-size 32M) and its label.
base_swarm() {
sfx=$1; swarm=$2
# 1. One strategic peer among classic ones: the focal peer's median
#    download time per capacity class and strategy, with 95 % CIs.
if [ -f $R/exp1-one-strategic$sfx/summary.csv ]; then
plot "set output '$R/exp1-one-strategic$sfx/exp1.png';
set title 'Exp. 1, $swarm: one focal peer in a classic swarm (median, 95 % CI)';
set ylabel 'download time (s)'; set xrange [-0.5:2.5]; set yrange [0:*];
set xtics ('low <64K' 0, 'mid 64K-256K' 1, 'high >=256K' 2);
f='$R/exp1-one-strategic$sfx/summary.csv';
plot f every ::1 u (\$1+(\$3-1)*0.2):(\$3==0?\$6:1/0):7:8 w yerrorbars pt 7 t 'classic',
     f every ::1 u (\$1+(\$3-1)*0.2):(\$3==1?\$6:1/0):7:8 w yerrorbars pt 5 t 'bittyrant',
     f every ::1 u (\$1+(\$3-1)*0.2):(\$3==2?\$6:1/0):7:8 w yerrorbars pt 9 t 'propshare'"
fi

# 2. Everyone strategic.
if [ -f $R/exp2-everyone$sfx/summary.csv ]; then
plot "set output '$R/exp2-everyone$sfx/exp2.png';
set title 'Exp. 2, $swarm: all-X swarms (over runs, 95 % CI)';
set ylabel 'download time (s)'; set xrange [-0.5:2.5]; set yrange [0:*];
set xtics ('classic' 0, 'bittyrant' 1, 'propshare' 2);
f='$R/exp2-everyone$sfx/summary.csv';
plot f every ::1 u (\$1-0.1):4:5:6 w yerrorbars pt 7 t 'mean per run',
     f every ::1 u (\$1+0.1):7:8:9 w yerrorbars pt 5 t 'median per run'"
fi

# 3. Mixed swarms.
if [ -f $R/exp3-mixed$sfx/summary.csv ]; then
plot "set output '$R/exp3-mixed$sfx/exp3.png';
set title 'Exp. 3, $swarm: mixed swarms (median per run, 95 % CI)';
set ylabel 'download time (s)'; set xrange [-0.5:3.5]; set yrange [0:*];
set xtics ('BT+PS' 0, 'C+BT+PS' 1, 'C+PS' 2, 'C+BT' 3);
f='$R/exp3-mixed$sfx/summary.csv';
plot f every ::1 u (strcol(3) eq 'classic' ? \$1-0.2 : 1/0):5:6:7 w yerrorbars pt 7 t 'classic',
     f every ::1 u (strcol(3) eq 'bittyrant' ? \$1 : 1/0):5:6:7 w yerrorbars pt 5 t 'bittyrant',
     f every ::1 u (strcol(3) eq 'propshare' ? \$1+0.2 : 1/0):5:6:7 w yerrorbars pt 9 t 'propshare'"
fi

# 4. Fairness: share ratio against capacity; free riders.
if [ -f $R/exp4-fairness$sfx/ratio.csv ]; then
plot "set output '$R/exp4-fairness$sfx/exp4-ratio.png';
set title 'Exp. 4, $swarm: up/down ratio against capacity (all-X swarms)';
set logscale x; set xlabel 'upload capacity (bytes/s)'; set ylabel 'uploaded / downloaded';
f='$R/exp4-fairness$sfx/ratio.csv';
plot f every ::1 u (strcol(1) eq 'classic' ? \$3 : 1/0):4 pt 7 ps 0.4 t 'classic',
     f every ::1 u (strcol(1) eq 'bittyrant' ? \$3 : 1/0):4 pt 5 ps 0.4 t 'bittyrant',
     f every ::1 u (strcol(1) eq 'propshare' ? \$3 : 1/0):4 pt 9 ps 0.4 t 'propshare'"
fi
if [ -f $R/exp4-fairness$sfx/freeriders-summary.csv ]; then
plot "set output '$R/exp4-fairness$sfx/exp4-freeriders.png';
set title 'Exp. 4, $swarm: 10 % free riders (median, 95 % CI)';
set ylabel 'free-rider time / host time'; set xrange [-0.5:2.5]; set yrange [0:*];
set xtics ('classic' 0, 'bittyrant' 1, 'propshare' 2);
f='$R/exp4-fairness$sfx/freeriders-summary.csv';
plot f every ::1 u 1:10:11:12 w yerrorbars pt 7 t 'slowdown'"
fi
}
# The simulator against real processes: every peer's two completion times
# and each run's two medians, with the 25 % tolerance around equality.
V=$R/validate
if [ -f $V/summary.csv ]; then
runs=$(ls $V/*/meta.json | wc -l)
binaries=$(sed -n 's/.*"binaries": "\(.*\)".*/\1/p' $V/*/meta.json | sort -u | tr -d "'" | tr '\n' ' ' | sed 's/ $//')
# Both axes to the same round maximum, so that equality is the diagonal.
top=$(awk -F, 'FNR > 1 { for (c = 3; c <= 4; c++) if ($c + 0 > m) m = $c + 0 } END { print int(m / 20 + 1) * 20 }' $V/*/peers.csv)
plot "set output '$V/validate.png';
set title 'bt-sim vs real bt-fetch (8 MiB, $runs runs, binaries $binaries)'; set key title 'large marks: 20 leechers';
set xlabel 'real completion time (s)'; set ylabel 'bt-sim completion time (s)';
set xrange [0:$top]; set yrange [0:$top]; set size ratio -1;
peers=system('ls $V/*/peers.csv'); f='$V/summary.csv';
plot for [i=1:words(peers)] word(peers,i) every ::1 u 4:3 pt 6 ps 0.5 lc rgb 'gray60' t (i==1?'one peer':''),
     f every ::1 u (strcol(2) eq 'classic' ? \$6 : 1/0):5:(\$3>10?2.5:1.5) pt 7 ps variable lc rgb '#009e73' t 'run median: classic',
     f every ::1 u (strcol(2) eq 'bittyrant' ? \$6 : 1/0):5:(\$3>10?2.5:1.5) pt 5 ps variable lc rgb '#56b4e9' t 'run median: bittyrant',
     f every ::1 u (strcol(2) eq 'propshare' ? \$6 : 1/0):5:(\$3>10?2.5:1.5) pt 9 ps variable lc rgb '#e69f00' t 'run median: propshare',
     x lc rgb 'black' t 'sim = real', 1.25*x dt 2 lc rgb 'black' t 'tolerance +-25 %', 0.75*x dt 2 lc rgb 'black' t ''"
fi
[ "$ONLY" = validate ] && { echo "plot written under $V/" >&2; exit 0; }

base_swarm "" "60 x 8 MiB"
base_swarm "-200x32M" "200 x 32 MiB"

# 5. Robustness: swarm size and seeder capacity.
if [ -f $R/exp5-robustness/summary.csv ]; then
plot "set output '$R/exp5-robustness/exp5-size.png';
set title 'Exp. 5: median download time against swarm size (4 MiB; 95 % CI)';
set ylabel 'download time (s)'; set xrange [-0.5:2.5]; set yrange [0:*];
set xtics ('50' 0, '200' 1, '1000' 2); set xlabel 'leechers (4 MiB)';
f='$R/exp5-robustness/summary.csv';
plot f every ::1 u (strcol(1) eq 'size' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==0?\$7:1/0):8:9 w yerrorbars pt 7 t 'classic',
     f every ::1 u (strcol(1) eq 'size' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==1?\$7:1/0):8:9 w yerrorbars pt 5 t 'bittyrant',
     f every ::1 u (strcol(1) eq 'size' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==2?\$7:1/0):8:9 w yerrorbars pt 9 t 'propshare'"
plot "set output '$R/exp5-robustness/exp5-seeder.png';
set title 'Exp. 5: median download time against seeder capacity (60 leechers, 8 MiB; 95 % CI)';
set ylabel 'download time (s)'; set xrange [-0.5:2.5]; set yrange [0:*];
set xtics ('256K' 0, '1M' 1, '4M' 2); set xlabel 'seeder upload (bytes/s)';
f='$R/exp5-robustness/summary.csv';
plot f every ::1 u (strcol(1) eq 'seeder' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==0?\$7:1/0):8:9 w yerrorbars pt 7 t 'classic',
     f every ::1 u (strcol(1) eq 'seeder' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==1?\$7:1/0):8:9 w yerrorbars pt 5 t 'bittyrant',
     f every ::1 u (strcol(1) eq 'seeder' ? \$2+(\$4-1)*0.1 : 1/0):(\$4==2?\$7:1/0):8:9 w yerrorbars pt 9 t 'propshare'"
fi
echo "plots written under $R/" >&2
