#!/usr/bin/env python3
"""A small sweep of the seed split's pause threshold (the fraction of the
seed's rate below which the leechers' passing on counts as starving us;
0.25 in the code, `session::split::SPLIT_MIN_PASSED_ON`), in bt-sim with
bt's peer ids (the split on, as between bt-fetch processes).

    examples/strategies/split-sweep.py [--bt-sim PATH] [--seeds K] [--jobs J]

Three swarms, each the case one side of the trade-off cares about:
  slow-leechers: 5 leechers of 2-8 KB/s behind a 1 MB/s seed, 4 MiB (the
                 split starved them before the pause existed): median time;
  slow-seed:     20 leechers of 200-400 KB/s behind a 128 KB/s seed, 8 MiB
                 (what the split is for): median time and copies the seed sent;
  base:          experiments 2-4's swarm (60 leechers, BitTyrant capacity
                 CDF, 1 MB/s seed, 8 MiB): median time.
Threshold 0 never pauses (the split as it was before the fix).
Writes docs/results/strategies/split-threshold/{runs.csv,summary.csv,meta.json}.
"""
import argparse, json, os, platform, random, statistics, subprocess, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "docs", "results", "strategies", "split-threshold")
CDF = os.path.join("examples", "strategies", "bittyrant-capacity.txt")
SWARMS = {
    "slow-leechers": ["--peers", "5", "--size", "4M", "--capacity-dist", "uniform:2K-8K",
                      "--seeder-capacity", "1M"],
    "slow-seed": ["--peers", "20", "--size", "8M", "--capacity-dist", "uniform:200K-400K",
                  "--seeder-capacity", "128K"],
    "base": ["--peers", "60", "--size", "8M", "--capacity-dist", CDF, "--seeder-capacity", "1M"],
}
SIZES = {"slow-leechers": 4 << 20, "slow-seed": 8 << 20, "base": 8 << 20}
THRESHOLDS = [0.0, 0.1, 0.25, 0.5, 1.0]


def ci(xs, n=2000):
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return statistics.median(xs), meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bt-sim", default=os.path.join(ROOT, "target", "release", "bt-sim"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    runs = [(sw, x, s, [a.bt_sim, *args, "--bt-peer-ids", "--x-split-threshold", str(x),
                         "--seed", str(s), "--json", "-q"])
            for sw, args in SWARMS.items() for x in THRESHOLDS for s in range(1, a.seeds + 1)]
    started = time.time()

    def one(r):
        out = subprocess.run(r[3], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])

    with ThreadPoolExecutor(a.jobs) as ex:
        res = list(ex.map(one, runs))
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for (sw, x, s, _), r in zip(runs, res):
        v = r["summary"]["classic"]
        rows.append((sw, x, s, v["median_download_seconds"], v["completed"],
                     r["seeders_uploaded"] / SIZES[sw]))
    with open(os.path.join(OUT, "runs.csv"), "w") as f:
        f.write("swarm,threshold,seed,median_s,completed,seed_copies\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    with open(os.path.join(OUT, "summary.csv"), "w") as f:
        f.write("swarm,threshold,runs,median_s,ci_lo,ci_hi,seed_copies_median\n")
        for sw in SWARMS:
            for x in THRESHOLDS:
                sel = [r for r in rows if r[0] == sw and r[1] == x]
                m, lo, hi = ci([r[3] for r in sel])
                copies = statistics.median(r[5] for r in sel)
                f.write(f"{sw},{x},{len(sel)},{m:.2f},{lo:.2f},{hi:.2f},{copies:.3f}\n")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    meta = {"commit": commit, "bt_sim_commit": os.environ.get("BT_SIM_COMMIT", commit),
            "command": "examples/strategies/split-sweep.py --seeds %d" % a.seeds,
            "swarms": SWARMS, "thresholds": THRESHOLDS,
            "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                        "load_average": os.getloadavg()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_seconds": round(time.time() - started, 1)}
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(open(os.path.join(OUT, "summary.csv")).read())


if __name__ == "__main__":
    main()
