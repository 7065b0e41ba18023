# Small multiples: one panel per client, every run's download rate over
# time as a thin line (from stats.py rates), with the link's payload
# ceiling dashed. Runs of one client are near-identical on a rate-limited
# link, so one panel each keeps the clients apart instead of five
# overlapping lines.
# Variables: prefix (stats.py rates OUT_PREFIX), list (its output: lines of
# "client_no client runs last_second"), out, ttl, sub (title lines), ceiling (Mbit/s:
# the payload ceiling of the link), [ymax]
n = int(system("wc -l < " . list))
num(i) = int(system(sprintf("sed -n %dp %s | cut -d' ' -f1", i, list)))
name(i) = system(sprintf("sed -n %dp %s | cut -d' ' -f2", i, list))
runs(i) = system(sprintf("sed -n %dp %s | cut -d' ' -f3", i, list))
if (!exists("ymax")) ymax = ceiling * 1.15
# one time axis for every panel: the longest trace
xmax = real(system("awk '$4 > m { m = $4 } END { print m + 0 }' " . list))
set terminal pngcairo size 1100, (140 + 150 * n) font ",10"
set output out
set linetype 1 lc rgb "#d62728"
set linetype 2 lc rgb "#1f77b4"
set linetype 3 lc rgb "#2ca02c"
set linetype 4 lc rgb "#9467bd"
set linetype 5 lc rgb "#ff7f0e"
set linetype 6 lc rgb "#555555"
set multiplot layout n, 1 title (ttl . "\n" . sub) noenhanced font ",10"
set grid
set key off
set lmargin 10
set rmargin 3
set yrange [0:ymax]
set xrange [0:xmax]
set ytics 25
set datafile separator "\t"
do for [i = 1:n] {
    set tmargin 1
    set bmargin (i == n ? 3 : 0.5)
    if (i == n) { set xlabel "seconds since the client started"; set format x "%g" } else { unset xlabel; set format x "" }
    set ylabel "Mbit/s"
    set label 1 sprintf("%s (%s runs)", name(i), runs(i)) at graph 0.01, graph 0.12 left font ",10" noenhanced
    set arrow 1 from graph 0, first ceiling to graph 1, first ceiling nohead dt 2 lc rgb "#444444"
    plot sprintf("%s.%s.tsv", prefix, name(i)) using 1:2 with lines lw 1 lc num(i)
    unset label 1
    unset arrow 1
}
unset multiplot
