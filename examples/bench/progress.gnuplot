# Bytes on disk over time, every run as a thin line coloured by client.
# Variables: list (file of "client_no client path.tsv.gz" lines), dir (the
# results folder the paths are relative to), total (bytes), out, ttl and
# sub (the two title lines)
set terminal pngcairo size 1100,520 font ",10"
set output out
if (!exists("sub")) sub = ""
set title (ttl . "\n" . sub) noenhanced
set grid
set key outside right top noenhanced
set rmargin 18
set xlabel "seconds since the client started"
set ylabel "MB on disk (page cache; bt-fetch: blocks)"
set yrange [0:total / 1e6 * 1.05]
set linetype 1 lc rgb "#d62728"
set linetype 2 lc rgb "#1f77b4"
set linetype 3 lc rgb "#2ca02c"
set linetype 4 lc rgb "#9467bd"
set linetype 5 lc rgb "#ff7f0e"
set linetype 6 lc rgb "#555555"
n = int(system("wc -l < " . list))
num(i) = int(system(sprintf("sed -n %dp %s | cut -d' ' -f1", i, list)))
name(i) = system(sprintf("sed -n %dp %s | cut -d' ' -f2", i, list))
path(i) = system(sprintf("sed -n %dp %s | cut -d' ' -f3", i, list))
# a title only for the first run of each client
first(i) = (i == 1 || num(i) != num(i - 1)) ? name(i) : ""
plot for [i = 1:n] sprintf("< zcat %s/%s", dir, path(i)) using ($1 / 1000):($2 / 1e6) \
     with lines lw 1 lc num(i) title first(i)
