# Every run as a point, per group (cell x client), with the median as a
# short bar: wall time (log scale), CPU and peak RSS in stacked panels.
# Files from stats.py points:
#   grp: x label client_no median_wall median_cpu median_rss n median_goodput
#   pts: x wall cpu rss_mib anon_mib client_no rep goodput
# Variables: grp, pts, out, ttl (first title line), sub (second line: the
# conditions), [panels = 3 | 2 (no RSS) | 1 (wall only)],
# [metric = "wall" (default, log scale) | "goodput" (% of the link, linear)],
# [walllinear = 1: the wall panel on a linear scale],
# [hline1, hlabel1, hline2, hlabel2: dashed horizontal lines on the first
# panel, e.g. a bound or the payload ceiling]
if (!exists("panels")) panels = 3
if (!exists("metric")) metric = "wall"
goodput = (metric eq "goodput")
if (!exists("walllinear")) walllinear = 0
if (!exists("walllabel")) walllabel = goodput ? "goodput, % of the link" : (walllinear ? "wall s to 100 %" : "wall s to 100 % (log)")
pc = goodput ? 8 : 2
gc = goodput ? 8 : 4
set terminal pngcairo size 1100, (panels == 1 ? 480 : (panels == 2 ? 760 : 1000)) font ",10"
set output out
set datafile separator "\t"
set datafile missing "nan"
set grid ytics mytics
set key off
# client colours: bt-fetch, libtorrent, qbittorrent, aria2, transmission, other
set linetype 1 lc rgb "#d62728" pt 7 ps 0.8
set linetype 2 lc rgb "#1f77b4" pt 5 ps 0.7
set linetype 3 lc rgb "#2ca02c" pt 9 ps 0.8
set linetype 4 lc rgb "#9467bd" pt 11 ps 0.8
set linetype 5 lc rgb "#ff7f0e" pt 13 ps 0.8
set linetype 6 lc rgb "#555555" pt 6 ps 0.8
stats grp using 1 nooutput
nx = STATS_max + 1
set xrange [-0.6 : nx - 0.4]
if (!exists("sub")) sub = ""
set multiplot layout panels, 1 title (ttl . "\n" . sub) noenhanced font ",10"
set lmargin 12
set rmargin 7
if (goodput || walllinear) {
    set mytics 2
} else {
    set logscale y
    set mytics 10
}
set ylabel walllabel
if (exists("hline1")) {
    set arrow 1 from graph 0, first hline1 to graph 1, first hline1 nohead dt 2 lw 1.5 lc rgb "#444444"
    # the first label right and under its line, the second left and above,
    # so that two close lines (a bound and the ceiling bound) stay legible
    if (exists("hlabel1")) { set label 1 hlabel1 at graph 0.99, first hline1 right offset 0, -0.8 font ",9" noenhanced }
}
if (exists("hline2")) {
    set arrow 2 from graph 0, first hline2 to graph 1, first hline2 nohead dt 3 lw 1.5 lc rgb "#444444"
    if (exists("hlabel2")) { set label 2 hlabel2 at graph 0.01, first hline2 offset 0, 0.6 font ",9" noenhanced }
}
if (panels == 1) {
    set xtics rotate by -35 font ",9" noenhanced scale 0
    set bmargin 8
    plot grp using ($1 - 0.3):gc:(0.6):(0) with vectors nohead lw 2 lc rgb "black", \
         pts using 1:pc:6 with points lc variable, \
         grp using 1:gc:xtic(2) with points ps 0
} else {
    set xtics format "" scale 0
    set bmargin 1
    plot grp using ($1 - 0.3):gc:(0.6):(0) with vectors nohead lw 2 lc rgb "black", \
         pts using 1:pc:6 with points lc variable
}
unset arrow
unset label
if (panels >= 2) {
    unset logscale y
    set yrange [0:*]
    set ylabel "CPU s (user + sys)"
    if (panels == 2) {
        set xtics rotate by -35 font ",9" noenhanced scale 0 format "% h"
        set bmargin 8
        plot grp using ($1 - 0.3):5:(0.6):(0) with vectors nohead lw 2 lc rgb "black", \
             pts using 1:3:6 with points lc variable, \
             grp using 1:5:xtic(2) with points ps 0
    } else {
        plot grp using ($1 - 0.3):5:(0.6):(0) with vectors nohead lw 2 lc rgb "black", \
             pts using 1:3:6 with points lc variable
    }
}
if (panels >= 3) {
    set logscale y
    set yrange [*:*]
    set ylabel "peak RSS MiB (log; x = anon)"
    set xtics rotate by -35 font ",9" noenhanced scale 0 format "% h"
    set bmargin 8
    plot grp using ($1 - 0.3):6:(0.6):(0) with vectors nohead lw 2 lc rgb "black", \
         pts using 1:4:6 with points lc variable, \
         pts using 1:5:6 with points lc variable pt 2, \
         grp using 1:6:xtic(2) with points ps 0
}
unset multiplot
