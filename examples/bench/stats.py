#!/usr/bin/python3
"""Tables and plot data from the runs.csv of examples/bench-clients.sh,
bench-swarm.sh and bench-many.sh (docs/results/<experiment>/).

  stats.py table RUNS.CSV [--by variant,piece,client] [--scenario s1] [--first-byte]
      markdown: per group the median with a 95 % bootstrap interval (10 000
      resamples, fixed seed) of wall time, CPU (user + sys) and peak RSS,
      and against bt-fetch in the same cell (the group without the client):
      "faster"/"slower" only where the wall-time intervals do not overlap,
      otherwise "tie".
  stats.py points RUNS.CSV OUT_PREFIX [--by ...] [--scenario ...]
      OUT_PREFIX.groups.tsv: x, label, client number, medians, n
      OUT_PREFIX.points.tsv: jittered x, wall, CPU, peak RSS MiB, anon MiB,
      client number, rep — every successful run, for gnuplot
  stats.py traces RUNS.CSV [--scenario s1] [--where variant=lo,piece=1M]
      "client_no client path" for every successful run with a trace
  stats.py cv RUNS.CSV [--scenario s5] [--by client]
      per group: ok/runs, mean, coefficient of variation of the wall time
      with a 95 % bootstrap interval; "more stable" only where the CV
      intervals do not overlap, otherwise "tie"
  stats.py caption RESULTS_DIR
      one line from meta.json: commit, date, machine, MTU, load
"""
import csv
import json
import os
import random
import statistics
import subprocess
import sys

CLIENT_ORDER = ["bt-fetch", "libtorrent", "qbittorrent", "aria2", "transmission"]
RESAMPLES = 10000


def bootstrap_ci(values, rng):
    if len(values) < 2:
        return values[0], values[0]
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(RESAMPLES))
    return meds[int(0.025 * RESAMPLES)], meds[int(0.975 * RESAMPLES) - 1]


def load(path, scenario):
    rows = [r for r in csv.DictReader(open(path)) if not scenario or r["scenario"] == scenario]
    for r in rows:
        # a negative time is the harness's fault (a completion hook read
        # while still empty, fixed since): the download was fine, its time
        # is unknown, so it counts as a run without a valid time
        if r["status"] == "ok" and r.get("wall_s") and float(r["wall_s"]) < 0:
            r["status"] = "no valid time"
    return rows


def client_key(c):
    return (CLIENT_ORDER.index(c) if c in CLIENT_ORDER else len(CLIENT_ORDER), c)


def groups(rows, by):
    """ordered {group tuple: [rows]} (all statuses), clients in a fixed order"""
    out = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in by), []).append(r)
    ci = by.index("client") if "client" in by else None

    def order(k):
        first = list(out).index(k)
        if ci is None:
            return (first,)
        rest = k[:ci] + k[ci + 1:]
        first_rest = next(i for i, kk in enumerate(out) if kk[:ci] + kk[ci + 1:] == rest)
        return (first_rest, client_key(k[ci]))

    return {k: out[k] for k in sorted(out, key=order)}


def num(r, key):
    v = r.get(key, "")
    return float(v) if v not in ("", None) else None


def ok_values(rs, key):
    return [v for v in (num(r, key) for r in rs if r["status"] == "ok") if v is not None]


def fmt(v, ci, digits=2):
    return f"{v:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def compare(ref, s, key, lower, higher):
    """bt-fetch (ref) against s: a word only where the intervals are apart"""
    if not ref or key not in ref or key not in s:
        return ""
    (bm, (bl, bh)), (m, (lo, hi)) = ref[key], s[key]
    ratio = f"{bm / m:.2f}×" if m else "n/a"
    if bh < lo:
        return f"bt-fetch {lower} ({ratio})"
    if bl > hi:
        return f"bt-fetch {higher} ({ratio})"
    return f"tie ({ratio})"


