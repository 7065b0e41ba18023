#!/usr/bin/env bash
# Soak and churn: one bt-fetch seeder and PEERS leechers (bt-fetch and
# libtorrent, alternating) that join, download, sometimes leave half-way,
# (killed with SIGKILL) and come back at random, for SECONDS (default 3600).
#
#   examples/soak.sh [SECONDS] [PEERS]        (PEERS default 20)
#
# Every 10 s the seeder's RSS (and its anonymous part: heap, stacks), open
# file descriptors (/proc/PID/fd), CPU and live heap (`heap_bytes` of its
# progress event: bt-fetch counts its allocations) go into
# OUT/samples.csv; each leecher's end into OUT/downloads.csv.
#
# Twice the leechers all leave and the seeder idles a few seconds: once
# after the warm-up (just before minute 5; short runs: a quarter in) and
# once at the end. Pass (exit 0) when:
#   - the live heap with no peer connected at the end is within HEAP_SLACK
#     of the same figure after the warm-up. This is the exact check for a
#     leak: RSS also holds memory malloc keeps after a free, and the heap
#     with peers connected follows how many are (buffers per peer); with
#     none (bt-fetch then also drops its pool of upload buffers), it is
#     only what the seeder keeps for itself;
#   - RSS at the end is within 10 % of RSS at minute 5: the median of the
#     last minute's samples against the median of minute 5. Medians,
#     because RSS follows how many leechers happen to be connected at a
#     sample, not only growth. Runs under 10 minutes (CI) have too few
#     samples for that (three per window: seen failing by chance with a
#     flat heap), so they compare RSS at the two idle checkpoints instead,
#     the same condition each time (no peer, and bt-fetch has given free
#     memory back to the system when its last peer left);
#   - no fd leak: with every leecher gone, the seeder holds no more
#     descriptors than before the first one came, + 2 of slack (seen:
#     + 1, a connection the seeder had not yet seen close);
#   - every completed download is byte-identical to the seeded file, and
#     at least one completed;
#   - the seeder is still running.
# Exit 1 on a failed check, 2 on a setup error. With gnuplot, the plot of
# RSS and fds over time goes to OUT/soak.png (and docs/img/soak.png when
# OUT is the default).
#
# Environment: OUT (docs/results/soak), SOAK_FILE_MIB (32),
# SOAK_UPLOAD_RATE (the seeder's --max-upload-rate, default 40M: downloads
# last seconds, so that leaving half-way happens, and the run does not
# take both cores of a shared machine for an hour), BT_FETCH and BT_META
# (default: built here, release; BT_COMMIT names their commit in meta.json
# when they are copies), SOAK_SEED (random seed), SOAK_HEAP_SLACK_KIB
# (32; seen: under 200 bytes between the two checkpoints, and a leak of
# 1 KiB per connection fails the 2-minute CI run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-3600}
PEERS=${2:-20}
FILE_MIB=${SOAK_FILE_MIB:-32}
UPLOAD_RATE=${SOAK_UPLOAD_RATE:-40M}
DEFAULT_OUT=$ROOT/docs/results/soak
OUT=${OUT:-$DEFAULT_OUT}
PY=/usr/bin/python3
SAMPLE_EVERY=10
HEAP_SLACK_KIB=${SOAK_HEAP_SLACK_KIB:-32}
# Seconds without leechers at each idle checkpoint.
IDLE_PAUSE=5
RANDOM=${SOAK_SEED:-$$}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

