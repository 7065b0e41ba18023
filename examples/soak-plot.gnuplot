# The seeder's RSS, live heap and open file descriptors over a soak run
# (examples/soak.sh). gnuplot -e "csv='samples.csv'; png='soak.png'" soak-plot.gnuplot
set datafile separator ","
set terminal pngcairo size 900,450 font ",10"
set output png
set title "bt-fetch seeder under churn: memory and descriptors"
set xlabel "time (min)"
set ylabel "memory (MiB)"
set y2label "open fds / live leechers"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key top left
set grid
plot csv every ::1 using ($1/60):($2/1024) with lines lw 2 title "RSS (MiB)", \
     csv every ::1 using ($1/60):($6/1024) with lines lw 2 title "live heap (MiB)", \
     csv every ::1 using ($1/60):3 axes x1y2 with lines lw 1 title "open fds", \
     csv every ::1 using ($1/60):5 axes x1y2 with steps lw 1 dt 2 title "live leechers"