def table(rows, by, first_byte=False):
    rng = random.Random(1)
    gs = groups(rows, by)
    stats = {}
    for k, rs in gs.items():
        s = {"runs": len(rs), "ok": sum(r["status"] == "ok" for r in rs)}
        for key in ("wall_s", "cpu_s", "peak_rss_mib", "first_byte_s"):
            v = ok_values(rs, key)
            if v:
                s[key] = (statistics.median(v), bootstrap_ci(v, rng))
        s["why"] = sorted({r["status"] for r in rs if r["status"] != "ok"})
        stats[k] = s
    ci = by.index("client") if "client" in by else None
    fb_head = " first byte s median [95 % CI] |" if first_byte else ""
    print("| " + " | ".join(by) + " | ok/runs | wall s median [95 % CI] |" + fb_head
          + " CPU s median [95 % CI] | peak RSS MiB median [95 % CI] | wall: bt-fetch vs this | CPU: bt-fetch vs this |")
    print("| " + " | ".join("---" for _ in by) + " | --- | --- |" + (" --- |" if first_byte else "") + " --- | --- | --- | --- |")
    for k, s in stats.items():
        cells = list(k)
        if "wall_s" not in s:
            print("| " + " | ".join(cells) + f" | 0/{s['runs']} | {'; '.join(s['why'])} |" + (" |" if first_byte else "") + " | | | |")
            continue
        verdict = cpu_verdict = ""
        # "seeder" / "swarm-last" rows are not downloads: nothing to compare
        if ci is not None and k[ci] not in ("bt-fetch", "seeder", "swarm-last"):
            ref = stats.get(k[:ci] + ("bt-fetch",) + k[ci + 1:])
            verdict = compare(ref, s, "wall_s", "faster", "slower")
            cpu_verdict = compare(ref, s, "cpu_s", "less", "more")
        rss = fmt(*s["peak_rss_mib"], digits=1) if "peak_rss_mib" in s else ""
        fails = f" ({'; '.join(s['why'])})" if s["why"] else ""
        fb = (f" {fmt(*s['first_byte_s'])} |" if "first_byte_s" in s else " |") if first_byte else ""
        print("| " + " | ".join(cells) + f" | {s['ok']}/{s['runs']}{fails} | {fmt(*s['wall_s'])} |{fb} "
              f"{fmt(*s['cpu_s']) if 'cpu_s' in s else ''} | {rss} | {verdict} | {cpu_verdict} |")


def points(rows, by, prefix):
    rng = random.Random(2)
    gs = groups(rows, by)
    ci = by.index("client") if "client" in by else None
    with open(prefix + ".groups.tsv", "w") as g, open(prefix + ".points.tsv", "w") as p:
        # groups with no successful run (skipped clients) take no slot
        kept = [(k, rs) for k, rs in gs.items() if any(r["status"] == "ok" for r in rs)]
        for x, (k, rs) in enumerate(kept):
            client = k[ci] if ci is not None else ""
            cnum = client_key(client)[0] + 1
            med = [statistics.median(v) if v else float("nan") for v in (ok_values(rs, key) for key in ("wall_s", "cpu_s", "peak_rss_mib"))]
            label = " ".join(v for v in k if v)
            g.write(f"{x}\t{label}\t{cnum}\t{med[0]}\t{med[1]}\t{med[2]}\t{sum(r['status'] == 'ok' for r in rs)}\n")
            for r in rs:
                if r["status"] != "ok" or num(r, "wall_s") is None:
                    continue
                anon = num(r, "peak_anon_mib")
                p.write(f"{x + rng.uniform(-0.18, 0.18):.3f}\t{r['wall_s']}\t{r['cpu_s'] or 'nan'}\t{r['peak_rss_mib'] or 'nan'}\t"
                        f"{anon if anon is not None else 'nan'}\t{cnum}\t{r['rep']}\n")


def traces(rows, where):
    for r in rows:
        if r["status"] == "ok" and r.get("trace") and all(r[k] == v for k, v in where):
            print(client_key(r["client"])[0] + 1, r["client"], r["trace"])


