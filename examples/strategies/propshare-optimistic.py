#!/usr/bin/env python3
"""How much PropShare's optimistic share matters.

    examples/strategies/propshare-optimistic.py [--bt-sim PATH] [--jobs J]
        [--shares 0.05,0.1,0.2,0.3] [--pairs 100] [--seeds 20]

PropShare keeps a share of its upload for an optimistic unchoke. The
issue asks for the paper's value, but neither the paper's text past its
abstract nor its client's source could be read here, so bt uses 0.2
(BitTorrent's one optimistic unchoke of five slots) as its own choice
(src/choker/propshare.rs). This reruns the PropShare results of
experiments 1-3 on the base swarm (60 leechers, 8 MiB, the BitTyrant
paper's capacities) with other shares (bt-sim's hidden
--x-propshare-optimistic), to see whether any conclusion depends on it:

- exp1: one PropShare peer among classic ones, paired with the same swarm
  where it is classic (--pairs seeds): its speed-up, classic time over
  PropShare time, overall and per capacity class;
- exp2: all-PropShare against all-classic, the same seeds: the ratio of
  the swarms' median completion times, PropShare over classic;
- exp3: half BitTyrant, half PropShare: the ratio of BitTyrant's median
  to PropShare's in each run (above 1: PropShare finishes first).

Medians with 95 % bootstrap intervals (run.py's). Writes runs.csv,
summary.csv and meta.json under docs/results/strategies/propshare-optimistic/
(propshare-optimistic-NxS/ with --base-peers N --base-size S).
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (experiments 1-5: the swarm, the runner, the intervals)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bt-sim", default=os.path.join(run.ROOT, "target", "release", "bt-sim"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--shares", default="0.05,0.1,0.2,0.3")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--base-peers", type=int, help="leechers of the swarm (default 60)")
    ap.add_argument("--base-size", help="content of the swarm (default 8M)")
    a = ap.parse_args()
    suffix = ""
    if a.base_peers or a.base_size:
        run.BASE["peers"] = a.base_peers or run.BASE["peers"]
        run.BASE["size"] = a.base_size or run.BASE["size"]
        suffix = f"-{run.BASE['peers']}x{run.BASE['size']}"
    if not os.path.exists(a.bt_sim):
        sys.exit(f"{a.bt_sim} missing: cargo build --release --bin bt-sim")
    shares = a.shares.split(",")
    d = os.path.join(run.OUT, "propshare-optimistic" + suffix)
    os.makedirs(d, exist_ok=True)
    r = run.Runner(a.bt_sim, a.jobs)
    n = run.BASE["peers"]
    one = f"classic={(n - 1) / n},propshare={1 / n}"
    started = time.time()

    def with_share(args, share):
        return args + ["--x-propshare-optimistic", share]

    jobs = []
    for s in range(1, a.pairs + 1):
        jobs.append((("exp1", None, s), r.args("classic=1", s)))
        jobs += [(("exp1", x, s), with_share(r.args(one, s), x)) for x in shares]
    for s in range(1, a.seeds + 1):
        jobs.append((("exp2", None, s), r.args("classic=1", s)))
        jobs += [(("exp2", x, s), with_share(r.args("propshare=1", s), x)) for x in shares]
        jobs += [(("exp3", x, s), with_share(r.args("bittyrant=0.5,propshare=0.5", s), x))
                 for x in shares]
    res = r.many(jobs)

    rows = []
    for s in range(1, a.pairs + 1):
        classic_peers, _ = res[("exp1", None, s)]
        for x in shares:
            peers, _ = res[("exp1", x, s)]
            focal = next(p for p in peers if p["strategy"] == "propshare")
            base = next(p for p in classic_peers if p["peer"] == focal["peer"])
            speedup = base["download_seconds"] / focal["download_seconds"]
            rows.append(["exp1", x, s, run.klass(focal["upload_capacity"]), f"{speedup:.4f}"])
    for s in range(1, a.seeds + 1):
        _, classic = res[("exp2", None, s)]
        for x in shares:
            _, ps = res[("exp2", x, s)]
            ratio = (ps["summary"]["propshare"]["median_download_seconds"]
                     / classic["summary"]["classic"]["median_download_seconds"])
            rows.append(["exp2", x, s, "", f"{ratio:.4f}"])
            _, mixed = res[("exp3", x, s)]
            v = mixed["summary"]
            ratio = (v["bittyrant"]["median_download_seconds"]
                     / v["propshare"]["median_download_seconds"])
            rows.append(["exp3", x, s, "", f"{ratio:.4f}"])
    run.write_csv(os.path.join(d, "runs.csv"),
                  ["experiment", "optimistic_share", "seed", "class", "value"], rows)

    measures = [("exp1", "", "one PropShare peer: classic time / PropShare time")]
    measures += [("exp1", c, f"one PropShare peer, {c}: classic / PropShare")
                 for c, _, _ in run.CLASSES]
    measures += [("exp2", "", "all-PropShare median / all-classic median"),
                 ("exp3", "", "half and half: BitTyrant median / PropShare median")]
    summ = []
    for e, c, what in measures:
        for x in shares:
            xs = [float(q[4]) for q in rows if q[0] == e and q[1] == x and (not c or q[3] == c)]
            summ.append([e, c, what, x, len(xs), *map(run.fmt, run.bootstrap_median(xs))])
    run.write_csv(os.path.join(d, "summary.csv"),
                  ["experiment", "class", "measure", "optimistic_share", "n", "median",
                   "ci_lo", "ci_hi"], summ)
    run.meta(d, r, started, {"shares": shares, "pairs": a.pairs, "seeds": a.seeds,
                             "base": run.BASE, "default_share": "0.2"})
    for q in summ:
        print(",".join(str(v) for v in q))
    print(f"{time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
