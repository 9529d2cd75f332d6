#!/usr/bin/env bash
# Draws bench-results/<scenario>.png from the .tsv files ferry-load writes. Needs gnuplot.
# Usage: tests/bench/plot.sh <results-dir>
set -euo pipefail
results="$1"

if [ -f "$results/idle.tsv" ]; then
    gnuplot <<GNUPLOT
set terminal png size 900,500
set output "$results/idle.png"
set title "Idle capacity: memory per connection and one active round trip"
set logscale x
set xlabel "connections held"
set ylabel "server bytes per connection"
set y2label "round trip (ms)"
set ytics nomirror
set y2tics
set key top left
plot "$results/idle.tsv" using 1:2 with linespoints title "RSS / connection (bytes)", \
     "" using 1:3 axes x1y2 with linespoints title "send->ack p50", \
     "" using 1:4 axes x1y2 with linespoints title "send->ack p99", \
     "" using 1:6 axes x1y2 with linespoints title "send->deliver p99"
GNUPLOT
fi

for name in direct echo group; do
    [ -f "$results/$name.tsv" ] || continue
    gnuplot <<GNUPLOT
set terminal png size 900,500
set output "$results/$name.png"
set title "$name: achieved rate and latency by offered rate"
set logscale x
set logscale y2
set xlabel "offered messages/s"
set ylabel "per second"
set y2label "latency (ms)"
set ytics nomirror
set y2tics
set key top left
plot "< grep -v '^#' $results/$name.tsv | grep '^step'" using 2:3 with linespoints title "acked/s", \
     "" using 2:4 with linespoints title "delivered/s", \
     "" using 2:7 axes x1y2 with linespoints title "deliver p50 (ms)", \
     "" using 2:8 axes x1y2 with linespoints title "deliver p99 (ms)"
GNUPLOT
done
