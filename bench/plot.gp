# bench/plot.gp: results.png from report.py's data; called by bench/run.sh as
#   gnuplot -e "datafile='...'; outfile='...'" bench/plot.gp
# Bars are relative to raw libiscsi measured in the same run (1.0 = raw),
# so the plot shows ratios, the only numbers that carry between machines.
set terminal pngcairo size 1100,520 font ",10" noenhanced
set output outfile
set title "FUSE exports relative to raw libiscsi, same tgtd LUN, same run, the machine as found (higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing "?"
set key below
set ylabel "x raw libiscsi (latency: raw / latency)"
# The FUSE floor (no backend) is several times raw: the axis stops at 4 so
# the others stay readable, and the floor's bars carry their value.
set yrange [0:4]
set grid ytics
set xtics rotate by -20 scale 0
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "black"
# Five bars a cluster, each 1/6 wide: the floor's, the last, is 1/3 right
# of the cluster's centre.  Column 6, next to iserfs's bar, is iserfs and
# raw libiscsi again with tgtd on a core of its own (only the workloads run
# that way).
# The bars' titles are the data file's first line (they name the libiscsi
# each column loaded); every plot below skips that line as a header.
set key autotitle columnheader
plot datafile using 2:xtic(1) title columnheader(2) lc rgb "#1f77b4", \
     '' using 6 title columnheader(6) lc rgb "#aec7e8", \
     '' using 3 title columnheader(3) lc rgb "#ff7f0e", \
     '' using 4 title columnheader(4) lc rgb "#2ca02c", \
     '' using 5 title columnheader(5) lc rgb "#7f7f7f", \
     '' using ($0 + 1.0/3):($5 > 3.75 ? 3.8 : $5 + 0.12):(sprintf("%.1fx", $5)) \
        with labels font ",9" notitle