TMP=$(mktemp -d /tmp/bt-soak.XXXXXX)
SEEDER_PID=
declare -a SLOT_PID SLOT_KIND SLOT_NEXT SLOT_LEAVE SLOT_DIR
cleanup() {
    local p
    # The leechers are killed outright (the libtorrent script ignores
    # SIGTERM until its download ends); the seeder gets a clean SIGTERM.
    for p in "${SLOT_PID[@]}"; do
        [[ -n $p && $p != 0 ]] && kill -KILL "$p" 2>/dev/null || true
    done
    [[ -n $SEEDER_PID ]] && kill -TERM "$SEEDER_PID" 2>/dev/null || true
    for p in "${SLOT_PID[@]}" $SEEDER_PID; do
        [[ -n $p && $p != 0 ]] && wait "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

((DURATION >= 60)) || die "SECONDS must be at least 60"
$PY -c 'import libtorrent' 2>/dev/null || die "needs python3-libtorrent (apt-get install -y python3-libtorrent)"
if [[ -z ${BT_FETCH:-} || -z ${BT_META:-} ]]; then
    log "building bt-fetch and bt-meta (release)"
    (cd "$ROOT" && cargo build --release -q --bin bt-fetch --bin bt-meta) || die "cargo build failed"
    BT_FETCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/bt-fetch
    BT_META=${CARGO_TARGET_DIR:-$ROOT/target}/release/bt-meta
fi
mkdir -p "$OUT" "$TMP/seed"
head -c $((FILE_MIB << 20)) /dev/urandom >"$TMP/seed/s.bin"
"$BT_META" create "$TMP/seed/s.bin" --piece-length 256K -o "$TMP/s.torrent" >/dev/null ||
    die "bt-meta create failed"

"$BT_FETCH" --json -q "$TMP/s.torrent" -o "$TMP/seed" --bind 127.0.0.1 --seed \
    --max-upload-rate "$UPLOAD_RATE" </dev/null >"$TMP/seeder.json" 2>"$TMP/seeder.err" &
SEEDER_PID=$!
PORT=
for _ in $(seq 600); do
    PORT=$(sed -n 's/.*"event": *"listening".*"port": *\([0-9]*\).*/\1/p' "$TMP/seeder.json" | head -1)
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n $PORT ]] || die "the seeder did not start: $(tail -3 "$TMP/seeder.err")"
fds_now() { find "/proc/$SEEDER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SEEDER_PID/status"; }
rss_anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$SEEDER_PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SEEDER_PID/stat"; }
# The live heap (KiB) from the seeder's latest progress event (once a
# second; bt-fetch counts its allocations): exact, where RSS also holds
# what malloc keeps after a free.
heap_kib() {
    tail -n 400 "$TMP/seeder.json" | grep '"event":"progress"' | tail -1 |
        sed -n 's/.*"heap_bytes":\([0-9]*\).*/\1/p' | awk '{ printf "%d", $1 / 1024 } END { if (NR == 0) printf "0" }'
}
# The live heap in bytes once the seeder reports no peer connected (waits
# up to 15 s; empty if it never does). Progress events come once a second,
# keys in alphabetical order.
idle_heap_bytes() {
    local n0 line
    n0=$(wc -l <"$TMP/seeder.json")
    for _ in $(seq 30); do
        sleep 0.5
        line=$(tail -n +$((n0 + 1)) "$TMP/seeder.json" | grep '"event":"progress"' | grep '"peers":0,' | tail -1)
        if [[ -n $line ]]; then
            sed -n 's/.*"heap_bytes":\([0-9]*\).*/\1/p' <<<"$line"
            return
        fi
    done
}
sleep 1
FDS_IDLE_START=$(fds_now)
CLK_TCK=$(getconf CLK_TCK)
log "seeder pid $SEEDER_PID on port $PORT, $FDS_IDLE_START fds idle; $PEERS peers for $DURATION s"

# ---------------------------------------------------------------- churn
now_ms() { echo $(($(date +%s%N) / 1000000)); }
START=$(now_ms)
END=$((START + DURATION * 1000))
for ((i = 0; i < PEERS; i++)); do
    SLOT_PID[i]=0
    SLOT_KIND[i]=$([[ $((i % 2)) -eq 0 ]] && echo bt-fetch || echo libtorrent)
    SLOT_NEXT[i]=$((START + RANDOM % 5000))
    SLOT_LEAVE[i]=0
    SLOT_DIR[i]=$TMP/peer$i
