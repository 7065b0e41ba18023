#!/usr/bin/python3
"""Summarises runs.csv of examples/bench-engine.sh: per build and metric,
the median with a 95 % bootstrap interval (10 000 resamples, fixed seed),
and the new/base ratio of medians. A difference is called only where the
intervals do not overlap; otherwise it is a tie.

  summarize_pairs.py runs.csv
"""
import csv
import random
import statistics
import sys

METRICS = [("wall_s", "wall s"), ("cpu_s", "CPU s"), ("peak_rss_mib", "peak RSS MiB")]


def bootstrap_ci(values, rng, resamples=10000):
    meds = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def main():
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "ok"]
    builds = ["base", "new"]
    rng = random.Random(1)
    print("| metric | base median [95 % CI] | new median [95 % CI] | new/base | verdict |")
    print("| --- | --- | --- | --- | --- |")
    for key, label in METRICS:
        stats = {}
        for b in builds:
            v = [float(r[key]) for r in rows if r["build"] == b]
            if not v:
                print(f"| {label} | no successful run of {b} | | | |")
                return
            stats[b] = (statistics.median(v), *bootstrap_ci(v, rng), len(v))
        (mb, lb, hb, nb), (mn, ln, hn, nn) = stats["base"], stats["new"]
        if hn < lb:
            verdict = "new lower"
        elif ln > hb:
            verdict = "new higher"
        else:
            verdict = "tie"
        print(
            f"| {label} | {mb:.2f} [{lb:.2f}, {hb:.2f}] (n={nb}) | {mn:.2f} [{ln:.2f}, {hn:.2f}] (n={nn}) "
            f"| {mn / mb:.3f} | {verdict} |"
        )


if __name__ == "__main__":
    main()
