#!/bin/bash
# Runs validate.sh over strategies, seeds and swarm sizes, then gathers
# every run's result into docs/results/strategies/validate/summary.csv.
#
#   sudo examples/strategies/validate-all.sh [SEEDS] [SIZES]
#   (defaults: "1 2 3" and "10 20"; the 20-leecher swarm runs seed 1 only)
#   examples/strategies/validate-all.sh --summary   (only redo summary.csv)
# summary.csv: per run, the two medians and their relative difference
# (tolerance 25 %), the median per-peer |sim - real| / real, the rank
# correlation (Spearman) of the peers' finishing times, and for each side
# how much of its upload capacity a leecher used (median over leechers of
# uploaded / (capacity x its download time); leechers leave when done)
# and the seeder's share of all bytes the leechers received.
# BIN and BIN_COMMIT pass through to validate.sh; VALIDATE_DIR (default
# docs/results/strategies/validate) is where the runs and summary.csv go
# (validate-repeat, -repeat2, -repeat3, -repeat4 hold the same 12 runs again:
# bt-sim's half is identical, the real swarm's shows its run-to-run spread;
# validate-agreement.py compares bt-sim with the median of the sets).
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
    run = os.path.dirname(m)
    # The raw outputs: bt-sim's JSON lines and each real leecher's events.
    sim_peers, sim_seeder = [], None
    for line in open(os.path.join(run, "sim.json")):
        e = json.loads(line)
        if "peer" in e:
            sim_peers.append(e)
        elif "seeders_uploaded" in e:
            sim_seeder = e["seeders_uploaded"]
    capacity = {e["peer"]: e["upload_capacity"] for e in sim_peers}
    done = {}
    for f in glob.glob(os.path.join(run, "real-l*.jsonl")):
        peer = int(os.path.basename(f)[len("real-l"):-len(".jsonl")])
        for line in open(f):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "done" and e.get("status") == "ok":
                done[peer] = e
    sim_use = statistics.median(e["uploaded"] / (e["upload_capacity"] * e["download_seconds"])
                                for e in sim_peers if e["download_seconds"])
    real_use = statistics.median(e["uploaded"] / (capacity[p] * e["seconds"]) for p, e in done.items())
    sim_share = sim_seeder / sum(e["downloaded"] for e in sim_peers)
    # What the leechers received and did not send each other came from the seeder.
    received = sum(e["size"] + e.get("wasted", 0) for e in done.values())
    real_share = (received - sum(e["uploaded"] for e in done.values())) / received
    rows.append((os.path.basename(run), d["strategy"], r["leechers"], r["real_completed"],
                 r["sim_median_s"], r["real_median_s"], r["relative_difference"], r["agree"],
                 per_peer, spearman(sim, real), sim_use, real_use, sim_share, real_share))
summary = os.path.join(os.environ["VALIDATE_DIR"], "summary.csv")
with open(summary, "w") as f:
    f.write("run,strategy,leechers,real_completed,sim_median_s,real_median_s,relative_difference,agree,"
            "per_peer_abs_diff_median,spearman,sim_upload_use,real_upload_use,sim_seeder_share,real_seeder_share\n")
    for r in rows:
        f.write(",".join("" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x)) for x in r) + "\n")
print(open(summary).read())
PY
