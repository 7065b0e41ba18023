#!/usr/bin/env python3
"""bt-sim against real bt-fetch swarms, both run several times.

    examples/strategies/validate-agreement.py [--bt-sim BIN] [--runs K] DIR [DIR ...]

Each DIR is one set of validate-all.sh runs (its summary.csv and each
configuration's real-l*.jsonl), all of the same configurations on the
same binaries: one real run per configuration and set. A real swarm's
median completion time moves by a median 30 % from one run to the next
(up to 71 %), so one run on either side is a noisy yardstick. This
compares the two as distributions:

- the real side: the median over the sets of each set's median;
- the bt-sim side: the same swarm (the peers, capacities and strategies
  that validate.sh's --seed drew) run K times (default 20), the first
  with the swarm's own seed and the others with --x-net-seed 1001, 1002,
  ...: other latencies and other random choices in the sessions, as
  another real run has other timings. Its measure is the median of the K
  runs' medians.

Both sides are judged against the tolerance of validate.sh (25 %). Each
swarm is simulated under two models:

- default: bt-sim as the experiments run it (100 ms steps, peers 5-50 ms
  apart);
- matched: the test rig's conditions, 10 ms steps and peers 0-1 ms apart
  (`--x-step 10 --x-latency 0-1`): the namespaces add no latency of
  their own.

For each, an exact two-sided rank-sum (Mann-Whitney) test of the K
simulated medians against the real ones says whether the two could come
from one distribution; and what the leechers uploaded
over what they downloaded (the rest came from the seeder) is compared, median against median.

The single bt-sim run of each set (summary.csv) is kept for comparison.
Writes agreement.csv and agreement.json (the totals) into the first DIR;
BT_SIM_COMMIT names the commit of the bt-sim binary there.
"""
import argparse
import csv
import glob
import itertools
import json
import os
import shlex
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor

TOLERANCE = 0.25
MODELS = {"default": [], "matched": ["--x-step", "10", "--x-latency", "0-1"]}
FIRST_NET_SEED = 1001


