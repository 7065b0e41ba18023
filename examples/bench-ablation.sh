#!/usr/bin/env bash
# Ablations (issue 14): what rarest-first, the endgame and the seed split are
# worth, each turned off by a hidden experiment-only switch of bt-fetch
# (--x-random-pieces, --x-no-endgame, --x-no-seed-split) at the same build.
#
# A swarm: one python-libtorrent seeder in a network namespace behind a
# rate-limited veth (tbf, --rate), and --leechers bt-fetch leechers on the
# host (binding $BENCH_NET.1.1, so they reach each other at local speed) that
# start together, find each other through opentracker and keep seeding until
# the last is done. Variants, interleaved over repetitions (base, random,
# no-endgame, no-split, base, ...); a fresh tracker and seeder per swarm.
#
# Each leecher's --json lines are timestamped as they come (a small reader
# on its stdout), which gives per leecher the time of every verified piece:
#   - completion time of each leecher and of the last one;
#   - piece availability over time among the leechers: distinct pieces held
#     by at least one leecher, and the fewest copies of any piece
#     (availability.csv, one row per swarm and 0.5 s step);
#   - time spent on the last 1 % of the pieces (99 % of pieces to complete);
#   - wasted bytes (duplicates in endgame, from the "done" event);
#   - bytes the seeder sent (its veth counter), in copies of the file.
#
# Usage: sudo examples/bench-ablation.sh [options]
#   --variants LIST   base,random,no-endgame,no-split (default), and
#                     random-no-split (both switches: rarest first against
#                     random where the seed split does not hide it)
#   --reps N          swarms per variant (default 5)
#   --first-rep N     number the swarms from N, to add swarms to --out
#                     (default 1; the analysis covers every swarm in --out)
#   --leechers N      (default 8)
#   --size MIB        file size (default 64)
#   --piece LEN       piece length (default 256K)
#   --rate MBIT       the seeder's link (default 40)
#   --timeout S       per swarm (default 180)
#   --out DIR         results (default docs/results/ablation)
#   --dry-run         print the options as parsed and stop
# Environment: BT_FETCH, BENCH_NET (default 10.238), BT_BENCH_DIR, BENCH_KEEP=1.
set -uo pipefail
export BENCH_NET=${BENCH_NET:-10.238}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

variants=base,random,no-endgame,no-split reps=5 first_rep=1 nleech=8 size=64 piece=256K rate=40 out=
TIMEOUT=180
cmdline="$0 $*"
bench_options --variants=variants --reps=reps --first-rep=first_rep --leechers=nleech --size=size \
    --piece=piece --rate=rate --timeout=TIMEOUT --out=out -- "$@"
out=${out:-$ROOT/docs/results/ablation}
IFS=, read -ra VARIANTS <<<"$variants"
bench_need_built "$BT_FETCH"
"$BT_FETCH" --x-no-seed-split --help >/dev/null 2>&1 || die "$BT_FETCH has no --x-… switches (build this branch)"

bench_init "$out"
log "results in $OUT; bt-fetch: $BT_FETCH"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# every invocation that wrote into this folder (swarms may be added later)
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) load $load_start: $cmdline" >>"$OUT/commands.txt"

# bt-fetch behind a wrapper: the variant's switch, and a timestamp (Unix
# seconds) before every JSON line. exec keeps the pid the harness stops.
REAL_BT_FETCH=$BT_FETCH
BT_FETCH=$BENCH_TMP/bt-fetch-ablation
cat >"$BT_FETCH" <<EOF
#!/bin/bash
# shellcheck disable=SC2086
exec "$REAL_BT_FETCH" "\$@" \${ABLATION_FLAGS:-} > >(exec $PY -u -c 'import sys, time
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.time(), line))')
EOF
chmod +x "$BT_FETCH"
flags_of() {
    case $1 in
    base) echo "" ;;
    random) echo "--x-random-pieces" ;;
    no-endgame) echo "--x-no-endgame" ;;
    no-split) echo "--x-no-seed-split" ;;
    random-no-split) echo "--x-random-pieces --x-no-seed-split" ;;
    *) die "unknown variant '$1'" ;;
    esac
}

tracker_setup
make_data "$size"
ns_create 1
HOSTIP=$NET.1.1
make_torrent "$piece" "$HOSTIP"
ns_limit 1 "$rate"
PIECES=$("$BT_META" info "$TORRENT" | grep -o '"piece_count": *[0-9]*' | head -1 | grep -o '[0-9]*$')
[[ -n $PIECES ]] || PIECES=$(((DATA_BYTES + $(numfmt --from=iec "$piece") - 1) / $(numfmt --from=iec "$piece")))

EVENTS=$OUT/events
mkdir -p "$EVENTS"

