#!/usr/bin/env python3
"""Summarises bt-sim's per-round debug lines (BT_LOG=debug; one "choke round"
line per peer per 10 s round, see src/session/serve.rs) into one CSV row
per log: why leechers' upload capacity idles.

    examples/strategies/trace-rounds.py LOG[.gz] ... > rounds.csv

A round's block of lines ends with the seeder's (capacity 1 MiB/s, all
pieces; the seeder is the last peer). The first two rounds (nobody has a
piece yet) and rounds with fewer than 5 leechers left are skipped. Each
remaining leecher-round is put in one class, in this order:
  busy            sent at least half its capacity in the round that ended
  no_interest     idle, and at most one peer is interested in it
  no_request      idle, it unchokes someone, yet no peer has a request
                  queued with it when the round ends
  other           idle for another reason
"sent" covers the round that ended; interest, unchokes and queues are
snapshots at its end.
"""

import collections
import csv
import gzip
import re
import statistics
import sys

LINE = re.compile(
    r"choke round \((\w+)\): (\d+) of (\d+) pieces; (\d+) of (\d+) peers interested, "
    r"(\d+) unchoked, (\d+) with requests queued; sent (\d+) B/s, rates -?(\d+) B/s, "
    r"capacity Some\((\d+)\); (\d+) unchoke us, (\d+) of them asked nothing")
SEEDER_CAPACITY = 1048576


def rounds(path):
    opener = gzip.open if path.endswith(".gz") else open
    block = []
    with opener(path, "rt") as f:
        for line in f:
            m = LINE.search(line)
            if not m:
                continue
            g = [m.group(1)] + [int(x) for x in m.groups()[1:]]
            row = dict(zip(["strategy", "have", "pieces", "interested", "peers", "unchoked",
                            "queued", "sent", "rates", "capacity", "unchoke_us",
                            "asked_nothing"], g))
            block.append(row)
            if row["capacity"] == SEEDER_CAPACITY and row["have"] == row["pieces"]:
                yield block
                block = []


def summary(path):
    cls = collections.Counter()
    strategy = None
    modal, unchoke_us, asked = [], [], []
    for i, block in enumerate(rounds(path)):
        leechers = [r for r in block
                    if r["capacity"] != SEEDER_CAPACITY and r["have"] < r["pieces"]]
        if i < 2 or len(leechers) < 5:
            continue
        strategy = leechers[0]["strategy"]
        # How synchronised the swarm is: the share of leechers holding the
        # most common number of pieces.
        modal.append(collections.Counter(r["have"] for r in leechers).most_common(1)[0][1]
                     / len(leechers))
        for r in leechers:
            unchoke_us.append(r["unchoke_us"])
            asked.append(r["asked_nothing"])
            if r["sent"] >= 0.5 * r["capacity"]:
                cls["busy"] += 1
            elif r["interested"] <= 1:
                cls["no_interest"] += 1
            elif r["unchoked"] > 0 and r["queued"] == 0:
                cls["no_request"] += 1
            else:
                cls["other"] += 1
    n = sum(cls.values())
    return [path.rsplit("/", 1)[-1], strategy, n,
            *(f"{cls[k] / n:.2f}" for k in ("busy", "no_interest", "no_request", "other")),
            f"{statistics.median(unchoke_us):.0f}", f"{statistics.mean(asked):.2f}",
            f"{statistics.mean(unchoke_us):.2f}", f"{statistics.median(modal):.2f}"]


def main():
    w = csv.writer(sys.stdout)
    w.writerow(["log", "strategy", "leecher_rounds", "busy", "idle_no_interest",
                "idle_no_request", "idle_other", "unchoking_us_median",
                "unchoking_us_asked_nothing_mean", "unchoking_us_mean",
                "modal_piece_count_share_median"])
    for p in sys.argv[1:]:
        w.writerow(summary(p))


if __name__ == "__main__":
    main()
