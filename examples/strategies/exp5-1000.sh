#!/bin/bash
# Experiment 5's 1000-leecher cells (all-classic, all-BitTyrant and
# all-PropShare swarms, 4 MiB, one 1 MB/s seeder), one run at a time,
# resumable: a run whose JSON is already in the folder is not run again
# (a long series survives a deadline). Each run is kept (STRATEGY-SEED.json)
# with its cost (runs.csv, from /usr/bin/time); then summary.csv (medians
# of the per-run medians, 95 % bootstrap intervals) and the size-1000 rows
# of ../summary.csv are rewritten.
#
#   examples/strategies/exp5-1000.sh [BT_SIM] [SEEDS]    (defaults: target/release/bt-sim, 10)
# STRATEGIES (environment) restricts the runs, e.g. to run the three
# strategies side by side as three processes. CDF (environment) is the
# capacity distribution, by default the BitTyrant paper's Figure 1 as in
# run.py (examples/strategies/bittyrant-capacity.txt reruns older results).
set -eu
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/bt-sim}
SEEDS=${2:-10}
CDF=${CDF:-examples/strategies/bittyrant-fig1.txt}
OUT=docs/results/strategies/exp5-robustness/size-1000
mkdir -p "$OUT"
[ -f "$OUT/runs.csv" ] || echo "strategy,seed,median_download_s,completed,last_finish_s,wall_s,user_s,sys_s,max_rss_kb" > "$OUT/runs.csv"
for seed in $(seq 1 "$SEEDS"); do
  for st in ${STRATEGIES:-classic bittyrant propshare}; do
    json=$OUT/$st-$seed.json
    [ -s "$json" ] && continue
    t=$(mktemp)
    /usr/bin/time -f "%e %U %S %M" -o "$t" "$BIN" --peers 1000 --seeders 1 --size 4M --piece-length 256K \
      --strategy-mix "$st=1" --capacity-dist "$CDF" --arrival flash \
      --seeder-capacity 1M --seed "$seed" --json -q > "$json.part"
    mv "$json.part" "$json"
    python3 - "$json" "$st" "$seed" "$(cat "$t")" >> "$OUT/runs.csv" <<'PY'
import json, sys
path, st, seed, cost = sys.argv[1:]
last = json.loads(open(path).read().splitlines()[-1])
v = last["summary"][st]
wall, user, sys_, rss = cost.split()
print(f"{st},{seed},{v['median_download_seconds']},{v['completed']},{last['simulated_seconds']},{wall},{user},{sys_},{rss}")
PY
    rm -f "$t"
  done
done
python3 - "$OUT" "$BIN" "$SEEDS" "$CDF" <<'PY'
import csv, json, os, platform, random, statistics, subprocess, sys, time
out, binary, seeds, cdf = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump({"commit": commit, "bt_sim_commit": os.environ.get("BT_SIM_COMMIT", commit),
               "script": f"examples/strategies/exp5-1000.sh {binary} {seeds}",
               "command": f"{binary} --peers 1000 --seeders 1 --size 4M --piece-length 256K "
                          f"--strategy-mix STRATEGY=1 --capacity-dist {cdf} --arrival flash "
                          "--seeder-capacity 1M --seed SEED --json -q",
               "capacity_dist": cdf,
               "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                           "load_average": os.getloadavg()},
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "cost": "per run in runs.csv (wall_s, user_s, sys_s, max_rss_kb)"}, f, indent=2)
    f.write("\n")
def ci(xs, n=2000):
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return statistics.median(xs), meds[int(0.025 * n)], meds[int(0.975 * n) - 1]
rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
strats = ["classic", "bittyrant", "propshare"]
summ = []
for si, st in enumerate(strats):
    xs = [float(r["median_download_s"]) for r in rows if r["strategy"] == st]
    if xs:
        m, lo, hi = ci(xs)
        summ.append(["size", 2, 1000, si, st, len(xs), f"{m:.2f}", f"{lo:.2f}", f"{hi:.2f}"])
with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["vary", "value_index", "value", "strategy_index", "strategy", "runs", "median_s", "ci_lo", "ci_hi"])
    w.writerows(summ)
# The size-1000 rows of the experiment's summary, in place.
main = os.path.join(out, "..", "summary.csv")
keep = [r for r in csv.reader(open(main)) if not (r[0] == "size" and r[2] == "1000")]
at = max(i for i, r in enumerate(keep) if r[0] == "size") + 1
with open(main, "w", newline="") as f:
    csv.writer(f).writerows(keep[:at] + summ + keep[at:])
for r in summ:
    print(",".join(map(str, r)))
PY