# swarm VARIANT REP
swarm() {
    local v=$1 rep=$2 i d dirs=() rx0 rx1 label
    export ABLATION_FLAGS
    ABLATION_FLAGS=$(flags_of "$v")
    tracker_restart "$HOSTIP"
    seeder_start libtorrent "$(ns_name 1)" "$NET.1.2"
    seeders_wait 1
    rx0=$(ns_rx_bytes 1)
    for ((i = 1; i <= nleech; i++)); do
        RUN_SEQ=$((RUN_SEQ + 1))
        d=$BENCH_TMP/run-$RUN_SEQ
        client_launch "$d" bt-fetch "$HOSTIP" stay
        dirs+=("$d")
    done
    clients_wait 0.1 "${dirs[@]}"
    rx1=$(ns_rx_bytes 1)
    i=0
    for d in "${dirs[@]}"; do
        i=$((i + 1))
        label=$v-r$rep-l$i
        client_collect "$d"
        sleep 0.2 # the timestamping reader writes the last lines
        csv_row ablation "$v" "$piece" "$rate" libtorrent bt-fetch "$i" "$rep" "" "" ""
        # the JSON lines, minus progress lines, for the availability analysis
        { echo "# start_ns $(<"$d/start_ns")"; grep -v '"progress"' "$d/out"; } | gzip -9 >"$EVENTS/$label.jsonl.gz"
        log "$label: $R_status wall=${R_wall:-?}s cpu=${R_cpu:-?}s"
        rm -rf "$d"
    done
    seeders_stop
    tracker_stop
    echo "$v,$rep,$((rx1 - rx0))" >>"$OUT/seeder-sent.csv"
    log "swarm $v r$rep: the seeder sent $(((rx1 - rx0) / 1000000)) MB ($(awk -v a="$((rx1 - rx0))" -v b="$DATA_BYTES" 'BEGIN {printf "%.2f", a / b}') x the file)"
}

[[ -f $OUT/seeder-sent.csv ]] || echo "variant,rep,seeder_sent_bytes" >"$OUT/seeder-sent.csv"
for ((rep = first_rep; rep < first_rep + reps; rep++)); do
    for v in "${VARIANTS[@]}"; do
        log "swarm $v (${nleech} bt-fetch$(flags_of "$v" | sed 's/^./ &/')), repetition $rep"
        swarm "$v" "$rep"
    done
done
ns_limit 1 0

# ---------------------------------------------------------------- analysis
"$PY" - "$OUT" "$PIECES" "$DATA_BYTES" <<'PYEOF'
import csv, glob, gzip, json, os, random, statistics, sys

out, pieces, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
for path in sorted(glob.glob(os.path.join(out, "events", "*.jsonl.gz"))):
    name = os.path.basename(path)[: -len(".jsonl.gz")]
    v, rep, leecher = name.rsplit("-", 2)
    start, got, complete, wasted = None, [], None, None
    for line in gzip.open(path, "rt"):
        if line.startswith("# start_ns "):
            start = int(line.split()[2]) / 1e9
            continue
        ts, _, js = line.partition(" ")
        try:
            e = json.loads(js)
        except ValueError:
            continue
        t = float(ts) - start
        if e.get("event") == "piece":
            got.append((t, e["index"]))
        elif e.get("event") == "complete" and complete is None:
            complete = t
        elif e.get("event") == "done":
            wasted = e.get("wasted")
    runs.setdefault((v, int(rep[1:])), []).append({"leecher": int(leecher[1:]), "got": got, "complete": complete, "wasted": wasted})

