#!/bin/sh
# kill -9 test of bt-fetch's resume: a bt-fetch leecher downloads SIZE MiB
# (default 256) from a rate-limited bt-fetch seeder on 127.0.0.1 and is
# killed with SIGKILL KILLS times (default 20) at random moments, restarted
# each time, then left to finish.
#
#   examples/kill-test.sh [SIZE_MIB] [KILLS]
#   env: RATE (seeder upload limit, default SIZE / (KILLS x 1.5 s), so
#        that the kills land before the end; 0: no limit), DELAY_MAX (the
#        latest kill moment after a start, default 2.5 s: with RATE=0 make
#        it shorter than a whole download), MEM (leecher --max-memory,
#        default 4M), PIECE (piece length, default 256K), KEEP=1 keeps the
#        work folder, OUT=FILE also writes the summary there.
#
# Checks, exit 1 when one fails:
#  - the final data is byte-identical to the seeder's (cmp);
#  - the bytes the seeder uploaded over all runs (its final `done` event:
#    a killed leecher cannot print its own total, the seeder's counter
#    covers every run and errs high, as it counts what it queued to the
#    socket) <= SIZE + kills x IN_FLIGHT.
# IN_FLIGHT bounds what one kill can lose: received bytes not yet written.
# The seeder's rate does not enter it: it only sends what was requested,
# so the limit only serves to make the kills land mid-download (checked
# with RATE=0, docs/results/resume/kill-test-*-unthrottled.json).
# A block is only requested into a piece holding a piece buffer, and the
# leecher holds at most max(MEM / PIECE, 2) of them (`Session::new`), so
# everything requested, on the wire, in socket buffers, being hashed or
# being written is within those pieces: IN_FLIGHT = max(MEM/PIECE, 2) x
# PIECE. Written pieces survive the kill (the page cache outlives the
# process) and the restart finds them: from the resume file, or from a
# recheck when our own writes after its last save changed an mtime.
# Prints one JSON summary line on stdout; the rest goes to stderr.
set -eu
size_mib=${1:-256}
kills=${2:-20}
mem=${MEM:-4M}
piece=${PIECE:-256K}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
(cd "$root" && nice cargo build -q --bin bt-fetch --bin bt-meta) >&2
command -v python3 >/dev/null || { echo "kill-test: needs python3" >&2; exit 1; }

work=$(mktemp -d /tmp/bt-kill-test.XXXXXX)
seeder_pid=
leech_pid=
cleanup() {
    [ -n "$leech_pid" ] && kill -9 "$leech_pid" 2>/dev/null || true
    [ -n "$seeder_pid" ] && kill "$seeder_pid" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

bytes() { python3 -c "import sys; from math import *; s=sys.argv[1]; m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$1"; }
size=$((size_mib << 20))
rate=${RATE:-$((size * 2 / (kills * 3)))}
piece_b=$(bytes "$piece")
mem_b=$(bytes "$mem")
buffers=$((mem_b / piece_b)); [ "$buffers" -lt 2 ] && buffers=2
in_flight=$((buffers * piece_b))

mkdir -p "$work/seed" "$work/leech"
head -c "$size" /dev/urandom >"$work/seed/data.bin"
"$bin/bt-meta" create -q --no-date -l "$piece" -o "$work/x.torrent" "$work/seed/data.bin" >/dev/null

limit=
[ "$rate" -gt 0 ] && limit="--max-upload-rate $rate"
# shellcheck disable=SC2086 # $limit: no flag, or the flag and its value
"$bin/bt-fetch" "$work/x.torrent" -o "$work/seed" --seed --bind 127.0.0.1 --json -q \
    $limit >"$work/seeder.jsonl" 2>"$work/seeder.err" &
seeder_pid=$!
port=
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p;s/.*"port":\([0-9]*\).*"event":"listening".*/\1/p' "$work/seeder.jsonl" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "kill-test: the seeder did not start" >&2; cat "$work/seeder.err" >&2; exit 1; }
echo "kill-test: $size_mib MiB, seeder on port $port at $rate/s, $kills kills, in flight <= $in_flight bytes per kill" >&2

leech() {
    "$bin/bt-fetch" "$work/x.torrent" -o "$work/leech" --peer "127.0.0.1:$port" \
        --bind 127.0.0.1 --json -q --max-memory "$mem" --timeout 600 "$@" \
        >>"$work/leech.jsonl" 2>>"$work/leech.err" &
    leech_pid=$!
}

done_early=0
killed=0
trusted=0
i=0
while [ "$i" -lt "$kills" ]; do
    i=$((i + 1))
    leech
    # A random moment: 0.2 to DELAY_MAX s after the start (the restart's
    # recheck included, so some kills land in it).
    delay=$(python3 -c "import random, sys; print(round(random.uniform(0.2, float(sys.argv[1])), 3))" "${DELAY_MAX:-2.5}")
    sleep "$delay"
    if kill -9 "$leech_pid" 2>/dev/null; then
        killed=$((killed + 1))
        wait "$leech_pid" 2>/dev/null || true
        echo "kill-test: kill $i after $delay s" >&2
    else
        wait "$leech_pid" 2>/dev/null || true
        echo "kill-test: run $i finished before its kill ($delay s)" >&2
        done_early=1
        leech_pid=
        break
    fi
    leech_pid=
done
if [ "$done_early" = 0 ]; then
    leech
    wait "$leech_pid" || { echo "kill-test: the last run failed" >&2; tail "$work/leech.err" >&2; exit 1; }
    leech_pid=
fi
trusted=$(grep -c '"resume":"trusted"' "$work/leech.jsonl" || true)
kill "$seeder_pid"
wait "$seeder_pid" || true
seeder_pid=
uploaded=$(python3 -c "
import json,sys
done=[json.loads(l) for l in open(sys.argv[1]) if '\"done\"' in l]
print(done[-1]['uploaded'])" "$work/seeder.jsonl")
identical=true
cmp -s "$work/seed/data.bin" "$work/leech/data.bin" || identical=false
bound=$((size + killed * in_flight))
ok=true
[ "$identical" = true ] && [ "$uploaded" -le "$bound" ] || ok=false
partial=$(grep -c '"resume":"partial"' "$work/leech.jsonl" || true)
summary=$(printf '{"size":%d,"kills":%d,"seeder_rate":%d,"in_flight_per_kill":%d,"uploaded_total":%d,"bound":%d,"excess":%d,"restarts_trusting_resume":%d,"restarts_partial_recheck":%d,"identical":%s,"ok":%s}' \
    "$size" "$killed" "$rate" "$in_flight" "$uploaded" "$bound" "$((uploaded - size))" "$trusted" "$partial" "$identical" "$ok")
echo "$summary"
[ -n "${OUT:-}" ] && echo "$summary" >"$OUT"
[ "$ok" = true ]
