#!/bin/bash
# Runs validate.sh over strategies, seeds and swarm sizes, then gathers
# every run's result into docs/results/strategies/validate/summary.csv.
#
#   sudo examples/strategies/validate-all.sh [SEEDS] [SIZES]
#   (defaults: "1 2 3" and "10 20"; the 20-leecher swarm runs seed 1 only)
#   examples/strategies/validate-all.sh --summary   (only redo summary.csv)
# summary.csv: per run, the two medians and their relative difference
# (tolerance 25 %), the median per-peer |sim - real| / real, and the rank
# correlation (Spearman) of the peers' finishing times.
# BIN and BIN_COMMIT pass through to validate.sh; VALIDATE_DIR (default
# docs/results/strategies/validate) is where the runs and summary.csv go.
set -euo pipefail
SEEDS=${1:-1 2 3}
[ "$SEEDS" = --summary ] && SEEDS=1
SIZES=${2:-10 20}
cd "$(dirname "$0")/../.."
export VALIDATE_DIR=${VALIDATE_DIR:-docs/results/strategies/validate}
[ "${1:-}" = --summary ] && SIZES=""
for n in $SIZES; do
  for seed in $SEEDS; do
    [ "$n" -gt 10 ] && [ "$seed" != "$(echo $SEEDS | cut -d' ' -f1)" ] && continue
    for strategy in classic bittyrant propshare; do
      echo "validate: $strategy, $n leechers, seed $seed" >&2
      OUT="$VALIDATE_DIR/$strategy-n$n-seed$seed" examples/strategies/validate.sh "$n" 8M "$seed" "$strategy" >&2 || echo "validate: run failed" >&2
    done
  done
done
python3 - <<'PY'
import csv, glob, json, os, statistics
def ranks(xs):
    r = [0] * len(xs)
    for k, i in enumerate(sorted(range(len(xs)), key=lambda i: xs[i])):
        r[i] = k
    return r
def spearman(a, b):
    n = len(a)
    d = sum((x - y) ** 2 for x, y in zip(ranks(a), ranks(b)))
    return 1 - 6 * d / (n * (n * n - 1))
rows = []
for m in sorted(glob.glob(os.path.join(os.environ["VALIDATE_DIR"], "*", "meta.json"))):
    d = json.load(open(m)); r = d["result"]
    peers = [p for p in csv.DictReader(open(os.path.join(os.path.dirname(m), "peers.csv")))
             if p["sim_seconds"] and p["real_seconds"]]
    sim = [float(p["sim_seconds"]) for p in peers]; real = [float(p["real_seconds"]) for p in peers]
    per_peer = statistics.median(abs(a - b) / b for a, b in zip(sim, real))
    rows.append((os.path.basename(os.path.dirname(m)), d["strategy"], r["leechers"], r["real_completed"],
                 r["sim_median_s"], r["real_median_s"], r["relative_difference"], r["agree"],
                 per_peer, spearman(sim, real)))
summary = os.path.join(os.environ["VALIDATE_DIR"], "summary.csv")
with open(summary, "w") as f:
    f.write("run,strategy,leechers,real_completed,sim_median_s,real_median_s,relative_difference,agree,"
            "per_peer_abs_diff_median,spearman\n")
    for r in rows:
        f.write(",".join("" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x)) for x in r) + "\n")
print(open(summary).read())
PY