sent = {(r["variant"], int(r["rep"])): int(r["seeder_sent_bytes"]) for r in csv.DictReader(open(os.path.join(out, "seeder-sent.csv")))}
step = 0.5
with open(os.path.join(out, "swarms.csv"), "w") as sw, open(os.path.join(out, "availability.csv"), "w") as av, \
        open(os.path.join(out, "leechers.csv"), "w") as le:
    av.write("variant,rep,t_s,distinct_pieces,min_copies,mean_copies\n")
    sw.write("variant,rep,status,leechers_ok,last_s,median_s,mean_s,last1pct_median_s,wasted_bytes_total,"
             "seeder_sent_bytes,seeder_copies,full_copy_among_leechers_s\n")
    le.write("variant,rep,leecher,complete_s,last1pct_s,wasted_bytes\n")
    for (v, rep), ls in sorted(runs.items()):
        ok = [l for l in ls if l["complete"] is not None]
        times = sorted(l["complete"] for l in ok)
        last1 = []
        for l in ls:
            g = sorted(t for t, _ in l["got"])
            k = -(-99 * pieces // 100)  # ceil(0.99 * pieces)
            l1 = ""
            if l["complete"] is not None and len(g) >= k:
                l1 = l["complete"] - g[k - 1]
                last1.append(l1)
                l1 = f"{l1:.3f}"
            done = f"{l['complete']:.3f}" if l["complete"] is not None else ""
            le.write(f"{v},{rep},{l['leecher']},{done},{l1},{'' if l['wasted'] is None else l['wasted']}\n")
        # availability among the leechers over time
        events = sorted((t, i) for l in ls for t, i in l["got"])
        copies = [0] * pieces
        full_at = ""
        t, j = 0.0, 0
        end = events[-1][0] if events else 0
        while t <= end + step:
            while j < len(events) and events[j][0] <= t:
                copies[events[j][1]] += 1
                j += 1
            distinct = sum(1 for c in copies if c)
            if distinct == pieces and full_at == "":
                full_at = f"{t:.1f}"
            av.write(f"{v},{rep},{t:.1f},{distinct},{min(copies)},{sum(copies) / pieces:.3f}\n")
            t += step
        wasted = [l["wasted"] for l in ls if l["wasted"] is not None]
        s = sent.get((v, rep), 0)
        status = "ok" if len(ok) == len(ls) else "failed"
        sw.write(",".join(str(x) for x in [
            v, rep, status, len(ok),
            f"{times[-1]:.2f}" if times else "", f"{statistics.median(times):.2f}" if times else "",
            f"{statistics.mean(times):.2f}" if times else "",
            f"{statistics.median(last1):.3f}" if last1 else "",
            sum(wasted) if len(wasted) == len(ls) else "",
            s, f"{s / size:.3f}", full_at]) + "\n")

# medians with 95 % bootstrap intervals, each variant against base
rows = list(csv.DictReader(open(os.path.join(out, "swarms.csv"))))
rng = random.Random(1)
def ci(vals):
    meds = sorted(statistics.median(rng.choices(vals, k=len(vals))) for _ in range(10000))
    return statistics.median(vals), meds[250], meds[9749]
metrics = [("last_s", "last leecher done, s"), ("mean_s", "mean completion, s"),
           ("last1pct_median_s", "last 1 % of pieces, s (median leecher)"),
           ("wasted_bytes_total", "wasted bytes, all leechers"),
           ("seeder_copies", "seeder sent, copies of the file"),
           ("full_copy_among_leechers_s", "a full copy among the leechers, s")]
variants = []
for r in rows:
    if r["variant"] not in variants:
        variants.append(r["variant"])
lines = ["| metric | " + " | ".join(f"{v} median [95 % CI]" for v in variants) + " |",
         "| --- |" + " --- |" * len(variants)]
verdicts = []
for key, label in metrics:
    cells, stats = [], {}
    for v in variants:
        vals = [float(r[key]) for r in rows if r["variant"] == v and r["status"] == "ok" and r[key] != ""]
        if not vals:
            cells.append("n/a")
            continue
        m, lo, hi = ci(vals)
        stats[v] = (m, lo, hi)
        cells.append(f"{m:.3g} [{lo:.3g}, {hi:.3g}] (n={len(vals)})")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
    # each switch against the build without it: random-no-split against
    # no-split (rarest first against random without the seed split)
    for v in variants:
        base = "no-split" if v == "random-no-split" else "base"
        if v == base or v not in stats or base not in stats:
            continue
        (m, lo, hi), (bm, blo, bhi) = stats[v], stats[base]
        verdict = "higher" if lo > bhi else "lower" if hi < blo else "tie"
        verdicts.append(f"- {label}: {v} against {base}: {verdict} ({m:.3g} vs {bm:.3g})")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines + [""] + verdicts) + "\n")
print("\n".join(lines + [""] + verdicts))
PYEOF

commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)
dirty=false
[[ -n $(git -C "$ROOT" status --porcelain -- src bin examples 2>/dev/null) ]] && dirty=true
cat >"$OUT/meta.json" <<EOF
{
  "experiment": "ablation",
  "commit": "$commit",
  "dirty": $dirty,
  "command": "$cmdline",
  "all_commands": "see commands.txt (date, load average at start, command line of every run that added swarms)",
  "bt_fetch": "$REAL_BT_FETCH",
  "variants": "base: no switch; random: --x-random-pieces; no-endgame: --x-no-endgame; no-split: --x-no-seed-split; random-no-split: both --x-random-pieces and --x-no-seed-split",
  "swarm": "$nleech bt-fetch leechers on the host (unlimited among themselves), one python3-libtorrent seeder (high_performance_seed) in a namespace behind tbf ${rate} Mbit/s",
  "size_bytes": $DATA_BYTES,
  "piece_length": "$piece",
  "pieces": $PIECES,
  "rate_mbit": $rate,
  "reps": "$reps per variant and invocation (see commands.txt; swarms.csv has every swarm)",
  "nproc": $(nproc),
  "kernel": "$(uname -r)",
  "mtu": $MTU,
  "load_average_at_start": "$load_start",
  "load_average_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
log "done: $OUT/swarms.csv, availability.csv, summary.md, meta.json"
