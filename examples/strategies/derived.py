#!/usr/bin/env python3
"""Figures derived from run.py's CSV files, written beside them (no runs):

  exp1-one-strategic*/paired-all.csv  the focal peer's paired speed-up over
      all classes, and for focal peers of 96-160 kB/s (around the BitTyrant
      paper's 128 KB/s client, its §5.1)
  exp2-everyone*/capacity-use.csv     per strategy and capacity class: how
      much of its upload capacity a leecher used while it was in the swarm,
      uploaded / (capacity x download time), its download time, and the
      class's share of the bytes all leechers uploaded (per run)
  exp2-everyone*/swarm.csv            per strategy: each run's median over
      all-classic's of the same seed, the seeders' share of the bytes
      leechers downloaded, and the last leecher's finish

    examples/strategies/derived.py    (after run.py; medians with 95 %
                                       bootstrap intervals as run.py's)
"""

import csv
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import CLASSES, OUT, STRATS, bootstrap_median, fmt, klass, write_csv  # noqa: E402


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def exp1(d):
    peers = rows(os.path.join(d, "peers.csv"))
    by = {(p["seed"], p["strategy"]): p for p in peers}
    seeds = sorted({p["seed"] for p in peers}, key=int)
    out = []
    for label, lo, hi in (("all", 0, 10**12), ("96K-160K", 96000, 160000)):
        for st in STRATS[1:]:
            ratios = []
            for s in seeds:
                c, x = by[(s, "classic")], by[(s, st)]
                if (lo <= int(c["upload_capacity"]) < hi and c["download_seconds"]
                        and x["download_seconds"]):
                    ratios.append(float(c["download_seconds"]) / float(x["download_seconds"]))
            m = bootstrap_median(ratios)
            out.append([label, st, len(ratios), *map(fmt, m)])
    write_csv(os.path.join(d, "paired-all.csv"), ["focal_capacity", "strategy", "pairs",
              "classic_over_strategy_time", "ci_lo", "ci_hi"], out)


def exp2(d):
    peers = rows(os.path.join(d, "peers.csv"))
    runs = rows(os.path.join(d, "runs.csv"))
    use = []
    for si, st in enumerate(STRATS):
        for ci, (c, _, _) in enumerate(CLASSES + [("all", 0, 0)]):
            sel = [p for p in peers if p["strategy"] == st and p["download_seconds"]
                   and (c == "all" or klass(int(p["upload_capacity"])) == c)]
            u = [int(p["uploaded"]) / (int(p["upload_capacity"]) * float(p["download_seconds"]))
                 for p in sel]
            t = [float(p["download_seconds"]) for p in sel]
            # Per run: this class's share of all bytes the leechers uploaded
            # (a class that idles leaves the work to the others).
            share = []
            for s in sorted({p["seed"] for p in peers if p["strategy"] == st}, key=int):
                mine = sum(int(p["uploaded"]) for p in sel if p["seed"] == s)
                total = sum(int(p["uploaded"]) for p in peers
                            if p["strategy"] == st and p["seed"] == s)
                if total:
                    share.append(mine / total)
            use.append([si, st, ci, c, len(sel), *map(fmt, bootstrap_median(u)),
                        *map(fmt, bootstrap_median(t)), *map(fmt, bootstrap_median(share))])
    write_csv(os.path.join(d, "capacity-use.csv"), ["strategy_index", "strategy",
              "class_index", "class", "leechers", "capacity_use", "use_lo", "use_hi",
              "download_s", "dl_lo", "dl_hi", "upload_share", "share_lo", "share_hi"], use)
    classic = {r["seed"]: float(r["median_s"]) for r in runs if r["strategy"] == "classic"}
    down = {}
    for p in peers:
        key = (p["strategy"], p["seed"])
        down[key] = down.get(key, 0) + int(p["downloaded"])
    sw = []
    for si, st in enumerate(STRATS):
        mine = [r for r in runs if r["strategy"] == st]
        ratio = [float(r["median_s"]) / classic[r["seed"]] for r in mine]
        share = [int(r["seeder_uploaded"]) / down[(st, r["seed"])] for r in mine
                 if r.get("seeder_uploaded")]
        last = [float(r["last_finish_s"]) for r in mine]
        sw.append([si, st, len(mine), *map(fmt, bootstrap_median(ratio)),
                   *map(fmt, bootstrap_median(share)), *map(fmt, bootstrap_median(last))])
    write_csv(os.path.join(d, "swarm.csv"), ["strategy_index", "strategy", "runs",
              "median_over_classic", "ratio_lo", "ratio_hi", "seeder_share", "share_lo",
              "share_hi", "last_finish_s", "last_lo", "last_hi"], sw)


def main():
    for d in sorted(glob.glob(os.path.join(OUT, "exp1-one-strategic*"))):
        if os.path.exists(os.path.join(d, "peers.csv")):
            exp1(d)
    for d in sorted(glob.glob(os.path.join(OUT, "exp2-everyone*"))):
        if os.path.exists(os.path.join(d, "peers.csv")):
            exp2(d)
    print(f"derived.py: written under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