def cv_of(v):
    m = statistics.mean(v)
    return statistics.stdev(v) / m * 100 if len(v) > 1 and m else float("nan")


def cv_table(rows, by):
    rng = random.Random(3)
    out = []
    for k, rs in groups(rows, by).items():
        v = ok_values(rs, "wall_s")
        if all(r["status"].startswith("skipped") for r in rs):
            continue
        if len(v) < 2:
            out.append((k, len(v), len(rs), None))
            continue
        boots = sorted(cv_of(rng.choices(v, k=len(v))) for _ in range(RESAMPLES))
        out.append((k, len(v), len(rs), (statistics.mean(v), cv_of(v), boots[int(0.025 * RESAMPLES)], boots[int(0.975 * RESAMPLES) - 1])))
    print("| " + " | ".join(by) + " | ok/runs | mean wall s | CV % [95 % CI] |")
    print("| " + " | ".join("---" for _ in by) + " | --- | --- | --- |")
    for k, ok, n, st in out:
        if st is None:
            print("| " + " | ".join(k) + f" | {ok}/{n} | | |")
        else:
            print("| " + " | ".join(k) + f" | {ok}/{n} | {st[0]:.2f} | {st[1]:.1f} [{st[2]:.1f}, {st[3]:.1f}] |")
    full = [x for x in out if x[3] is not None]
    for i, a in enumerate(full):
        for b in full[i + 1:]:
            (_, lo_a, hi_a), (_, lo_b, hi_b) = a[3][1:], b[3][1:]
            if hi_a < lo_b:
                verdict = f"{' '.join(a[0])} more stable"
            elif hi_b < lo_a:
                verdict = f"{' '.join(b[0])} more stable"
            else:
                verdict = "tie (CV intervals overlap)"
            print(f"\n{' '.join(a[0])} vs {' '.join(b[0])}: {verdict}")


def caption(folder):
    m = json.load(open(os.path.join(folder, "meta.json")))
    mach = m.get("machine", {})
    load = m.get("loadavg_before", ["?"])[0] + "→" + m.get("loadavg_after", ["?"])[0]
    commit = m.get("commit", "?")
    # the commit that last changed bt-fetch's source, as of the run's commit:
    # runs made at different commits of examples/ or docs/ share one build
    try:
        src = subprocess.run(["git", "log", "-1", "--format=%h", commit, "--", "src", "bin", "Cargo.toml", "Cargo.lock"],
                             capture_output=True, text=True, cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")).stdout.strip()
    except OSError:
        src = ""
    print(f"bt-fetch source {src or commit[:7]} (run at {commit[:7]}){' (dirty)' if m.get('source_tree_dirty') else ''}, "
          f"{m.get('date_start', '?')[:16].replace('T', ' ')} UTC, {mach.get('nproc', '?')} cores, "
          f"MTU lo {mach.get('lo_mtu', '?')} / veth {mach.get('veth_mtu', '?')}, load {load}")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    opts = {"--by": "variant,piece,client", "--scenario": "", "--where": ""}
    first_byte = "--first-byte" in a
    a = [x for x in a if x != "--first-byte"]
    pos = []
    i = 1
    while i < len(a):
        if a[i] in opts:
            opts[a[i]] = a[i + 1]
            i += 2
        else:
            pos.append(a[i])
            i += 1
    by = opts["--by"].split(",")
    if a[0] == "table":
        table(load(pos[0], opts["--scenario"]), by, first_byte)
    elif a[0] == "points":
        points(load(pos[0], opts["--scenario"]), by, pos[1])
    elif a[0] == "traces":
        where = [kv.split("=", 1) for kv in opts["--where"].split(",") if kv]
        traces(load(pos[0], opts["--scenario"]), where)
    elif a[0] == "cv":
        cv_table(load(pos[0], opts["--scenario"]), by)
    elif a[0] == "caption":
        caption(pos[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
