#!/usr/bin/python3
"""Tables and plot data from the runs.csv of examples/bench-clients.sh,
bench-swarm.sh and bench-many.sh (docs/results/<experiment>/).

  stats.py table RUNS.CSV [--by variant,piece,client] [--scenario s1] [--first-byte] [--link]
      markdown: per group the median with a 95 % bootstrap interval (10 000
      resamples, fixed seed) of wall time, CPU (user + sys) and peak RSS,
      and against bt-fetch in the same cell (the group without the client):
      "faster"/"slower" only where the wall-time intervals do not overlap,
      otherwise "tie". --link adds the goodput (% of the link) with its
      interval and the median MB that crossed the link (rate-limited runs).
  stats.py swarms RUNS.CSV [--scenario s4] [--bytes N]
      markdown, one row per swarm kind: the time from the first leecher's
      start to the last one's completion (median, 95 % interval, × the bound
      N bytes / link rate), what the seeder sent (× the file), the CPU of all
      leechers, their peak RSS; against the all-bt-fetch swarm with the
      interval rule
  stats.py points RUNS.CSV OUT_PREFIX [--by ...] [--scenario ...] [--where k=v,k!=v,...]
      OUT_PREFIX.groups.tsv: x, label, client number, medians, n, median goodput
      OUT_PREFIX.points.tsv: jittered x, wall, CPU, peak RSS MiB, anon MiB,
      client number, rep, goodput — every successful run, for gnuplot
  stats.py rates RUNS.CSV OUT_PREFIX [--scenario s2] [--where ...] [--window S]
      per client OUT_PREFIX.<client>.tsv: every run's download rate (Mbit/s,
      averaged over --window seconds, default 2) against time, one gnuplot
      data block per run; prints "client_no client runs last_second" per
      client, in order
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


def matches(r, where):
    """where: (key, value) pairs; a key ending in "!" means "is not" """
    return all(r[k[:-1]] != v if k.endswith("!") else r[k] == v for k, v in where)


def load(path, scenario, where=()):
    rows = [r for r in csv.DictReader(open(path))
            if (not scenario or r["scenario"] == scenario) and matches(r, where)]
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


def table(rows, by, first_byte=False, link=False):
    rng = random.Random(1)
    gs = groups(rows, by)
    stats = {}
    for k, rs in gs.items():
        s = {"runs": len(rs), "ok": sum(r["status"] == "ok" for r in rs)}
        for key in ("wall_s", "cpu_s", "peak_rss_mib", "first_byte_s", "goodput_pct"):
            v = ok_values(rs, key)
            if v:
                s[key] = (statistics.median(v), bootstrap_ci(v, rng))
        wire = ok_values(rs, "wire_bytes")
        if wire:
            s["wire_mb"] = statistics.median(wire) / 1e6
        s["why"] = sorted({r["status"] for r in rs if r["status"] != "ok"})
        stats[k] = s
    ci = by.index("client") if "client" in by else None
    fb_head = " first byte s median [95 % CI] |" if first_byte else ""
    link_head = " % of link median [95 % CI] | MB over the link |" if link else ""
    print("| " + " | ".join(by) + " | ok/runs | wall s median [95 % CI] |" + fb_head + link_head
          + " CPU s median [95 % CI] | peak RSS MiB median [95 % CI] | wall: bt-fetch vs this | CPU: bt-fetch vs this |")
    print("| " + " | ".join("---" for _ in by) + " | --- | --- |" + (" --- |" if first_byte else "")
          + (" --- | --- |" if link else "") + " --- | --- | --- | --- |")
    for k, s in stats.items():
        cells = list(k)
        if "wall_s" not in s:
            print("| " + " | ".join(cells) + f" | 0/{s['runs']} | {'; '.join(s['why'])} |" + (" |" if first_byte else "")
                  + (" | |" if link else "") + " | | | |")
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
        if link:
            fb += f" {fmt(*s['goodput_pct'], digits=1)} |" if "goodput_pct" in s else " |"
            fb += f" {s['wire_mb']:.1f} |" if "wire_mb" in s else " |"
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
            # without a client column (S4's swarms) a group named after a
            # client (the all-bt-fetch swarm) takes that client's colour
            client = k[ci] if ci is not None else (k[0] if k and k[0] in CLIENT_ORDER else "")
            cnum = client_key(client)[0] + 1
            med = [statistics.median(v) if v else float("nan")
                   for v in (ok_values(rs, key) for key in ("wall_s", "cpu_s", "peak_rss_mib", "goodput_pct"))]
            label = " ".join(v for v in k if v)
            g.write(f"{x}\t{label}\t{cnum}\t{med[0]}\t{med[1]}\t{med[2]}\t{sum(r['status'] == 'ok' for r in rs)}\t{med[3]}\n")
            for r in rs:
                if r["status"] != "ok" or num(r, "wall_s") is None:
                    continue
                anon = num(r, "peak_anon_mib")
                p.write(f"{x + rng.uniform(-0.18, 0.18):.3f}\t{r['wall_s']}\t{r['cpu_s'] or 'nan'}\t{r['peak_rss_mib'] or 'nan'}\t"
                        f"{anon if anon is not None else 'nan'}\t{cnum}\t{r['rep']}\t{r.get('goodput_pct') or 'nan'}\n")


def traces(rows, where):
    for r in rows:
        if r["status"] == "ok" and r.get("trace") and matches(r, where):
            print(client_key(r["client"])[0] + 1, r["client"], r["trace"])


def swarms(rows, file_bytes):
    """S4: one row per swarm kind from its "swarm-last" rows (first start to
    last completion; wire_bytes = what the seeder sent) and its leechers"""
    rng = random.Random(4)
    kinds = []
    for r in rows:
        if r["variant"] not in kinds:
            kinds.append(r["variant"])
    st = {}
    for kind in kinds:
        last = [r for r in rows if r["variant"] == kind and r["client"] == "swarm-last"]
        leech = [r for r in rows if r["variant"] == kind and r["client"] != "swarm-last"]
        s = {"n": len(last), "ok": sum(r["status"] == "ok" for r in last)}
        rate = next((float(r["link_mbit"]) for r in last if r["link_mbit"]), 0.0)
        s["bound"] = file_bytes * 8 / (rate * 1e6) if rate else float("nan")
        for key in ("wall_s", "cpu_s"):
            v = ok_values(last, key)
            if v:
                s[key] = (statistics.median(v), bootstrap_ci(v, rng))
        sent = [v / file_bytes for v in ok_values(last, "wire_bytes")]
        if sent:
            s["sent"] = (statistics.median(sent), min(sent), max(sent))
        rss = ok_values([r for r in leech if r["client"] == "bt-fetch"], "peak_rss_mib")
        s["rss_btfetch"] = (statistics.median(rss), min(rss), max(rss)) if rss else None
        s["leechers"] = f"{sum(r['status'] == 'ok' for r in leech)}/{len(leech)}"
        st[kind] = s
    print("| swarm | ok swarms | leechers ok | last leecher done, s median [95 % CI] | × bound | seeder sent, × file median (min–max)"
          " | CPU s of all leechers median [95 % CI] | bt-fetch leecher peak RSS MiB median (min–max) | 8 × bt-fetch vs this |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = st.get("bt-fetch")
    for kind, s in st.items():
        if "wall_s" not in s:
            print(f"| {kind} | 0/{s['n']} | {s['leechers']} | | | | | | |")
            continue
        m, (lo, hi) = s["wall_s"]
        b = s["bound"]
        sent = f"{s['sent'][0]:.2f} ({s['sent'][1]:.2f}–{s['sent'][2]:.2f})" if "sent" in s else ""
        cpu = fmt(*s["cpu_s"], digits=1) if "cpu_s" in s else ""
        rss = f"{s['rss_btfetch'][0]:.1f} ({s['rss_btfetch'][1]:.1f}–{s['rss_btfetch'][2]:.1f})" if s["rss_btfetch"] else ""
        verdict = "" if kind == "bt-fetch" else compare(ref, s, "wall_s", "faster", "slower")
        print(f"| {kind} | {s['ok']}/{s['n']} | {s['leechers']} | {fmt(m, (lo, hi))} | {m / b:.3f} [{lo / b:.3f}, {hi / b:.3f}] | {sent} | {cpu} | {rss} | {verdict} |")


def rates(rows, folder, prefix, window):
    """every run's download rate over time, one file per client"""
    import gzip
    out, tmax = {}, {}
    for r in rows:
        if r["status"] != "ok" or not r.get("trace"):
            continue
        path = os.path.join(folder, r["trace"])
        if not os.path.exists(path):
            continue
        pts = []
        for line in gzip.open(path, "rt"):
            f = line.split()
            if len(f) >= 2:
                pts.append((float(f[0]) / 1000, float(f[1])))
        lines = []
        j = 0
        for t, b in pts:
            while j < len(pts) and t - pts[j][0] > window:
                j += 1
            t0, b0 = pts[j] if j < len(pts) else (t, b)
            if t - t0 >= window / 2:
                lines.append(f"{t:.2f}\t{(b - b0) * 8 / (t - t0) / 1e6:.2f}")
        out.setdefault(r["client"], []).append("\n".join(lines))
        tmax[r["client"]] = max(tmax.get(r["client"], 0.0), pts[-1][0] if pts else 0.0)
    for c in sorted(out, key=client_key):
        with open(f"{prefix}.{c}.tsv", "w") as f:
            f.write("\n\n\n".join(out[c]) + "\n")
        print(client_key(c)[0] + 1, c, len(out[c]), f"{tmax[c]:.1f}")


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
    opts = {"--by": "variant,piece,client", "--scenario": "", "--where": "", "--bytes": "1073741824", "--window": "2"}
    first_byte = "--first-byte" in a
    link = "--link" in a
    a = [x for x in a if x not in ("--first-byte", "--link")]
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
    where = [kv.split("=", 1) for kv in opts["--where"].split(",") if kv]
    if a[0] == "table":
        table(load(pos[0], opts["--scenario"], where), by, first_byte, link)
    elif a[0] == "swarms":
        swarms(load(pos[0], opts["--scenario"] or "s4", where), int(opts["--bytes"]))
    elif a[0] == "points":
        points(load(pos[0], opts["--scenario"], where), by, pos[1])
    elif a[0] == "rates":
        rates(load(pos[0], opts["--scenario"], where), os.path.dirname(os.path.abspath(pos[0])), pos[1], float(opts["--window"]))
    elif a[0] == "traces":
        traces(load(pos[0], opts["--scenario"]), where)
    elif a[0] == "cv":
        cv_table(load(pos[0], opts["--scenario"]), by)
    elif a[0] == "caption":
        caption(pos[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