done
echo "t_s,slot,kind,outcome,seconds" >"$OUT/downloads.csv"
echo "t_s,rss_kib,fds,cpu_pct,leechers,heap_kib,rss_anon_kib" >"$OUT/samples.csv"
declare -a SLOT_STARTED
COMPLETED=0
CORRUPT=0

launch() { # SLOT
    local i=$1 port=$((20000 + RANDOM % 30000))
    rm -rf "${SLOT_DIR[i]}"
    mkdir -p "${SLOT_DIR[i]}"
    if [[ ${SLOT_KIND[i]} == bt-fetch ]]; then
        "$BT_FETCH" --json -q "$TMP/s.torrent" -o "${SLOT_DIR[i]}" --bind 127.0.0.1 \
            --peer "127.0.0.1:$PORT" --timeout 300 </dev/null >/dev/null 2>"${SLOT_DIR[i]}.err" &
    else
        $PY "$ROOT/examples/bench/leech_libtorrent.py" --torrent "$TMP/s.torrent" \
            --dir "${SLOT_DIR[i]}" --listen "127.0.0.1:$port" --peer "127.0.0.1:$PORT" \
            --timeout 300 >/dev/null 2>"${SLOT_DIR[i]}.err" &
    fi
    SLOT_PID[i]=$!
    SLOT_STARTED[i]=$(now_ms)
    # A third leave half-way (killed at a random moment in the first 4 s).
    if ((RANDOM % 3 == 0)); then
        SLOT_LEAVE[i]=$((SLOT_STARTED[i] + 300 + RANDOM % 3700))
    else
        SLOT_LEAVE[i]=0
    fi
}

finish() { # SLOT OUTCOME
    local i=$1 outcome=$2 t secs
    t=$(now_ms)
    secs=$(((t - SLOT_STARTED[i]) / 1000))
    if [[ $outcome == exited ]]; then
        if wait "${SLOT_PID[i]}"; then
            if cmp -s "$TMP/seed/s.bin" "${SLOT_DIR[i]}/s.bin"; then
                outcome=complete
                COMPLETED=$((COMPLETED + 1))
            else
                outcome=corrupt
                CORRUPT=$((CORRUPT + 1))
                log "slot $i (${SLOT_KIND[i]}): downloaded data differs from the seeded file"
            fi
        else
            outcome=failed
            log "slot $i (${SLOT_KIND[i]}) failed: $(tail -2 "${SLOT_DIR[i]}.err" | tr '\n' ' ')"
        fi
    else
        # Leaving is abrupt (as a crash or a closed laptop): SIGKILL.
        kill -KILL "${SLOT_PID[i]}" 2>/dev/null || true
        wait "${SLOT_PID[i]}" 2>/dev/null || true
    fi
    echo "$(((t - START) / 1000)),$i,${SLOT_KIND[i]},$outcome,$secs" >>"$OUT/downloads.csv"
    SLOT_PID[i]=0
    rm -rf "${SLOT_DIR[i]}"
    # Away for 0-10 s, then back.
    SLOT_NEXT[i]=$((t + RANDOM % 10000))
}

if ((DURATION >= 600)); then
    warm=240 window=60
else
    warm=$((DURATION / 4)) window=$((DURATION / 5))
