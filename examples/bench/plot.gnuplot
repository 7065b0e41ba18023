# Plots for the bench scripts (gnuplot-nox). Called by lib.sh as
#   gnuplot -e "mode='times'; in='summary-S.tsv'; out='x.png'; ttl='...'" plot.gnuplot
#   gnuplot -e "mode='progress'; files='a.tsv b.tsv'; titles='c1 c2'; total=BYTES; out='x.png'; ttl='...'" plot.gnuplot
# summary-S.tsv: variant client median min max cpu rss goodput (tab separated)
# progress files: "milliseconds bytes" per line
set terminal pngcairo size 1000,520 font ",10"
set output out
set title ttl
set grid ytics
set key outside right top noenhanced
set rmargin 16

if (mode eq 'times') {
    set datafile separator "\t"
    set style fill solid 0.5 border -1
    set boxwidth 0.6
    set ylabel "seconds to complete (median; bars: min-max)"
    set yrange [0:*]
    set xtics rotate by -35 font ",9" noenhanced
    set bmargin 7
    plot in using 0:3:xtic(sprintf("%s %s", strcol(1), strcol(2))) with boxes lc rgb "#4477aa" notitle, \
         '' using 0:3:4:5 with yerrorbars lc rgb "black" pt 0 notitle, \
         '' using 0:3:(sprintf("%.1f", $3)) with labels offset 0,0.8 font ",8" notitle
} else {
    set xlabel "seconds since the client started"
    set ylabel "MB written (file data in the page cache; bt-fetch: blocks on disk)"
    set yrange [0:total / 1e6 * 1.05]
    plot for [i = 1:words(files)] word(files, i) using ($1 / 1000):($2 / 1e6) with lines lw 2 title word(titles, i)
}