def sim_run(binary, args):
    """One bt-sim run: its median completion time, and what the leechers
    uploaded over what they downloaded (the rest came from the seeder)."""
    out = subprocess.run([binary] + args + ["-q"], capture_output=True, text=True, check=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    peers = [l for l in lines if "peer" in l]
    times = [p["download_seconds"] for p in peers if p["download_seconds"] is not None]
    up = sum(p["uploaded"] for p in peers)
    got = sum(p["downloaded"] for p in peers)
    return statistics.median(times), min(1.0, up / got)


def real_leecher_share(run_dir):
    """The same share for a real run, from the leechers' `done` lines."""
    up = got = 0
    for path in glob.glob(os.path.join(run_dir, "real-l*.jsonl")):
        for l in open(path):
            try:
                d = json.loads(l)
            except ValueError:
                continue
            if d.get("event") == "done" and d.get("status") == "ok":
                up += d["uploaded"]
                got += d["size"]
    return None if got == 0 else min(1.0, up / got)


def rank_sum_p(xs, ys):
    """Exact two-sided Mann-Whitney p-value (ties counted as halves): the
    share of the ways to split the pooled values into groups of these
    sizes whose U is at least as far from its mean as the observed one."""
    pooled = list(xs) + list(ys)
    n, m = len(xs), len(ys)

    def u_of(idx):
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(n + m) if i not in idx]
        return sum((x > y) + 0.5 * (x == y) for x in a for y in b)

    mean = n * m / 2
    seen = abs(u_of(set(range(n))) - mean)
    splits = [abs(u_of(set(c)) - mean) for c in itertools.combinations(range(n + m), n)]
    return sum(d >= seen - 1e-9 for d in splits) / len(splits)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bt-sim", default="target/release/bt-sim", help="the bt-sim binary")
    ap.add_argument("--runs", type=int, default=20, help="bt-sim runs per swarm and model")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    runs = {}
    for d in a.dirs:
        for r in csv.DictReader(open(os.path.join(d, "summary.csv"))):
            e = runs.setdefault(r["run"], {"strategy": r["strategy"], "leechers": int(r["leechers"]),
                                           "single": float(r["sim_median_s"]), "real": [], "share": []})
            if abs(e["single"] - float(r["sim_median_s"])) > 1e-9:
                raise SystemExit(f"{d}: {r['run']}: bt-sim's median differs between sets")
            e["real"].append(float(r["real_median_s"]))
            share = real_leecher_share(os.path.join(d, r["run"]))
            if share is not None:
                e["share"].append(share)
    jobs = []
    for run in sorted(runs):
        meta = json.load(open(os.path.join(a.dirs[0], run, "meta.json")))
        base = shlex.split(meta["bt_sim_args"])
        own = base[base.index("--seed") + 1]
        for model, extra in MODELS.items():
            for k in range(a.runs):
                net_seed = own if k == 0 else str(FIRST_NET_SEED + k - 1)
                jobs.append((run, model, base + extra + ["--x-net-seed", net_seed]))
    with ThreadPoolExecutor(os.cpu_count() or 1) as ex:
        results = list(ex.map(lambda j: sim_run(a.bt_sim, j[2]), jobs))
    sims = {}
    for (run, model, _), res in zip(jobs, results):
        sims.setdefault((run, model), []).append(res)
    rows = []
    for run, e in sorted(runs.items()):
        real = statistics.median(e["real"])
        row = {
            "run": run, "strategy": e["strategy"], "leechers": e["leechers"],
            "real_runs": len(e["real"]),
            "real_medians_s": " ".join(f"{x:.2f}" for x in e["real"]),
            "real_median_of_runs_s": round(real, 3),
            "real_spread": round((max(e["real"]) - min(e["real"])) / real, 4),
            "real_leecher_share": round(statistics.median(e["share"]), 4),
            "single_sim_median_s": e["single"],
            "single_relative_difference": round((e["single"] - real) / real, 4),
        }
        for model in MODELS:
            medians = [m for m, _ in sims[(run, model)]]
            shares = [s for _, s in sims[(run, model)]]
            sim = statistics.median(medians)
            diff = (sim - real) / real
            row.update({
                f"{model}_sim_runs": len(medians),
                f"{model}_sim_median_of_runs_s": round(sim, 3),
                f"{model}_sim_spread": round((max(medians) - min(medians)) / sim, 4),
                f"{model}_relative_difference": round(diff, 4),
                f"{model}_agree": abs(diff) <= TOLERANCE,
                f"{model}_rank_sum_p": round(rank_sum_p(medians, e["real"]), 4),
                f"{model}_sim_leecher_share": round(statistics.median(shares), 4),
            })
        rows.append(row)
    out = os.path.join(a.dirs[0], "agreement.csv")
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    single = [r["single_relative_difference"] for r in rows]
    totals = {
        "sets": a.dirs, "tolerance": TOLERANCE, "configurations": len(rows),
        "bt_sim_commit": os.environ.get("BT_SIM_COMMIT", "unknown"),
        "sim_runs_per_configuration": a.runs,
        "median_real_spread": statistics.median(r["real_spread"] for r in rows),
        "single": {
            "agree": sum(abs(x) <= TOLERANCE for x in single),
            "median_signed_difference": statistics.median(single),
            "median_abs_difference": statistics.median(abs(x) for x in single),
            "max_abs_difference": max(abs(x) for x in single),
        },
    }
    for model, extra in MODELS.items():
        diffs = [r[f"{model}_relative_difference"] for r in rows]
        totals[model] = {
            "flags": " ".join(extra),
            "agree": sum(r[f"{model}_agree"] for r in rows),
            "median_signed_difference": statistics.median(diffs),
            "median_abs_difference": statistics.median(abs(x) for x in diffs),
            "max_abs_difference": max(abs(x) for x in diffs),
            "median_sim_spread": statistics.median(r[f"{model}_sim_spread"] for r in rows),
            "rank_sum_p_below_0.05": sum(r[f"{model}_rank_sum_p"] < 0.05 for r in rows),
            "leecher_share_lower_than_real": sum(
                r[f"{model}_sim_leecher_share"] < r["real_leecher_share"] for r in rows),
            "median_leecher_share_difference": statistics.median(
                r[f"{model}_sim_leecher_share"] - r["real_leecher_share"] for r in rows),
        }
    with open(os.path.join(a.dirs[0], "agreement.json"), "w") as f:
        json.dump(totals, f, indent=2)
        f.write("\n")
    print(open(out).read())
    print(json.dumps(totals, indent=2))


if __name__ == "__main__":
    main()