fi
# The first idle checkpoint ends as the RSS baseline window starts.
IDLE_AT=$((START + (warm - IDLE_PAUSE - 5) * 1000))
HEAP_IDLE_WARM=
NEXT_SAMPLE=$START
LAST_TICKS=$(cpu_ticks)
LAST_SAMPLE_MS=$START
while (($(now_ms) < END)); do
    kill -0 "$SEEDER_PID" 2>/dev/null || {
        log "the seeder died: $(tail -3 "$TMP/seeder.err")"
        exit 1
    }
    t=$(now_ms)
    if [[ -z $HEAP_IDLE_WARM ]] && ((t >= IDLE_AT)); then
        for ((i = 0; i < PEERS; i++)); do
            ((SLOT_PID[i] != 0)) && finish "$i" left
        done
        HEAP_IDLE_WARM=$(idle_heap_bytes)
        HEAP_IDLE_WARM=${HEAP_IDLE_WARM:-0}
        RSS_IDLE_WARM=$(rss_kib)
        log "idle after the warm-up: heap $HEAP_IDLE_WARM bytes"
        t=$(now_ms)
        for ((i = 0; i < PEERS; i++)); do
            SLOT_NEXT[i]=$((t + IDLE_PAUSE * 1000 + RANDOM % 2000))
        done
    fi
    for ((i = 0; i < PEERS; i++)); do
        if ((SLOT_PID[i] != 0)); then
            if ! kill -0 "${SLOT_PID[i]}" 2>/dev/null || [[ -z $(ps -o stat= -p "${SLOT_PID[i]}" | grep -v Z) ]]; then
                finish "$i" exited
            elif ((SLOT_LEAVE[i] != 0 && t >= SLOT_LEAVE[i])); then
                finish "$i" left
            fi
        elif ((t >= SLOT_NEXT[i] && t < END - 5000)); then
            launch "$i"
        fi
    done
    if ((t >= NEXT_SAMPLE)); then
        ticks=$(cpu_ticks)
        cpu=$(awk -v a="$LAST_TICKS" -v b="$ticks" -v ms=$((t - LAST_SAMPLE_MS)) -v hz="$CLK_TCK" \
            'BEGIN { printf "%.1f", (ms > 0 ? (b - a) * 100000 / hz / ms : 0) }')
        LAST_TICKS=$ticks
        LAST_SAMPLE_MS=$t
        live=0
        for ((i = 0; i < PEERS; i++)); do ((SLOT_PID[i] != 0)) && live=$((live + 1)); done
        echo "$(((t - START) / 1000)),$(rss_kib),$(fds_now),$cpu,$live,$(heap_kib),$(rss_anon_kib)" >>"$OUT/samples.csv"
        NEXT_SAMPLE=$((NEXT_SAMPLE + SAMPLE_EVERY * 1000))
    fi
    sleep 0.5
done

# ---------------------------------------------------------------- verdict
for ((i = 0; i < PEERS; i++)); do
    ((SLOT_PID[i] != 0)) && finish "$i" left
done
# Give the seeder time to notice every closed connection.
HEAP_IDLE_END=$(idle_heap_bytes)
HEAP_IDLE_END=${HEAP_IDLE_END:-0}
RSS_IDLE_END=$(rss_kib)
sleep 1
FDS_IDLE_END=$(fds_now)
fail=0
# Median RSS of the samples with FROM <= t < TO.
median_rss() { # FROM TO
    awk -F, -v a="$1" -v b="$2" 'NR > 1 && $1 >= a && $1 < b { v[++n] = $2 }
        END { for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
            if (n == 0) print 0; else print (n % 2 ? v[(n + 1) / 2] : int((v[n / 2] + v[n / 2 + 1]) / 2)) }' "$OUT/samples.csv"
}
last_t=$(tail -1 "$OUT/samples.csv" | cut -d, -f1)
base_t=$warm
base_rss=$(median_rss "$warm" $((warm + window)))
end_t=$((last_t - window + 1))
end_rss=$(median_rss "$end_t" $((last_t + 1)))
log "median RSS ${base_rss} KiB over [${base_t}, $((base_t + window))) s, ${end_rss} KiB over [${end_t}, ${last_t}] s; fds idle ${FDS_IDLE_START} before, ${FDS_IDLE_END} after"
log "downloads: $COMPLETED complete, $CORRUPT corrupt, $(grep -c ',left,' "$OUT/downloads.csv" || true) left half-way, $(grep -c ',failed,' "$OUT/downloads.csv" || true) failed"
log "live heap with no peer: ${HEAP_IDLE_WARM} bytes after the warm-up, ${HEAP_IDLE_END} at the end (slack ${HEAP_SLACK_KIB} KiB)"
if ((HEAP_IDLE_WARM == 0 || HEAP_IDLE_END == 0)); then
    log "FAIL: no heap figure with no peer connected (a bt-fetch without heap_bytes, or peers never left)"
    fail=1
