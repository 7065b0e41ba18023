#!/usr/bin/env bash
# Redraws the tables and plots of a results folder from its runs.csv:
#   examples/bench/replot.sh target/bench/<run>
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=$(cd "${1:?usage: replot.sh RESULTS_DIR}" && pwd)
CSV=$OUT/runs.csv
[[ -f $CSV ]] || die "no $CSV"
mkdir -p "$OUT/plots"
# the file size: the largest byte count in any trace
DATA_BYTES=$(cat "$OUT"/progress/*.tsv 2>/dev/null | awk '$2 > m { m = $2 } END { print m + 0 }')
for s in $(cut -d, -f1 "$CSV" | sed 1d | sort -u); do
    echo
    echo "## $s"
    echo
    summarize "$s"
    plots "$s"
done
