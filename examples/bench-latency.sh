#!/usr/bin/env bash
# Latency experiment (issue 14): download throughput against the round-trip
# time at a fixed link rate, for bt-fetch and each reference client, from one
# python-libtorrent seeder. netem does not exist on these machines, so the
# link is the userspace relay examples/relay.rs: each direction delayed by
# RTT/2 and limited to --rate (token bucket per direction), with a bounded
# bottleneck queue.
#
# Layout (all on this host): the seeder listens on 127.0.0.1 and never
# announces (its copy of the torrent has no tracker); the relay listens on
# $BENCH_NET.1.1 (the host end of a veth to a namespace this script creates,
# so that the address is not 127.x, which Transmission ignores) and forwards
# to the seeder; the harness announces the relay's address to opentracker, so
# every leecher finds the seeder only through the relay. Cells are
# interleaved: for each repetition, for each RTT (fresh relay and tracker),
# every client once.
#
# Per run: wall time (start to completion), first byte on disk (sampled
# every 0.15 s), throughput over the whole run and from the first byte.
#
# Usage: sudo examples/bench-latency.sh [options]
#   --rtts LIST       round-trip times in ms (default 0,20,100,300)
#   --rate MBIT       link rate per direction (default 100)
#   --size MIB        file size (default 128)
#   --piece LEN       piece length (default 1M)
#   --reps N          repetitions (default 3)
#   --clients LIST    leechers (default bt-fetch,libtorrent,qbittorrent,aria2,transmission)
#   --timeout S       per run (default 120)
#   --out DIR         results (default docs/results/latency)
#   --first-rep N     number the repetitions from N (to add runs to --out:
#                     rows are appended to its runs.csv; default 1)
#   --check-only      only validate the relay at each RTT (relay-check.csv)
#   --summarize-only  only recompute throughput.csv and summary.md from
#                     --out's runs.csv and progress traces
#   --dry-run         print the options as parsed and stop
# Environment: BT_FETCH, RELAY (default target/release/examples/relay),
# BENCH_NET (default 10.237), BT_BENCH_DIR, BENCH_KEEP=1.
set -uo pipefail
export BENCH_NET=${BENCH_NET:-10.237}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"

rtts=0,20,100,300 rate=100 size=128 piece=1M reps=3 out= check_only=0 first_rep=1 summarize_only=0
clients=$(
    IFS=,
    echo "${ALL_CLIENTS[*]}"
)
TIMEOUT=120
RELAY=${RELAY:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/relay}
cmdline="$0 $*"
bench_options --rtts=rtts --rate=rate --size=size --piece=piece --reps=reps --clients=clients \
    --timeout=TIMEOUT --out=out --first-rep=first_rep --check-only=check_only:1 \
    --summarize-only=summarize_only:1 -- "$@"
out=${out:-$ROOT/docs/results/latency}
IFS=, read -ra RTTS <<<"$rtts"
IFS=, read -ra CL <<<"$clients"

