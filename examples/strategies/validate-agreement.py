#!/usr/bin/env python3
"""bt-sim against real bt-fetch swarms, over repeated real runs.

    examples/strategies/validate-agreement.py [--bt-sim BIN] DIR [DIR ...]

Each DIR is one set of validate-all.sh runs (its summary.csv), all of the
same configurations on the same binaries. One real run of a 10-leecher
swarm moves by a median 14 % (up to 59 %) from the next, so a single real
run is a noisy yardstick; this compares bt-sim's median completion time
(the same in every set: bt-sim is deterministic, which is checked) with
the median over the sets of the real medians, against the tolerance of
validate.sh (25 %), and says whether bt-sim's median lies within the
range the real runs span.

With --bt-sim, each configuration is also simulated with 10 ms steps and
peers 0-1 ms away (`--x-step 10 --x-latency 0-1`), closer to the network
namespaces, which add no latency of their own: how much of the gap is the
model's 100 ms resolution and its 5-50 ms distances.

Writes agreement.csv and agreement.json (the totals) into the first DIR;
BT_SIM_COMMIT names the commit of --bt-sim there.
"""
import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess

TOLERANCE = 0.25
FINE = ["--x-step", "10", "--x-latency", "0-1"]


def sim_median(binary, args):
    out = subprocess.run([binary] + args + ["-q"], capture_output=True, text=True, check=True).stdout
    times = [json.loads(l)["download_seconds"] for l in out.splitlines()
             if l.startswith("{") and "summary" not in l]
    return statistics.median(t for t in times if t is not None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bt-sim", help="bt-sim binary for the fine-step variant")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    runs = {}
    for d in a.dirs:
        for r in csv.DictReader(open(os.path.join(d, "summary.csv"))):
            e = runs.setdefault(r["run"], {"strategy": r["strategy"], "leechers": int(r["leechers"]),
                                           "sim": float(r["sim_median_s"]), "real": []})
            if abs(e["sim"] - float(r["sim_median_s"])) > 1e-9:
                raise SystemExit(f"{d}: {r['run']}: bt-sim's median differs between sets")
            e["real"].append(float(r["real_median_s"]))
    rows = []
    for run, e in sorted(runs.items()):
        real = statistics.median(e["real"])
        diff = (e["sim"] - real) / real
        row = {
            "run": run, "strategy": e["strategy"], "leechers": e["leechers"],
            "real_runs": len(e["real"]),
            "real_medians_s": " ".join(f"{x:.2f}" for x in e["real"]),
            "real_median_of_runs_s": round(real, 3),
            "real_spread": round((max(e["real"]) - min(e["real"])) / real, 4),
            "sim_median_s": e["sim"],
            "relative_difference": round(diff, 4),
            "agree": abs(diff) <= TOLERANCE,
            "sim_within_real_range": min(e["real"]) <= e["sim"] <= max(e["real"]),
        }
        if a.bt_sim:
            meta = json.load(open(os.path.join(a.dirs[0], run, "meta.json")))
            fine = sim_median(a.bt_sim, shlex.split(meta["bt_sim_args"]) + FINE)
            row["fine_sim_median_s"] = round(fine, 3)
            row["fine_relative_difference"] = round((fine - real) / real, 4)
        rows.append(row)
    out = os.path.join(a.dirs[0], "agreement.csv")
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    diffs = [r["relative_difference"] for r in rows]
    totals = {
        "sets": a.dirs, "tolerance": TOLERANCE, "runs": len(rows),
        "agree": sum(r["agree"] for r in rows),
        "sim_within_real_range": sum(r["sim_within_real_range"] for r in rows),
        "median_signed_difference": statistics.median(diffs),
        "median_abs_difference": statistics.median(abs(x) for x in diffs),
        "max_abs_difference": max(abs(x) for x in diffs),
        "median_real_spread": statistics.median(r["real_spread"] for r in rows),
    }
    if a.bt_sim:
        fine = [r["fine_relative_difference"] for r in rows]
        totals.update({
            "fine_bt_sim_commit": os.environ.get("BT_SIM_COMMIT", "unknown"),
            "fine_model": " ".join(FINE),
            "fine_agree": sum(abs(x) <= TOLERANCE for x in fine),
            "fine_median_signed_difference": statistics.median(fine),
            "fine_median_abs_difference": statistics.median(abs(x) for x in fine),
            "fine_max_abs_difference": max(abs(x) for x in fine),
        })
    with open(os.path.join(a.dirs[0], "agreement.json"), "w") as f:
        json.dump(totals, f, indent=2)
        f.write("\n")
    print(open(out).read())
    print(json.dumps(totals, indent=2))


if __name__ == "__main__":
    main()