elif ((HEAP_IDLE_END > HEAP_IDLE_WARM + HEAP_SLACK_KIB * 1024)); then
    log "FAIL: the live heap grew by $(((HEAP_IDLE_END - HEAP_IDLE_WARM) / 1024)) KiB (a leak)"
    fail=1
fi
log "RSS with no peer: ${RSS_IDLE_WARM:-0} KiB after the warm-up, ${RSS_IDLE_END} KiB at the end"
if ((DURATION >= 600)); then
    if ((base_rss == 0 || end_rss * 10 > base_rss * 11)); then
        log "FAIL: RSS grew more than 10 % (medians ${base_rss} -> ${end_rss} KiB)"
        fail=1
    fi
elif ((${RSS_IDLE_WARM:-0} == 0 || RSS_IDLE_END * 10 > RSS_IDLE_WARM * 11)); then
    log "FAIL: RSS with no peer grew more than 10 % (${RSS_IDLE_WARM:-0} -> ${RSS_IDLE_END} KiB)"
    fail=1
fi
if ((FDS_IDLE_END > FDS_IDLE_START + 2)); then
    log "FAIL: fd leak (${FDS_IDLE_START} -> ${FDS_IDLE_END} with no peer)"
    fail=1
fi
if ((CORRUPT > 0 || COMPLETED == 0)); then
    log "FAIL: $CORRUPT corrupt downloads, $COMPLETED complete"
    fail=1
fi
kill -0 "$SEEDER_PID" 2>/dev/null || {
    log "FAIL: the seeder died"
    fail=1
}

cat >"$OUT/meta.json" <<EOF
{
  "experiment": "soak",
  "commit": "${BT_COMMIT:-$(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src bin || echo '+dirty')}",
  "command": "examples/soak.sh $DURATION $PEERS",
  "seconds": $DURATION,
  "peers": $PEERS,
  "file_mib": $FILE_MIB,
  "seeder_max_upload_rate": "$UPLOAD_RATE",
  "sample_every_s": $SAMPLE_EVERY,
  "rss_baseline": { "from_s": $base_t, "window_s": $window, "median_kib": $base_rss },
  "rss_end": { "from_s": $end_t, "to_s": $last_t, "median_kib": $end_rss },
  "rss_idle_kib": { "after_warm_up": ${RSS_IDLE_WARM:-0}, "end": $RSS_IDLE_END },
  "heap_idle_bytes": { "after_warm_up": $HEAP_IDLE_WARM, "end": $HEAP_IDLE_END, "slack_kib": $HEAP_SLACK_KIB },
  "fds_idle": { "start": $FDS_IDLE_START, "end": $FDS_IDLE_END },
  "downloads": { "complete": $COMPLETED, "corrupt": $CORRUPT },
  "pass": $([[ $fail -eq 0 ]] && echo true || echo false),
  "machine": {
    "nproc": $(nproc),
    "kernel": "$(uname -r)",
    "mtu_lo": $(cat /sys/class/net/lo/mtu),
    "date": "$(date -u +%FT%TZ)",
    "load": "$(cut -d' ' -f1-3 /proc/loadavg)"
  }
}
EOF
if command -v gnuplot >/dev/null; then
    gnuplot -e "csv='$OUT/samples.csv'; png='$OUT/soak.png'" "$ROOT/examples/soak-plot.gnuplot" ||
        log "gnuplot failed (the checks stand)"
    if [[ $OUT == "$DEFAULT_OUT" && -f $OUT/soak.png ]]; then
        mkdir -p "$ROOT/docs/img"
        cp "$OUT/soak.png" "$ROOT/docs/img/soak.png"
    fi
fi
((fail == 0)) && log "PASS"
exit "$fail"