# ---------------------------------------------------------------- results
# throughput.csv, one row per run: Mbit/s over the whole run (file / wall
# time), from the first byte on disk (the bytes after the first sample that
# has data, over the time since), and between 10 % and 90 % of the file
# (interpolated in the trace); summary.md: medians with 95 % bootstrap CIs
summarize_latency() {
    "$PY" - "$OUT" "$rate" <<'PYEOF'
import csv, os, random, statistics, sys

out, rate = sys.argv[1], float(sys.argv[2])
rows = [r for r in csv.DictReader(open(os.path.join(out, "runs.csv"))) if r["scenario"] == "latency"]
def trace(path):
    pts = []
    try:
        for line in open(os.path.join(out, path)):
            f = line.split()
            pts.append((int(f[0]) / 1000.0, int(f[1])))
    except (OSError, ValueError, IndexError):
        pass
    return pts
def crossing(pts, level):
    for (t0, b0), (t1, b1) in zip(pts, pts[1:]):
        if b0 < level <= b1:
            return t0 + (t1 - t0) * (level - b0) / (b1 - b0)
    return None
res = []
with open(os.path.join(out, "throughput.csv"), "w") as f:
    f.write("rtt_ms,client,rep,status,wall_s,first_byte_s,mbit_total,mbit_from_first_byte,mbit_10_90,pct_of_link_from_first_byte\n")
    for r in rows:
        rtt, c = r["variant"][3:], r["client"]
        tot = fb = mid = pct = ""
        if r["status"] == "ok" and r["wall_s"]:
            wall = float(r["wall_s"])
            pts = trace(r["trace"])
            size = None
            down = r["client_down_bytes"]
            first = next(((t, b) for t, b in pts if b > 0), None)
            size_b = int(down) if down.isdigit() else None
            # the file size: the largest sample or the counter
            size = max([b for _, b in pts] + [size_b or 0])
            tot = f"{size * 8 / wall / 1e6:.2f}"
            if first and wall > first[0]:
                fb = f"{(size - first[1]) * 8 / (wall - first[0]) / 1e6:.2f}"
                pct = f"{float(fb) / rate * 100:.1f}"
            t10, t90 = crossing(pts, 0.1 * size), crossing(pts, 0.9 * size)
            if t10 is not None and t90 is not None and t90 > t10:
                mid = f"{0.8 * size * 8 / (t90 - t10) / 1e6:.2f}"
        f.write(",".join([rtt, c, r["rep"], r["status"], r["wall_s"], r["first_byte_s"], tot, fb, mid, pct]) + "\n")
        res.append((rtt, c, r["status"], tot, fb, mid))
rng = random.Random(1)
def ci(v):
    meds = sorted(statistics.median(rng.choices(v, k=len(v))) for _ in range(10000))
    return statistics.median(v), meds[250], meds[9749]
rtts, clients = [], []
for rtt, c, *_ in res:
    if rtt not in rtts: rtts.append(rtt)
    if c not in clients: clients.append(c)
lines = [f"Mbit/s from the first byte to completion, median [95 % bootstrap CI] (ok runs / runs); link {rate:g} Mbit/s", "",
         "| client | " + " | ".join(f"RTT {r} ms" for r in rtts) + " |", "| --- |" + " --- |" * len(rtts)]
lines2 = ["", "Mbit/s over the whole run (file / wall time from start), median [95 % CI]", "",
          "| client | " + " | ".join(f"RTT {r} ms" for r in rtts) + " |", "| --- |" + " --- |" * len(rtts)]
for c in clients:
    cells, cells2 = [], []
    for rtt in rtts:
        mine = [x for x in res if x[0] == rtt and x[1] == c]
        fbv = [float(x[4]) for x in mine if x[2] == "ok" and x[4]]
        totv = [float(x[3]) for x in mine if x[2] == "ok" and x[3]]
        if fbv:
            m, lo, hi = ci(fbv); cells.append(f"{m:.1f} [{lo:.1f}, {hi:.1f}] ({len(fbv)}/{len(mine)})")
        else:
            cells.append(f"n/a (0/{len(mine)})")
        if totv:
            m, lo, hi = ci(totv); cells2.append(f"{m:.1f} [{lo:.1f}, {hi:.1f}]")
        else:
            cells2.append("n/a")
    lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines2.append(f"| {c} | " + " | ".join(cells2) + " |")
text = "\n".join(lines + lines2) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
print(text)
PYEOF
}
if ((summarize_only)); then
    OUT=$out
    summarize_latency
    exit 0
fi
[[ -x $RELAY ]] || die "$RELAY not built (cargo build --release --example relay)"

bench_init "$out"
log "results in $OUT; bt-fetch: $BT_FETCH; relay: $RELAY"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# every invocation that wrote into this folder (runs may be added later)
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) load $load_start: $cmdline" >>"$OUT/commands.txt"

# ---------------------------------------------------------------- relay check
# The relay alone, on loopback: one-byte ping-pong and a bulk transfer at
# every RTT of the experiment (what the experiment's link really is).
CHECK=$OUT/relay-check.csv
[[ -f $CHECK ]] || echo "rtt_ms_set,rtt_ms_measured,rate_mbit_set,rate_mbit_measured,rtt_ok,rate_ok" >"$CHECK"
for r in "${RTTS[@]}"; do
    j=$("$RELAY" --check --rtt "$r" --rate "$rate" --seconds 4 2>>"$OUT/logs/relay-check.log")
    log "relay check at ${r} ms: $j"
    sed 's/[{}"]//g; s/[a-z_]*://g' <<<"$j" >>"$CHECK"
done
((check_only)) && exit 0

tracker_setup
ns_create 1
HOSTIP=$NET.1.1
make_data "$size"
make_torrent "$piece" "$HOSTIP"
LEECH_TORRENT=$TORRENT
# The seeder's copy: the same info dictionary (same info-hash) without a
# tracker, so that it never announces its own, relay-less address.
SEED_TORRENT=$BENCH_TMP/seed-no-tracker.torrent
"$BT_META" create "$DATA_FILE" -l "$piece" --no-date -q -f -o "$SEED_TORRENT" >/dev/null ||
    die "bt-meta create failed"
