#!/usr/bin/env bash
# Redraws the tables and plots of a results folder from its runs.csv:
#   examples/bench/replot.sh docs/results/<experiment>   (or target/bench/<run>)
# Tables: medians with min-max (summarize, as at the end of a run) and
# medians with 95 % bootstrap intervals (stats.py); plots: examples/plots.sh.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=$(cd "${1:?usage: replot.sh RESULTS_DIR}" && pwd)
CSV=$OUT/runs.csv
[[ -f $CSV ]] || die "no $CSV"
for s in $(cut -d, -f1 "$CSV" | sed 1d | sort -u); do
    echo
    echo "## $s"
    echo
    summarize "$s"
    echo
    "$PY" "$BENCH_LIB/stats.py" table "$CSV" --scenario "$s" --by variant,piece,seeder,client
done
"$ROOT/examples/plots.sh" --results "$OUT"