seed_hash=$("$BT_META" info "$SEED_TORRENT" | sed -n 's/.*"info_hash": *"\([0-9a-f]\{40\}\)".*/\1/p')
[[ $seed_hash == "$HASH" ]] || die "the seeder's torrent has another info-hash ($seed_hash, not $HASH)"

TORRENT=$SEED_TORRENT
seeder_start libtorrent "" 127.0.0.1
TORRENT=$LEECH_TORRENT
SEED_LOG=
SEED_PORT=
for ((i = 0; i < 200; i++)); do
    SEED_LOG=$(ls -t "$OUT"/logs/seeder-libtorrent-lo-*.log 2>/dev/null | head -1)
    [[ -n $SEED_LOG ]] && SEED_PORT=$(grep -o '"port": *[0-9]*' "$SEED_LOG" 2>/dev/null | head -1 | grep -o '[0-9]*$')
    [[ -n $SEED_PORT && $SEED_PORT != 0 ]] && break
    sleep 0.1
done
[[ -n $SEED_PORT && $SEED_PORT != 0 ]] || die "the seeder did not start (see $SEED_LOG)"
log "seeder: python-libtorrent on 127.0.0.1:$SEED_PORT (info-hash $HASH)"

RELAY_PID=
relay_start() { # RTT_MS: a fresh tracker and relay, the relay announced
    local r=$1
    [[ -n $RELAY_PID ]] && bench_kill "$RELAY_PID"
    free_port RELAY_PORT
    "$RELAY" --listen "$HOSTIP:$RELAY_PORT" --connect "127.0.0.1:$SEED_PORT" --rtt "$r" --rate "$rate" \
        2>>"$OUT/logs/relay-rtt$r.log" &
    RELAY_PID=$!
    BENCH_PIDS+=("$RELAY_PID")
    tracker_restart "$HOSTIP"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(ss -Htln "sport = :$RELAY_PORT") ]] && break
        sleep 0.05
    done
    # announce the relay as the seeder: leechers learn only this address
    proxy_announce "$HOSTIP" "$RELAY_PORT" >/dev/null
    log "relay: $HOSTIP:$RELAY_PORT -> 127.0.0.1:$SEED_PORT, rtt $r ms, $rate Mbit/s"
}

# warm-up (not counted): the seeder faults its file in on first use
relay_start 0
RUN_SEQ=$((RUN_SEQ + 1))
client_run "$BENCH_TMP/run-$RUN_SEQ" "${CL[0]}" "$HOSTIP"
client_collect "$BENCH_TMP/run-$RUN_SEQ"
log "warm-up download by ${CL[0]}: $R_status in ${R_wall:-?} s (not counted)"

for ((rep = first_rep; rep < first_rep + reps; rep++)); do
    for r in "${RTTS[@]}"; do
        relay_start "$r"
        for c in "${CL[@]}"; do
            run_one latency "rtt$r" "$piece" "$rate" libtorrent "$c" "$rep" "$HOSTIP"
        done
    done
done
bench_kill "$RELAY_PID"
seeders_stop
tracker_stop
summarize_latency

commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)
dirty=false
[[ -n $(git -C "$ROOT" status --porcelain -- src bin examples 2>/dev/null) ]] && dirty=true
mtu_lo=$(cat /sys/class/net/lo/mtu)
cat >"$OUT/meta.json" <<EOF
{
  "experiment": "latency",
  "commit": "$commit",
  "dirty": $dirty,
  "command": "$cmdline",
  "all_commands": "see commands.txt (date, load average at start, command line of every run that added rows)",
  "bt_fetch": "$BT_FETCH",
  "relay": "examples/relay.rs: per-direction token bucket shared by the relay's connections, delay RTT/2 per direction, bottleneck queue = rate x RTT + 64 KiB (at least 1 MiB), 256 KiB socket buffers",
  "seeder": "python3-libtorrent $("$PY" -c 'import libtorrent; print(libtorrent.__version__)' 2>/dev/null), high_performance_seed, on 127.0.0.1, reached only through the relay",
  "size_bytes": $DATA_BYTES,
  "piece_length": "$piece",
  "rate_mbit": $rate,
  "rtts_ms": [$rtts],
  "reps_this_invocation": $reps,
  "clients": "$clients",
  "nproc": $(nproc),
  "kernel": "$(uname -r)",
  "mtu": "lo $mtu_lo (all traffic is local; the relay sets the rate)",
  "load_average_at_start": "$load_start",
  "load_average_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
log "done: $OUT/runs.csv, $OUT/throughput.csv, $OUT/relay-check.csv, $OUT/meta.json"
